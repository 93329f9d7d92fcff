"""Tests for ``qsandbox tasks list|show|check``, run in-process through ``qsandbox_env.cli.main``.

Only the ``check`` tests start a Verifier (a few seconds each); the others load and print tasks.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qsandbox_env import cli
from qsandbox_env.cli.tasks import task_record, task_summary
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import Task
from tests.conftest import ROOT

GOOD = {
    "task_id": "demo/add",
    "prompt": 'def add(a, b):\n    """Add two numbers."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
    "entry_point": "add",
    "difficulty": "basic",
    "topic": "arithmetic",
}
# Its canonical solution adds where the test expects a difference.
BROKEN = {
    "task_id": "demo/sub",
    "prompt": "def sub(a, b):\n",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(5, 3) == 2\n",
    "entry_point": "sub",
}
HAS_PROCEDURAL = importlib.util.find_spec("qsandbox_env.families") is not None


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(["tasks", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- list -----------------------------------------------------------------------------------------


def test_list_prints_id_difficulty_format_and_summary_per_task(capsys, tmp_path) -> None:
    path = write_jsonl(tmp_path / "tasks.jsonl", [GOOD, BROKEN])
    code, out, _ = run(capsys, "list", path)
    assert code == 0
    assert out.splitlines() == [
        "demo/add  basic    completion  Add two numbers.",
        "demo/sub  unknown  completion  def sub(a, b):",
        f"2 tasks from {path}",
    ]


def test_list_covers_every_bundled_task(capsys) -> None:
    code, out, _ = run(capsys, "list", "bundled")
    bundled = load_tasks("bundled")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[:-1]] == list(bundled)


def test_a_long_summary_is_cut_to_one_line() -> None:
    task = Task("t/0", "x" * 200 + "\n", "def check(c):\n    pass\n", "f")
    summary = task_summary(task)
    assert len(summary) == 72 and summary.endswith("…")


def test_list_jsonl_writes_records_the_loader_reads_back(capsys, tmp_path) -> None:
    source = write_jsonl(tmp_path / "tasks.jsonl", [GOOD, BROKEN])
    code, out, _ = run(capsys, "list", source, "--jsonl")
    copy = tmp_path / "copy.jsonl"
    copy.write_text(out, encoding="utf-8")
    assert code == 0
    assert list(load_tasks(copy).values()) == list(load_tasks(source).values())
    assert [task_record(task) for task in load_tasks(copy).values()] == [
        json.loads(line) for line in out.splitlines()
    ]


@pytest.mark.skipif(not HAS_PROCEDURAL, reason="qsandbox_env.families is not in this checkout")
def test_procedural_options_are_passed_to_the_generator(capsys) -> None:
    argv = ["--n", "3", "--seed", "5", "--family", "basis_state", "--difficulty", "basic"]
    code, out, _ = run(capsys, "list", "procedural", *argv)
    expected = load_tasks("procedural", n=3, seed=5, families=["basis_state"], difficulty="basic")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[:-1]] == list(expected)
    assert {line.split()[1] for line in out.splitlines()[:-1]} == {"basic"}


def test_an_option_the_source_does_not_take_is_an_input_error(capsys) -> None:
    code, out, err = run(capsys, "list", "bundled", "--n", "3")
    assert (code, out) == (2, "")
    assert err == (
        "qsandbox: error: bundled: load_bundled() got an unexpected keyword argument 'n'\n"
    )


def test_a_missing_source_file_is_an_input_error(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "list", str(tmp_path / "absent.json"))
    assert code == 2
    assert err.startswith(f"qsandbox: error: task file not found: {tmp_path / 'absent.json'}; ")


# --- show -----------------------------------------------------------------------------------------


def test_show_prints_the_whole_task(capsys, tmp_path) -> None:
    path = write_jsonl(tmp_path / "tasks.jsonl", [GOOD, BROKEN])
    code, out, _ = run(capsys, "show", path, "demo/add")
    assert code == 0
    assert out == (
        "task_id:     demo/add\n"
        "difficulty:  basic\n"
        "format:      completion\n"
        "entry_point: add\n"
        "timeout:     the Verifier's default\n"
        'metadata:    {"topic": "arithmetic"}\n'
        f"\n--- prompt ---\n{GOOD['prompt']}"
        f"\n--- test ---\n{GOOD['test']}"
        f"\n--- canonical ---\n{GOOD['canonical_solution']}"
    )


def test_show_of_an_unknown_id_suggests_close_ids(capsys, tmp_path) -> None:
    path = write_jsonl(tmp_path / "tasks.jsonl", [GOOD, BROKEN])
    code, out, err = run(capsys, "show", path, "demo/ad")
    assert (code, out) == (2, "")
    assert err == (
        f"qsandbox: error: unknown task_id 'demo/ad' in {path} (2 tasks); "
        "close matches: 'demo/add', 'demo/sub'\n"
    )


# --- check ----------------------------------------------------------------------------------------


def test_check_runs_canonicals_through_the_verifier_and_reports_failures(capsys, tmp_path) -> None:
    path = write_jsonl(tmp_path / "tasks.jsonl", [GOOD, BROKEN])
    report = tmp_path / "report.json"
    code, out, _ = run(capsys, "check", path, "--workers", "1", "--json", str(report))
    assert code == 1
    assert "checked 2 canonical solutions: 1 passed" in out
    assert "1 did not pass:\n  demo/sub  failed    AssertionError\n" in out
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["tasks_file"] == path
    assert [result["outcome"] for result in data["results"]] == ["passed", "failed"]


@pytest.mark.skipif(not HAS_PROCEDURAL, reason="qsandbox_env.families is not in this checkout")
def test_check_of_a_generated_set_passes(capsys) -> None:
    code, out, _ = run(capsys, "check", "procedural", "--n", "2", "--seed", "1", "--workers", "1")
    assert code == 0, out
    assert "checked 2 canonical solutions: 2 passed" in out


def test_check_tasks_warns_that_it_is_deprecated_and_reports_as_tasks_check(
    capsys, tmp_path
) -> None:
    path = write_jsonl(tmp_path / "tasks.jsonl", [GOOD, BROKEN])
    code, out, err = run(capsys, "check", path, "--workers", "1")
    old_code = cli.main(["check-tasks", path, "--workers", "1"])
    old = capsys.readouterr()
    assert old.err == (
        "qsandbox: warning: check-tasks is deprecated; use `qsandbox tasks check FILE`, which "
        "does the same\n"
    )
    assert err == ""
    assert old_code == code == 1
    assert old.out.splitlines()[:-1] == out.splitlines()[:-1]  # all but the wall time


# --- the installed console script -----------------------------------------------------------------


def test_the_console_script_lists_tasks() -> None:
    script = shutil.which("qsandbox")
    if script is None:
        pytest.skip("the qsandbox console script is not installed (pip install -e .)")
    result = subprocess.run(
        [script, "tasks", "list", "bundled"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("qsandbox/ghz_circuit ")
    assert result.stdout.splitlines()[-1].startswith(f"{len(load_tasks('bundled'))} tasks from ")
