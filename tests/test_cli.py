"""Tests for qsandbox_env.cli: the ``qsandbox`` command line, run in-process through ``main``.

Starting a Verifier costs a few seconds (its zygote imports Qiskit), so only five tests here start
one; the others check input validation, which must fail before any sandbox starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qsandbox_env import Budget, __version__, cli
from qsandbox_env.cli import verify, verifying

REPO_ROOT = Path(__file__).resolve().parents[1]

ADD = {
    "task_id": "demo/add",
    "prompt": "def add(a, b):\n",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
    "entry_point": "add",
}
MUL = {
    "task_id": "demo/mul",
    "prompt": "def mul(a, b):\n",
    "canonical_solution": "    return a * b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 6\n",
    "entry_point": "mul",
}
# Its canonical solution adds where the test expects a difference.
BROKEN = {
    "task_id": "demo/broken",
    "prompt": "def sub(a, b):\n",
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(5, 3) == 2\n",
    "entry_point": "sub",
}
NO_CANONICAL = {
    "task_id": "demo/open",
    "prompt": "def one():\n",
    "test": "def check(candidate):\n    assert candidate() == 1\n",
    "entry_point": "one",
}
SAMPLES = [
    {"task_id": "demo/add", "completion": "    return a + b\n", "index": 0},
    {"task_id": "demo/mul", "completion": "    return a + b\n", "index": 1},
    {"task_id": "demo/add", "completion": "    print('x' * 5000)\n    return a + b\n", "index": 2},
    {"task_id": "demo/mul", "completion": "    return a * b\n", "index": 3},
]


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    good = root / "good.json"
    good.write_text(json.dumps([ADD, MUL]), encoding="utf-8")
    broken = root / "broken.json"
    broken.write_text(json.dumps([ADD, BROKEN, NO_CANONICAL]), encoding="utf-8")
    return {
        "root": root,
        "good": good,
        "broken": broken,
        "samples": write_jsonl(root / "samples.jsonl", SAMPLES),
    }


@pytest.fixture
def no_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting a Verifier fail the test: validation errors must come first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Verifier was started")

    monkeypatch.setattr(verifying, "Verifier", refuse)


def run_cli(*argv: str | Path) -> int:
    return cli.main([str(arg) for arg in argv])


def check_results(lines: list[dict[str, Any]]) -> None:
    assert [line["index"] for line in lines] == [0, 1, 2, 3]
    assert [line["passed"] for line in lines] == [True, False, True, True]
    assert [line["outcome"] for line in lines] == ["passed", "failed", "passed", "passed"]
    assert lines[1]["error_type"] == "AssertionError"
    assert [line["completion"] for line in lines] == [sample["completion"] for sample in SAMPLES]
    assert all("code" not in line for line in lines)
    assert len(lines[2]["output"]) <= verifying.OUTPUT_LIMIT
    assert lines[2]["output"].startswith("xxx")


# -- starts a Verifier ----------------------------------------------------------------------------


def test_verify_writes_one_line_per_sample_in_order(data, capsys) -> None:
    out = data["root"] / "results.jsonl"
    code = run_cli(
        "verify",
        "--tasks",
        data["good"],
        "--samples",
        data["samples"],
        "--out",
        out,
        "--workers",
        "1",
    )
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == ""
    check_results([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()])
    assert "verified 4 samples" in captured.err
    assert "3 passed (75.0%)" in captured.err
    assert "passed 3, failed 1" in captured.err


def test_verify_writes_to_stdout_without_out(data, capsys) -> None:
    code = run_cli(
        "verify", "--tasks", data["good"], "--samples", data["samples"], "--workers", "1"
    )
    captured = capsys.readouterr()
    assert code == 0
    check_results([json.loads(line) for line in captured.out.splitlines()])


def test_check_tasks_reports_a_broken_canonical_solution(data, capsys) -> None:
    report = data["root"] / "report.json"
    code = run_cli("check-tasks", data["broken"], "--workers", "1", "--json", report)
    out = capsys.readouterr().out
    assert code == 1
    assert "checked 2 canonical solutions: 1 passed" in out
    assert "passed 1, failed 1" in out
    [failing] = [line for line in out.splitlines() if "demo/broken" in line]
    assert "failed" in failing and "AssertionError" in failing
    assert "skipped 1 without a canonical solution: demo/open" in out
    assert "wall time:" in out
    data_out = json.loads(report.read_text(encoding="utf-8"))
    assert data_out["passed"] == 1 and data_out["skipped"] == ["demo/open"]
    assert [result["task_id"] for result in data_out["results"]] == ["demo/add", "demo/broken"]


def test_check_tasks_passes_a_good_file(data, capsys) -> None:
    code = run_cli("check-tasks", data["good"], "--workers", "1")
    out = capsys.readouterr().out
    assert code == 0
    assert "checked 2 canonical solutions: 2 passed" in out
    assert "did not pass" not in out


# Answers laid out as other evaluation harnesses write them: each passes.
OTHER_LAYOUTS = [
    {"task_id": "demo/add", "solution": "def add(a, b):\n    return a + b\n"},
    {"task_id": "demo/add", "generation": "```python\nreturn a + b\n```"},
    {"task_id": "demo/mul", "response": "Sure:\n```python\n    return a * b\n```\nDone."},
    {
        "task_id": "demo/mul",
        "messages": [
            {"role": "user", "content": "def mul(a, b):"},
            {"role": "assistant", "content": "```python\n\treturn a * b\n```"},
        ],
    },
    {"task_id": "demo/add", "completion": [{"role": "assistant", "content": "return a + b"}]},
]


def test_verify_reads_the_answer_fields_and_chat_replies_of_other_harnesses(data, capsys) -> None:
    samples = write_jsonl(data["root"] / "layouts.jsonl", OTHER_LAYOUTS)
    out = data["root"] / "layouts-results.jsonl"
    args = ("--tasks", data["good"], "--samples", samples, "--workers", "1", "--out", out)
    assert run_cli("verify", *args) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["outcome"] for line in lines] == ["passed"] * len(OTHER_LAYOUTS)
    assert [line["messages"] for line in lines if "messages" in line] == [
        OTHER_LAYOUTS[3]["messages"]
    ]


def test_the_text_of_each_layout_is_what_gets_verified(data) -> None:
    samples = verify.read_samples(
        str(write_jsonl(data["root"] / "l.jsonl", OTHER_LAYOUTS)), _tasks(data)
    )
    assert [sample.completion for sample in samples] == [
        "def add(a, b):\n    return a + b\n",
        "```python\nreturn a + b\n```",
        "Sure:\n```python\n    return a * b\n```\nDone.",
        "```python\n\treturn a * b\n```",
        "return a + b",
    ]


def _tasks(data):
    from qsandbox_env import load_tasks

    return load_tasks(str(data["good"]))


# -- fails before any Verifier starts -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('["demo/add", "x"]', "expected a JSON object"),
        ('{"completion": "    return 1\\n"}', "'task_id' is missing"),
        (
            '{"task_id": "demo/add", "output": "x"}',
            "no answer found; expected a field among completion, solution, generation, "
            "response, messages (text or a list of chat messages), got fields output, task_id",
        ),
        (
            '{"task_id": "demo/add", "completion": 5}',
            "field 'completion' must be a string or a list of chat messages, got int",
        ),
        (
            '{"task_id": "demo/add", "messages": [{"role": "user", "content": "?"}]}',
            "field 'messages': completion: no message with role 'assistant'",
        ),
    ],
)
def test_verify_rejects_a_malformed_samples_line(data, capsys, no_sandbox, line, problem) -> None:
    samples = data["root"] / "bad.jsonl"
    samples.write_text(json.dumps(SAMPLES[0]) + "\n\n" + line + "\n", encoding="utf-8")
    out = data["root"] / "never.jsonl"
    code = run_cli("verify", "--tasks", data["good"], "--samples", samples, "--out", out)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("qsandbox: error: ")
    assert f"{samples} line 3: " in err and problem in err
    assert "Traceback" not in err
    assert not out.exists()


def test_verify_rejects_an_unknown_task_id_with_close_matches(data, capsys, no_sandbox) -> None:
    samples = write_jsonl(
        data["root"] / "unknown.jsonl", [SAMPLES[0], {"task_id": "demo/ad", "completion": ""}]
    )
    code = run_cli("verify", "--tasks", data["good"], "--samples", samples)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert f"qsandbox: error: {samples} line 2: unknown task_id 'demo/ad'" in captured.err
    assert "close matches: 'demo/add'" in captured.err


def test_verify_rejects_an_empty_samples_file(data, capsys, no_sandbox) -> None:
    samples = data["root"] / "empty.jsonl"
    samples.write_text("\n", encoding="utf-8")
    assert run_cli("verify", "--tasks", data["good"], "--samples", samples) == 2
    assert "no samples" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "tasks check"])
def test_missing_tasks_file_is_an_error_without_traceback(data, capsys, no_sandbox, command):
    missing = data["root"] / "missing.json"
    argv = (
        ["tasks", "check", missing]
        if command == "tasks check"
        else ["verify", "--tasks", missing, "--samples", data["samples"]]
    )
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("qsandbox: error: ")
    assert "task file not found" in err and str(missing) in err
    assert "Traceback" not in err


def test_malformed_tasks_file_is_an_error(data, capsys, no_sandbox) -> None:
    tasks = data["root"] / "malformed.json"
    tasks.write_text(json.dumps([{"task_id": "demo/x"}]), encoding="utf-8")
    assert run_cli("tasks", "check", tasks) == 2
    err = capsys.readouterr().err
    assert err.startswith("qsandbox: error: ") and "field 'prompt' is missing" in err


def test_missing_samples_file_is_an_error(data, capsys, no_sandbox) -> None:
    missing = data["root"] / "missing.jsonl"
    assert run_cli("verify", "--tasks", data["good"], "--samples", missing) == 2
    assert f"qsandbox: error: samples file not found: {missing}" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--workers", "0"], ["--timeout", "-1"]])
def test_bad_options_are_usage_errors(data, capsys, no_sandbox, option) -> None:
    assert run_cli("check-tasks", data["good"], *option) == 2
    assert "expected a positive" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--target", "fake:nowhere"],
            "argument --target: target: unknown fake device 'fake:nowhere'",
        ),
        (["--target", "qpu"], "argument --target: target: expected 'aer', 'fake:<device>'"),
        (["--profile", "no-such-profile"], "profile 'no-such-profile' not found"),
    ],
)
def test_bad_target_or_profile_is_a_usage_error(
    data, capsys, no_sandbox, monkeypatch, tmp_path, option, message
) -> None:
    monkeypatch.setenv("QSANDBOX_PROFILES", str(tmp_path))
    assert run_cli("check-tasks", data["good"], *option) == 2
    assert message in capsys.readouterr().err


def test_check_tasks_runs_on_a_fake_device_target(data, capsys, monkeypatch) -> None:
    started: list[dict[str, Any]] = []
    real = verifying.Verifier

    def recording(*args: Any, **kwargs: Any) -> Any:
        started.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(verifying, "Verifier", recording)
    code = run_cli("check-tasks", data["good"], "--workers", "1", "--target", "fake:FakeManilaV2")
    assert code == 0, capsys.readouterr()
    assert "checked 2 canonical solutions: 2 passed" in capsys.readouterr().out
    assert [kwargs["target"] for kwargs in started] == ["fake:manila"]


def test_a_subcommand_is_required(capsys) -> None:
    assert run_cli() == 2
    assert "usage: qsandbox" in capsys.readouterr().err


def test_version_in_process(capsys) -> None:
    assert run_cli("--version") == 0
    assert capsys.readouterr().out.strip() == f"qsandbox {__version__}"


def test_subcommands_are_registered() -> None:
    assert {"verify", "check-tasks"} <= set(cli.COMMANDS)
    with pytest.raises(ValueError, match="already registered"):
        cli.register(cli.COMMANDS["verify"])


def test_python_dash_m_version() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "qsandbox_env", "--version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"qsandbox {__version__}"


# -- the QPU budget -------------------------------------------------------------------------------
def test_a_qpu_budget_without_an_ibm_target_is_refused_before_a_sandbox_starts(
    data, capsys, no_sandbox
) -> None:
    assert run_cli("verify", "--tasks", data["good"], "--samples", data["samples"],
                   "--qpu-jobs", "3") == 2  # fmt: skip
    assert (
        "qsandbox: error: --qpu-jobs/--qpu-shots/--qpu-seconds limit QPU spending, and --target "
        "aer spends none; use them with an ibm:<backend> target"
    ) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--qpu-jobs", "-1"], "expected a whole number >= 0"),
     (["--qpu-seconds", "inf"], "expected a number >= 0")],
)  # fmt: skip
def test_a_negative_or_endless_qpu_limit_is_a_usage_error(data, capsys, option, message) -> None:
    assert run_cli("check-tasks", data["good"], *option) == 2
    assert message in capsys.readouterr().err


def test_the_qpu_budget_options_reach_the_verifiers_broker(data, capsys) -> None:
    argv = ["check-tasks", str(data["good"]), "--target", "ibm:fake_manila"]
    args = cli.build_parser().parse_args([*argv, "--qpu-jobs", "3", "--qpu-seconds", "90"])
    with verifying.verifier_from_args(args, 1) as verifier:
        assert verifier.broker is not None
        assert verifier.broker.budget == Budget(jobs=3, seconds=90.0)
    assert "no QPU budget" not in capsys.readouterr().err
    unlimited = cli.build_parser().parse_args(argv)
    assert cli.qpu_budget(unlimited, unlimited.target) is None
    assert (
        "qsandbox: --target ibm:fake_manila has no QPU budget: programs may submit any number of "
        "jobs; cap them with --qpu-jobs, --qpu-shots or --qpu-seconds"
    ) in capsys.readouterr().err


def test_bench_refuses_a_qpu_budget_for_a_simulator_target(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["bench", "--agent", "oracle", "--tasks", "bundled", "--out", out, "--qpu-shots", "10"]
    assert run_cli(*argv) == 2
    assert "--target aer spends none" in capsys.readouterr().err
    assert not out.exists()
