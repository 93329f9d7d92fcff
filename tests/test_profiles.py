"""Execution profiles: pinned virtual environments that the Verifier runs programs in."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from qsandbox_env import Verifier, load_tasks
from qsandbox_env.cli import main
from qsandbox_env.profiles import MANIFEST, list_profiles, load_profile, remove_profile
from tests.conftest import humaneval_path, program_task, settle_shot_noise

OLD_QISKIT = "2.4.*"
# Qiskit-HumanEval's needs on an older SDK: the simulator, the runtime with the fake backends
# task 103 lists (below 0.47), OpenQASM 3 import, drawing and graph libraries.
PINS = (
    "qiskit[visualization]",
    "qiskit-aer",
    "qiskit-ibm-runtime<0.47",
    "qiskit-qasm3-import",
    "networkx",
)


@pytest.fixture(scope="session")
def old_qiskit_profile(tmp_path_factory):
    """One real profile with qiskit 2.4, built once per test session (about 30-60 s)."""
    root = tmp_path_factory.mktemp("profiles")
    saved = os.environ.get("QSANDBOX_PROFILES")
    os.environ["QSANDBOX_PROFILES"] = str(root)
    args = ["profile", "create", "qiskit24", "--qiskit", OLD_QISKIT]
    for pin in PINS:
        args += ["--package", pin]
    started = time.monotonic()
    assert main(args) == 0
    print(f"profile built in {time.monotonic() - started:.0f} s")
    yield "qiskit24"
    if saved is None:
        os.environ.pop("QSANDBOX_PROFILES", None)
    else:
        os.environ["QSANDBOX_PROFILES"] = saved


@pytest.mark.slow
def test_program_under_a_profile_sees_the_pinned_qiskit(old_qiskit_profile):
    test = "    assert candidate().startswith('2.4.'), candidate()\n"
    code = "import qiskit\n\ndef solve():\n    print(qiskit.__version__)\n"
    code += "    return qiskit.__version__\n"
    with Verifier(1, profile=old_qiskit_profile, preload=("qiskit",)) as verifier:
        verdict = verifier.verify(program_task(test), code)
    assert verdict.passed, verdict.detail
    assert re.match(r"^2\.4\.\d+$", verdict.output.strip())


@pytest.mark.slow
def test_profile_manifest_records_the_pins(old_qiskit_profile):
    profile = load_profile(old_qiskit_profile)
    assert profile.requirements == ("qiskit==2.4.*", *PINS)
    assert profile.qiskit_version.startswith("2.4.")
    runtime = tuple(int(part) for part in profile.installed["qiskit-ibm-runtime"].split(".")[:2])
    assert runtime < (0, 47)
    assert [p.name for p in list_profiles()] == [old_qiskit_profile]


@pytest.mark.slow
@pytest.mark.dataset
def test_humaneval_canonical_under_qiskit_2_4_fails_only_104_and_122(old_qiskit_profile):
    tasks = load_tasks(str(humaneval_path()))
    pairs = [(task, task.canonical_solution) for task in tasks.values()]
    # 96 and 100 take 10-20 s alone; a loaded 2-core machine needs more than the default 60 s.
    with Verifier(2, profile=old_qiskit_profile, timeout=240) as verifier:
        verdicts = settle_shot_noise(verifier, pairs, verifier.verify_many(pairs))
    failing = sorted(int(v.task_id.rsplit("/", 1)[1]) for v in verdicts if not v.passed)
    details = {v.task_id: v.detail[-300:] for v in verdicts if not v.passed}
    assert failing == [104, 122], details
    assert sum(v.passed for v in verdicts) == 149


def test_missing_profile_names_it_and_the_create_command(tmp_path, monkeypatch):
    monkeypatch.setenv("QSANDBOX_PROFILES", str(tmp_path))
    message = (
        f"profile 'nope' not found in {tmp_path}; create it with "
        "`qsandbox profile create nope --qiskit VERSION [--package SPEC ...]`"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Verifier(1, profile="nope", preload=())


def test_profile_and_python_together_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("QSANDBOX_PROFILES", str(tmp_path))
    message = "profile: give either profile= or python=, not both"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Verifier(1, profile="x", python="/usr/bin/python3", preload=())


def test_bad_profile_name_is_refused_before_anything_is_built(tmp_path):
    with pytest.raises(ValueError, match=r"^profile name: expected letters, digits"):
        load_profile("../escape", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_list_and_remove_see_only_directories_with_a_manifest(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QSANDBOX_PROFILES", str(tmp_path))
    (tmp_path / "stray").mkdir()
    (tmp_path / "old").mkdir()
    manifest = {"name": "old", "requirements": ["qiskit==2.4.*"], "installed": {"qiskit": "2.4.2"}}
    (tmp_path / "old" / MANIFEST).write_text(json.dumps(manifest))
    assert main(["profile", "list"]) == 0
    assert capsys.readouterr().out == "old\tqiskit 2.4.2\tqiskit==2.4.*\n"
    assert remove_profile("old") == tmp_path / "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stray"]


def test_cli_reports_a_missing_profile_on_remove(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("QSANDBOX_PROFILES", str(tmp_path))
    assert main(["profile", "remove", "ghost"]) == 2
    assert capsys.readouterr().err.startswith("qsandbox: error: profile 'ghost' not found in")
