"""The sandbox imports what its caller imports, whatever put it on the caller's import path."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from qsandbox_env.sandbox.pool import PACKAGE_ROOT, caller_import_path
from tests.conftest import ROOT

DRIVER = textwrap.dedent(
    """
    from qsandbox_env import Task, Verifier

    test = "def check(candidate):\\n    assert candidate() == 'from the extra directory'\\n"
    task = Task("extra/0", "", test, "answer", format="completion")
    program = "import qsb_extra_lib\\ndef answer():\\n    return qsb_extra_lib.WHERE\\n"
    writer = (
        "import qsb_extra_lib, os\\n"
        "def answer():\\n"
        "    open(os.path.join(os.path.dirname(qsb_extra_lib.__file__), 'x'), 'w')\\n"
    )
    with Verifier(1) as verifier:
        print(verifier.verify(task, program).outcome.value)
        print(verifier.verify(task, writer).error_type)
    """
)


def test_a_package_reachable_only_through_pythonpath_imports_in_the_sandbox(tmp_path):
    # As `pip install --target DIR` or an HPC module leaves it: importable by the caller only
    # because DIR is on its PYTHONPATH, which the sandbox's scrubbed environment drops.
    extra = tmp_path / "extra"
    (extra / "qsb_extra_lib").mkdir(parents=True)
    (extra / "qsb_extra_lib" / "__init__.py").write_text("WHERE = 'from the extra directory'\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(extra), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr
    outcome, write_error = proc.stdout.split()
    assert outcome == "passed", proc.stdout + proc.stderr
    # The directory is there to import from, not to write to.
    assert write_error in {"OSError", "PermissionError"}, proc.stdout


def test_the_projects_own_directories_never_travel_on_the_import_path(monkeypatch, tmp_path):
    root = os.path.realpath(PACKAGE_ROOT)
    above = os.path.dirname(root)
    inside = os.path.join(root, "tests")
    monkeypatch.setattr(sys, "path", [root, above, "/", inside, "", "relative/dir", *sys.path])
    passed = caller_import_path(sys.executable)
    assert root not in passed and above not in passed and "/" not in passed
    assert inside not in passed
    assert "" not in passed and "relative/dir" not in passed
    # Another interpreter (an execution profile) keeps its own libraries, even when it is a
    # virtual environment whose python links to this same binary.
    assert caller_import_path("/usr/bin/false") == ()
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(os.path.realpath(sys.executable))
    assert caller_import_path(str(venv_python)) == ()


SCRIPT = textwrap.dedent(
    """
    import sys
    from qsandbox_env import Task, Verifier

    test = "def check(candidate):\\n    assert candidate() == 'the reference solution'\\n"
    task = Task("beside/0", "", test, "answer", format="completion")
    reader = "def answer():\\n    return open(%r).read()\\n" % sys.argv[1]
    with Verifier(1, preload=()) as verifier:
        verdict = verifier.verify(task, reader)
    print(verdict.outcome.value, verdict.error_type)
    """
)


def run_script(path, *args, cwd="/"):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, str(path), *map(str, args)],
        capture_output=True, text=True, timeout=600, cwd=cwd, env=env,
    )  # fmt: skip


def test_files_beside_the_callers_script_stay_hidden_from_programs(tmp_path):
    # A user's benchmark script next to the data set it reads: a program that opens that file
    # would run the reference solution instead of writing one.
    work = tmp_path / "work"
    work.mkdir()
    (work / "solutions.txt").write_text("the reference solution")
    (work / "bench.py").write_text(SCRIPT)
    for cwd in ("/", work):  # the script's directory, and the working directory too
        proc = run_script(work / "bench.py", work / "solutions.txt", cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["error", "FileNotFoundError"], proc.stdout


def test_a_script_saved_directly_in_tmp_starts_the_sandbox(tmp_path):
    # Its directory, /tmp, comes first on its import path; bound back into the sandbox it would
    # undo the private /tmp (and the sandbox could not make its work directory there).
    (tmp_path / "answer.txt").write_text("the reference solution")
    script = f"/tmp/qsandbox-check-{os.getpid()}-{tmp_path.name}.py"
    with open(script, "w", encoding="utf-8") as file:
        file.write(SCRIPT)
    try:
        proc = run_script(script, tmp_path / "answer.txt")
    finally:
        os.unlink(script)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["error", "FileNotFoundError"], proc.stdout


def test_the_working_directory_travels_only_when_pythonpath_names_it(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), "/tmp", *sys.path])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    passed = caller_import_path(sys.executable)
    assert str(tmp_path) not in passed and "/tmp" not in passed
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert str(tmp_path) in caller_import_path(sys.executable)
