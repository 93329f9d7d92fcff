"""The benchmark harness end to end: oracle, stale-api, hf and openai agents; resume; compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib

import pytest

from agents.bench.report import categorize
from agents.bench.runner import BenchConfig, BenchError, JsonlLog, run_benchmark
from agents.policy import SamplingParams, make_policy
from qsandbox_env import Verifier, load_tasks
from qsandbox_env.cli import main
from tests.conftest import ROOT, SHOT_NOISE, humaneval_path, settle_shot_noise
from tests.test_policies import BUNDLED, ChatServer, build_tiny_model


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def keys(rows: list[dict]) -> list[tuple[str, int]]:
    return [(row["task_id"], row["sample"]) for row in rows]


def canonical_pass_rate(verifier, tasks) -> float:
    verdicts = verifier.verify_many([(t, t.canonical_solution) for t in tasks.values()])
    return sum(v.passed for v in verdicts) / len(verdicts)


# -- agents end to end --------------------------------------------------------------------------


def test_oracle_pass_at_1_is_the_verifiers_canonical_pass_rate(verifier, tmp_path):
    config = BenchConfig("oracle", "bundled", n=1, ks=(1, 5), limit=12)
    summary = run_benchmark(config, str(tmp_path), verifier=verifier, progress=False)
    first = load_tasks("bundled")
    tasks = {task_id: first[task_id] for task_id in list(first)[:12]}
    assert summary["pass_at_k"] == {"1": canonical_pass_rate(verifier, tasks)}
    assert summary["not_reported"] == {"5": "needs n >= 5 samples per task, got n=1"}
    assert {"summary.json", "report.md", "passk.png"} <= set(os.listdir(tmp_path))
    assert (tmp_path / "passk.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stale_api_fails_every_task_and_the_report_says_why(verifier, tmp_path):
    config = BenchConfig("stale-api", "bundled", n=1)
    summary = run_benchmark(config, str(tmp_path), verifier=verifier, progress=False)
    results = records(tmp_path / "results.jsonl")
    assert summary["pass_at_k"] == {"1": 0.0}
    assert summary["categories"]["deprecated-api"] == len(BUNDLED) == len(results)
    assert all(row["category"] == categorize(row) == "deprecated-api" for row in results)
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert f"| deprecated-api | {len(BUNDLED)} | 100.0% |" in report
    assert "| `QuantumCircuit.cnot` |" in report and "| `qiskit.BasicAer` |" in report


def test_hf_agent_runs_end_to_end_on_a_tiny_local_model(verifier, tmp_path):
    pytest.importorskip("torch")
    model = build_tiny_model(tmp_path / "model", "chat")
    config = BenchConfig(
        f"hf:{model}",
        "bundled",
        n=2,
        ks=(1, 2),
        limit=2,
        params=SamplingParams(max_new_tokens=16, seed=0),
        agent_options={"device": "cpu"},
    )

    def no_pool(tasks):
        raise AssertionError("a local model generates on the driver, not on rollout workers")

    summary = run_benchmark(
        config, str(tmp_path / "run"), verifier=verifier, rollout=no_pool, progress=False
    )
    samples = records(tmp_path / "run" / "samples.jsonl")
    assert sorted(keys(samples)) == sorted(
        (task_id, j) for task_id in list(BUNDLED)[:2] for j in range(2)
    )
    assert summary["samples"] == 4 and summary["pass_at_k"] == {"1": 0.0, "2": 0.0}


# -- resume -------------------------------------------------------------------------------------


def by_task_answer(body: dict, index: int) -> str:
    """Half the tasks get their canonical solution, the others a stale import; by task only, so
    a resumed run and an uninterrupted one see the same answers."""
    user = body["messages"][-1]["content"]
    task = next(task for task in BUNDLED.values() if task.prompt in user)
    if zlib.crc32(task.task_id.encode()) % 2:
        return "```python\nfrom qiskit import execute\n```"
    return f"```python\n{task.prompt}{task.canonical_solution}```"


RESUME_TASKS = 8  # the first tasks of the bundled set: enough for a kill to land mid-run


def bench_command(server: ChatServer, out) -> list[str]:
    return [
        sys.executable, "-m", "qsandbox_env", "bench",
        "--agent", f"openai:tiny-coder@{server.base_url}", "--tasks", "bundled",
        "--limit", str(RESUME_TASKS), "-n", "2", "-k", "1,2", "--out", str(out),
        "--workers", "2", "--chunk", "2", "--no-progress",
    ]  # fmt: skip


def wait_for_lines(path, count: int, process: subprocess.Popen, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        if os.path.exists(path) and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} never reached {count} lines (exit {process.poll()})")


def complete_part(path) -> bytes:
    data = path.read_bytes() if os.path.exists(path) else b""
    return data[: data.rfind(b"\n") + 1]


def test_a_killed_run_resumes_without_regenerating_or_reverifying(verifier, tmp_path):
    server = ChatServer(by_task_answer, delay=0.5)
    out = tmp_path / "resumed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Each run sends its own key, so that a request of the killed run that reaches the server
    # after the kill is not taken for one of the rerun's.
    first_env = {**env, "OPENAI_API_KEY": "key-of-the-killed-run"}
    rerun_env = {**env, "OPENAI_API_KEY": "key-of-the-rerun"}
    try:
        first = subprocess.Popen(
            bench_command(server, out), cwd=ROOT, env=first_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for_lines(out / "samples.jsonl", 4, first)
        first.send_signal(signal.SIGKILL)
        first.wait()
        samples_before = complete_part(out / "samples.jsonl")
        results_before = complete_part(out / "results.jsonl")
        with open(out / "samples.jsonl", "ab") as file:
            file.write(b'{"task_id": "qsandbox/gh')  # a torn write, as a kill mid-line leaves
        done_before = set(keys([json.loads(x) for x in samples_before.splitlines()]))
        assert 4 <= len(done_before) < 2 * RESUME_TASKS, "the kill did not land mid-run"

        second = subprocess.run(
            bench_command(server, out), cwd=ROOT, env=rerun_env, capture_output=True, text=True
        )
        assert second.returncode == 0, second.stderr
        assert "pass@1" in second.stdout
        with server.lock:
            sent = list(zip(server.requests, server.headers, strict=True))
        resumed_requests = [
            body
            for body, headers in sent
            if {k.lower(): v for k, v in headers.items()}.get("authorization")
            == "Bearer key-of-the-rerun"
        ]
        assert resumed_requests, "the rerun's requests were not told apart by their key"

        straight = tmp_path / "straight"
        agent = f"openai:tiny-coder@{server.base_url}"
        config = BenchConfig(agent, "bundled", n=2, ks=(1, 2), limit=RESUME_TASKS)
        expected = run_benchmark(config, str(straight), verifier=verifier, progress=False)
    finally:
        server.close()

    samples, results = records(out / "samples.jsonl"), records(out / "results.jsonl")
    everything = {(task_id, j) for task_id in list(BUNDLED)[:RESUME_TASKS] for j in range(2)}
    # Every sample generated once and verified once; what existed was kept byte for byte.
    assert sorted(keys(samples)) == sorted(everything)
    assert sorted(keys(results)) == sorted(everything)
    assert (out / "samples.jsonl").read_bytes().startswith(samples_before)
    assert (out / "results.jsonl").read_bytes().startswith(results_before)
    # The rerun asked the server only for what was missing.
    asked = [(by_task_id(body), body["n"]) for body in resumed_requests]
    complete_before = {task_id for task_id, j in done_before if (task_id, 1 - j) in done_before}
    assert not {task_id for task_id, _ in asked} & complete_before
    assert sum(n for _, n in asked) == len(everything - done_before)
    # And the final results are those of an uninterrupted run.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pass_at_k"] == expected["pass_at_k"]
    assert summary["categories"] == expected["categories"]
    outcome = {(r["task_id"], r["sample"]): r["outcome"] for r in results}
    straight_outcome = {
        (r["task_id"], r["sample"]): r["outcome"] for r in records(straight / "results.jsonl")
    }
    assert outcome == straight_outcome


def by_task_id(body: dict) -> str:
    user = body["messages"][-1]["content"]
    return next(task.task_id for task in BUNDLED.values() if task.prompt in user)


def test_a_run_directory_refuses_another_configuration(verifier, tmp_path):
    run_benchmark(BenchConfig("oracle", "bundled", limit=1), str(tmp_path), verifier=verifier,
                  progress=False)  # fmt: skip
    with pytest.raises(BenchError) as info:
        run_benchmark(BenchConfig("oracle", "bundled", n=2, limit=1), str(tmp_path),
                      verifier=verifier, progress=False)  # fmt: skip
    message = str(info.value)
    assert "holds a run with another configuration:\n  n: 1 in the saved run, 2 now\n" in message
    assert message.endswith("resume it with the same options, or pass a new --out directory")


def test_the_fit_policy_is_recorded_and_a_resume_with_another_is_refused(verifier, tmp_path):
    run_benchmark(BenchConfig("oracle", "bundled", limit=1), str(tmp_path), verifier=verifier,
                  progress=False)  # fmt: skip
    assert json.loads((tmp_path / "config.json").read_text())["fit"] == "fitted"
    assert json.loads((tmp_path / "summary.json").read_text())["fit"] == "fitted"
    assert "Answer fitting: `fitted` (code taken out of each reply" in (
        tmp_path / "report.md"
    ).read_text(encoding="utf-8")
    with pytest.raises(BenchError, match=r"fit: 'fitted' in the saved run, 'strict' now"):
        run_benchmark(BenchConfig("oracle", "bundled", limit=1, fit="strict"), str(tmp_path),
                      verifier=verifier, progress=False)  # fmt: skip


def test_a_verifier_fitting_otherwise_than_the_run_is_refused_before_anything_is_written(
    verifier, tmp_path
):
    out = tmp_path / "run"
    with pytest.raises(BenchError, match=r"fit='fitted' but the run's configuration says "):
        run_benchmark(BenchConfig("oracle", "bundled", limit=1, fit="strict"), str(out),
                      verifier=verifier, progress=False)  # fmt: skip
    assert not out.exists()


def test_an_unknown_fit_policy_is_refused():
    with pytest.raises(ValueError, match=r"fit: expected one of fitted, strict, got 'loose'"):
        BenchConfig("oracle", "bundled", fit="loose")
    assert main(["bench", "--agent", "oracle", "--tasks", "bundled", "--fit", "loose"]) == 2


def test_bench_fit_strict_scores_plain_humaneval_programs_and_says_so(tmp_path, capsys):
    # The oracle's bodies start with their own line break: strict passes them as fitted does.
    argv = ["bench", "--agent", "oracle", "--tasks", "bundled", "--limit", "2", "--workers", "1"]
    assert main([*argv, "--fit", "strict", "--no-progress", "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["fit"] == "strict"
    assert json.loads((tmp_path / "summary.json").read_text())["pass_at_k"] == {"1": 1.0}
    assert "Answer fitting: `strict` (plain HumanEval" in (tmp_path / "report.md").read_text()


def test_a_finished_run_reruns_without_a_policy_or_a_verifier(verifier, tmp_path):
    config = BenchConfig("oracle", "bundled", limit=2, ks=(1,))
    first = run_benchmark(config, str(tmp_path), verifier=verifier, progress=False)

    def refuse():
        raise AssertionError("nothing is left to generate or verify")

    again = run_benchmark(config, str(tmp_path), policy=refuse, verifier=refuse, progress=False)
    assert again["pass_at_k"] == first["pass_at_k"]
    assert len(records(tmp_path / "results.jsonl")) == 2


def test_jsonl_log_cuts_a_torn_last_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')
    log = JsonlLog(str(path))
    assert log.load() == [{"a": 1}, {"a": 2}]
    log.append({"a": 3})
    log.close()
    assert path.read_bytes() == b'{"a": 1}\n{"a": 2}\n{"a": 3}\n'


def test_jsonl_log_refuses_a_corrupt_line_in_the_middle(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(BenchError, match=r"log.jsonl line 2 is not valid JSON"):
        JsonlLog(str(path)).load()
    assert path.read_bytes() == b'{"a": 1}\nnot json\n{"a": 2}\n'


# -- command line -------------------------------------------------------------------------------


def test_bench_compare_prints_runs_side_by_side(verifier, tmp_path, capsys):
    for agent in ("oracle", "stale-api"):
        config = BenchConfig(agent, "bundled", limit=3)
        run_benchmark(config, str(tmp_path / agent), verifier=verifier, progress=False)
    assert main(["bench", "compare", str(tmp_path / "oracle"), str(tmp_path / "stale-api")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["metric", "oracle", "stale-api"]
    assert lines[1].split() == ["agent", "oracle", "stale-api"]
    assert ["pass@1", "100.00%", "0.00%"] in [line.split() for line in lines]
    assert ["deprecated-api", "0", "3"] in [line.split() for line in lines]


def test_bench_compare_of_an_unfinished_run_says_so(tmp_path, capsys):
    assert main(["bench", "compare", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"qsandbox: error: bench compare: {tmp_path / 'summary.json'} not found; finish that "
        "run first (rerun its command)\n"
    )


def test_bench_without_an_agent_says_what_is_required(capsys):
    assert main(["bench", "--tasks", "bundled", "--out", "x"]) == 2
    assert capsys.readouterr().err == (
        "qsandbox: error: bench: --agent is required (or use `qsandbox bench compare DIR...`)\n"
    )


def test_bench_data_with_a_file_source_is_refused(capsys, tmp_path):
    argv = ["bench", "--agent", "oracle", "--tasks", "tasks.json", "--data", "x.json"]
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "qsandbox: error: --data is for named sources (qiskit-humaneval, qiskit-humaneval-hard); "
        "--tasks 'tasks.json' is read as the task file itself\n"
    )


def test_bench_unknown_agent_fails_before_anything_is_written(capsys, tmp_path):
    out = tmp_path / "run"
    assert main(["bench", "--agent", "gpt", "--tasks", "bundled", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "qsandbox: error: --agent gpt: unknown agent 'gpt'; expected one of: hf:<...>, "
        "openai:<...>, oracle, stale-api\n"
    )
    assert not out.exists()


# -- Qiskit-HumanEval ---------------------------------------------------------------------------


@pytest.mark.dataset
@pytest.mark.slow
def test_oracle_on_humaneval_passes_at_the_verifiers_canonical_rate(tmp_path):
    path = str(humaneval_path())
    tasks = load_tasks(path)
    # A generous limit: on a loaded machine the slowest task (~20 s) must not time out in one
    # run and not the other.
    with Verifier(workers=2, timeout=300) as patient:
        pairs = [(t, t.canonical_solution) for t in tasks.values()]
        canonical = settle_shot_noise(patient, pairs, patient.verify_many(pairs))
        config = BenchConfig("oracle", "qiskit-humaneval", data=path, n=1)
        summary = run_benchmark(config, str(tmp_path), verifier=patient, progress=False)
    assert summary["tasks"] == len(tasks) == 151
    results = records(tmp_path / "results.jsonl")
    assert summary["pass_at_k"]["1"] == pytest.approx(sum(r["passed"] for r in results) / 151)
    # The oracle's verdicts are the canonical ones, task by task (shot noise aside: see SHOT_NOISE).
    failing = {r["task_id"] for r in results if not r["passed"]} - set(SHOT_NOISE)
    assert failing == {v.task_id for v in canonical if not v.passed}


def test_make_policy_builds_the_built_in_specs():
    assert make_policy("stale-api").name == "stale-api"
