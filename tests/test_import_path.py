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
