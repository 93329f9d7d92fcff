"""`qsandbox distill`'s library: a real localhost teacher, real sandbox verdicts, the run directory.

The teacher (`tests.teacher_server`) answers the first six bundled tasks with, in order: a
correct answer reasoned in ``<think>``, one reasoned in ``reasoning_content``, a wrong answer it
fixes when shown feedback, a wrong answer, a correct answer after prose, and prose with no code.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from agents.distill import DistillConfig, DistillError, PromptTemplate, run_distill, split_answer
from agents.distill.leakage import shingles, similarity_report
from agents.distill.prompting import normalized_code
from agents.distill.runner import NO_CODE_FEEDBACK
from qsandbox_env import load_tasks
from tests.conftest import humaneval_path
from tests.teacher_server import TeacherServer

KINDS = ("think", "field", "repair", "wrong", "prose", "no_code")
TASKS = dict(list(load_tasks("bundled").items())[: len(KINDS)])
SCRIPT = dict(zip(TASKS, KINDS, strict=True))
KEPT = [
    task_id for task_id, kind in SCRIPT.items() if kind in ("think", "field", "repair", "prose")
]


@pytest.fixture
def teacher():
    with TeacherServer(TASKS, SCRIPT) as server:
        yield server


def config(server: TeacherServer, **changes) -> DistillConfig:
    options = {
        "teacher": f"openai:teacher-v3@{server.url}",
        "tasks": "bundled",
        "limit": len(KINDS),
        "n": 2,
        "repair": 1,
        "teacher_options": {"concurrency": 4, "max_retries": 0},
    }
    return DistillConfig(**{**options, **changes})


def read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file]


# -- taking an answer apart -------------------------------------------------------------------


def test_split_answer_keeps_reasoning_from_think_tags_the_field_and_prose() -> None:
    text = "<think>Bell pair: H then CX.</think>\nSo we entangle.\n```python\nqc.h(0)\n```\n"
    answer = split_answer(text, "From the field.")
    assert answer.reasoning == "From the field.\n\nBell pair: H then CX.\n\nSo we entangle."
    assert answer.code == "qc.h(0)\n"
    assert answer.has_code


def test_split_answer_finds_no_code_in_prose() -> None:
    answer = split_answer("The state is |+>, made by a Hadamard gate on qubit zero.")
    assert not answer.has_code and answer.code == ""


def test_near_duplicates_normalise_to_the_same_code() -> None:
    assert normalized_code("qc.h( 0 )  # H\n") == normalized_code("qc.h(0)\n")
    assert normalized_code("qc.h(0)\n") != normalized_code("qc.x(0)\n")


def test_template_without_the_task_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("expected {task} or {prompt}")):
        PromptTemplate(user="Write some code.")


# -- a run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(verifier, tmp_path_factory):
    """One complete run (n=2, one repair turn) and the server's request count."""
    out = tmp_path_factory.mktemp("distill")
    with TeacherServer(TASKS, SCRIPT) as server:
        stats = run_distill(config(server), str(out), verifier=verifier, progress=False)
        return out, stats, server.requests, server.url


def test_exactly_the_passing_answers_are_kept(finished) -> None:
    out, stats, _, _ = finished
    attempts = read_jsonl(out / "attempts.jsonl")
    passing = {(r["task_id"], r["sample"]) for r in attempts if r["passed"]}
    assert {task_id for task_id, _ in passing} == set(KEPT)
    train = read_jsonl(out / "train.jsonl")
    # Both samples of a task give the same code: the second is an exact duplicate.
    assert [example["task_id"] for example in train] == KEPT
    assert stats["kept"] == len(KEPT) and stats["duplicates_dropped"]["exact"] == len(KEPT)


def test_wrong_and_codeless_answers_are_logged_with_their_verdicts(finished) -> None:
    out, stats, _, _ = finished
    attempts = read_jsonl(out / "attempts.jsonl")
    by_kind = {kind: [r for r in attempts if SCRIPT[r["task_id"]] == kind] for kind in KINDS}
    assert {r["outcome"] for r in by_kind["wrong"]} <= {"failed", "error"}
    assert sorted(r["turn"] for r in by_kind["wrong"]) == [0, 0, 1, 1]  # repaired once, in vain
    assert {r["outcome"] for r in by_kind["no_code"]} == {"no_code"}
    assert stats["outcomes"]["passed"] == 2 * len(KEPT)


def test_a_repaired_answer_is_kept_from_its_passing_turn_with_its_reasoning(finished) -> None:
    out, stats, _, _ = finished
    (repaired,) = [e for e in read_jsonl(out / "train.jsonl") if SCRIPT[e["task_id"]] == "repair"]
    assert repaired["turn"] == 1
    assert "The feedback says the result was wrong" in repaired["messages"][-1]["content"]
    assert "A first guess" not in repaired["messages"][-1]["content"]
    assert stats["kept_after_repair"] == 1


def test_the_repair_turn_is_shown_the_environments_feedback(teacher, tmp_path, verifier) -> None:
    run_distill(config(teacher, n=1, limit=3), str(tmp_path), verifier=verifier, progress=False)
    repairs = [b["messages"] for b in teacher.bodies if len(b["messages"]) > 2]
    assert len(repairs) == 1
    assert repairs[0][-1]["content"].startswith("Your code did not pass (")
    assert repairs[0][-1]["content"].endswith("Fix it and answer again.")


def test_reasoning_arrives_both_ways_into_the_kept_messages(finished) -> None:
    out, _, _, _ = finished
    content = {e["task_id"]: e["messages"][-1]["content"] for e in read_jsonl(out / "train.jsonl")}
    think, field, _, prose = (content[task_id] for task_id in KEPT)
    assert think.startswith("The ghz_circuit state needs H then CX.\n\n```python\n")
    assert field.startswith("Reasoning field: qft_of_basis_state is a unitary.\n\n```python")
    assert prose.startswith("First the physics of ising_energy.")
    assert all(text.count("```") == 2 and text.endswith("```") for text in content.values())


def test_kept_examples_carry_the_environments_prompt_and_their_provenance(finished) -> None:
    out, _, _, url = finished
    example = read_jsonl(out / "train.jsonl")[0]
    assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
    assert TASKS[example["task_id"]].prompt in example["messages"][1]["content"]
    assert example["teacher"] == f"openai:teacher-v3@{url}"
    assert example["source"].endswith("bundled.jsonl") and example["passed"] is True


def test_the_kept_set_loads_with_datasets(finished) -> None:
    datasets = pytest.importorskip("datasets")
    out, _, _, _ = finished
    data = datasets.load_dataset("json", data_files=str(out / "train.jsonl"), split="train")
    assert data.num_rows == len(KEPT)
    assert {"messages", "task_id", "source", "teacher", "outcome"} <= set(data.column_names)


def test_stats_and_report_give_rates_tokens_and_reasoning_lengths(finished) -> None:
    out, stats, requests, _ = finished
    saved = json.loads((out / "stats.json").read_text())
    assert saved["kept"] == stats["kept"]
    assert saved["tokens"] == {
        "requests": requests,
        "prompt": 100 * requests,
        "completion": 50 * requests,
    }
    assert saved["by_task"][KEPT[0]] == {
        "difficulty": TASKS[KEPT[0]].difficulty,
        "samples": 2,
        "passed": 2,
        "kept": 1,
        "kept_rate": 0.5,
    }
    assert sum(g["kept"] for g in saved["by_difficulty"].values()) == len(KEPT)
    assert saved["reasoning_chars"]["without_reasoning"] == 0
    report = (out / "report.md").read_text()
    assert "kept **4** of 12 samples" in report and "## By difficulty" in report


# -- limits and resume ------------------------------------------------------------------------


def test_a_task_stops_after_keep_answers(teacher, verifier, tmp_path) -> None:
    one_at_a_time = {"concurrency": 1}  # with more, samples already in flight finish too
    stats = run_distill(
        config(teacher, keep=1, limit=1, n=3, teacher_options=one_at_a_time),
        str(tmp_path),
        verifier=verifier,
        progress=False,
    )
    assert teacher.requests == 1 and stats["kept"] == 1


def test_max_requests_stops_the_run_and_a_rerun_with_more_finishes_it(
    finished, teacher, tmp_path, verifier
):
    out, full, full_requests, _ = finished
    stats = run_distill(
        config(teacher, max_requests=3), str(tmp_path), verifier=verifier, progress=False
    )
    assert stats["stopped"] == "max_requests (3) reached"
    assert len(read_jsonl(tmp_path / "attempts.jsonl")) == 3 == teacher.requests
    stats = run_distill(config(teacher), str(tmp_path), verifier=verifier, progress=False)
    assert teacher.requests == full_requests and stats["stopped"] == ""
    assert stats["kept"] == full["kept"] and stats["outcomes"] == full["outcomes"]
    strip = lambda e: {k: v for k, v in e.items() if k not in ("teacher", "seconds")}  # noqa: E731
    assert [strip(e) for e in read_jsonl(tmp_path / "train.jsonl")] == [
        strip(e) for e in read_jsonl(out / "train.jsonl")
    ]


def test_a_finished_run_rerun_asks_the_teacher_nothing(teacher, tmp_path, verifier) -> None:
    run_distill(config(teacher, limit=2), str(tmp_path), verifier=verifier, progress=False)
    asked = teacher.requests
    run_distill(config(teacher, limit=2), str(tmp_path), verifier=verifier, progress=False)
    assert teacher.requests == asked


def test_max_tokens_total_stops_the_run(teacher, tmp_path, verifier) -> None:
    one_at_a_time = {"concurrency": 1}  # each request costs 150 tokens
    changes = {"max_tokens_total": 300, "teacher_options": one_at_a_time}
    stats = run_distill(config(teacher, **changes), str(tmp_path), verifier=verifier)
    assert stats["stopped"] == "max_tokens_total (300) reached" and teacher.requests == 2
    assert "stopped early: max_tokens_total (300) reached" in (tmp_path / "report.md").read_text()


def test_another_configuration_in_the_same_directory_is_refused(
    teacher, tmp_path, verifier
) -> None:
    run_distill(config(teacher, limit=1), str(tmp_path), verifier=verifier, progress=False)
    with pytest.raises(
        DistillError, match=r"another configuration:\n  n: 2 in the saved run, 3 now"
    ):
        run_distill(config(teacher, limit=1, n=3), str(tmp_path), verifier=verifier, progress=False)


def test_an_unreachable_teacher_is_an_error_and_keeps_what_was_kept(
    teacher, tmp_path, verifier
) -> None:
    run_distill(config(teacher, max_requests=2), str(tmp_path), verifier=verifier, progress=False)
    kept = (tmp_path / "train.jsonl").read_text()
    assert kept.count("\n") == 1
    teacher.close()
    with pytest.raises(DistillError, match=re.escape("connection refused; is the server running?")):
        run_distill(config(teacher), str(tmp_path), verifier=verifier, progress=False)
    assert (tmp_path / "train.jsonl").read_text() == kept
    assert len(read_jsonl(tmp_path / "attempts.jsonl")) == 2


def test_a_teacher_that_never_returns_code_is_an_error(tmp_path, verifier) -> None:
    tasks = dict(list(TASKS.items())[:2])
    with TeacherServer(tasks, dict.fromkeys(tasks, "no_code")) as server:
        with pytest.raises(DistillError, match="the teacher returned no code in 8 replies"):
            run_distill(
                config(server, limit=2, n=2, repair=1),
                str(tmp_path),
                verifier=verifier,
                progress=False,
            )
        assert server.bodies[-1]["messages"][-1]["content"] == NO_CODE_FEEDBACK
    assert (tmp_path / "stats.json").exists()


def test_a_malformed_task_file_is_a_clear_error(teacher, tmp_path) -> None:
    bad = tmp_path / "tasks.jsonl"
    bad.write_text('{"task_id": "x"}\n')
    with pytest.raises(DistillError, match=r"tasks\.jsonl"):
        run_distill(config(teacher, tasks=str(bad), limit=None), str(tmp_path / "run"))
    assert teacher.requests == 0


# -- benchmark leakage ------------------------------------------------------------------------


def test_qiskit_humaneval_is_refused_as_a_source(teacher, tmp_path) -> None:
    path = str(humaneval_path())
    with pytest.raises(DistillError, match="'qiskit-humaneval' is Qiskit-HumanEval, the benchmark"):
        run_distill(config(teacher, tasks="qiskit-humaneval", data=path, limit=None), str(tmp_path))
    assert teacher.requests == 0 and not (tmp_path / "attempts.jsonl").exists()


@pytest.mark.parametrize("source", ["qiskit-humaneval-hard", "Qiskit/qiskit_humaneval_hard"])
def test_the_benchmark_is_refused_by_name_before_it_is_loaded(teacher, tmp_path, source) -> None:
    with pytest.raises(DistillError, match=f"'{source}' is Qiskit-HumanEval, the benchmark"):
        run_distill(config(teacher, tasks=source, limit=None), str(tmp_path))  # no download


def test_a_copy_of_the_benchmark_under_another_name_is_refused(teacher, tmp_path) -> None:
    copy = tmp_path / "my_tasks.json"
    copy.write_text(humaneval_path().read_text())
    with pytest.raises(DistillError, match="task 'qiskitHumanEval/0' is from Qiskit-HumanEval"):
        run_distill(config(teacher, tasks=str(copy), limit=None), str(tmp_path / "run"))


def test_the_report_measures_similarity_to_benchmark_prompts() -> None:
    path = str(humaneval_path())
    benchmark = next(iter(load_tasks(path).values()))
    copied = {"task_id": "mine/0", "messages": [{"role": "user", "content": benchmark.prompt}]}
    own = {"task_id": "mine/1", "messages": [{"role": "user", "content": "Prepare a GHZ state."}]}
    report = similarity_report([own, copied], [path])
    assert report["max_jaccard"] == 1.0
    assert report["top"][0] == {
        "task_id": "mine/0",
        "benchmark_id": benchmark.task_id,
        "jaccard": 1.0,
    }
    assert report["benchmark_prompts"] == 151


def test_shingles_are_three_words() -> None:
    assert shingles("a b") == frozenset()
    assert shingles("One two THREE four") == {("one", "two", "three"), ("two", "three", "four")}


def test_the_run_reports_the_similarity_of_its_kept_set(teacher, tmp_path, verifier) -> None:
    path = str(humaneval_path())
    stats = run_distill(
        config(teacher, limit=1, n=1, benchmark_files=(path,)),
        str(tmp_path),
        verifier=verifier,
        progress=False,
    )
    similarity = stats["benchmark_similarity"]
    assert similarity["files"] == [path] and 0 <= similarity["max_jaccard"] < 0.5
    assert "Highest word 3-shingle Jaccard similarity" in (tmp_path / "report.md").read_text()


def test_the_progress_bar_counts_kept_and_tried(teacher, tmp_path, capfd, verifier) -> None:
    import io

    from agents.distill.runner import _KeptProgress

    screen = io.StringIO()
    bar = _KeptProgress(4, made=None, stream=screen, interactive=True, label="distill")
    for passed in (True, False, True, True):
        bar.verified(passed)
    bar.close()
    assert "4/4" in screen.getvalue() and "3 kept (75.0%)" in screen.getvalue(), screen.getvalue()
    # Into a pipe (as here, where stderr is captured) a run draws nothing.
    run_distill(config(teacher, limit=4, n=1), str(tmp_path), verifier=verifier)
    assert "kept (" not in capfd.readouterr().err


def test_outputs_are_in_the_run_directory(finished) -> None:
    out, _, _, _ = finished
    names = {"config.json", "attempts.jsonl", "train.jsonl", "stats.json", "report.md"}
    assert names <= set(os.listdir(out))


# -- the command line -------------------------------------------------------------------------


def cli(server: TeacherServer, out, *more: str) -> list[str]:
    return [
        "distill",
        "--teacher",
        f"openai:teacher-v3@{server.url}",
        "--out",
        str(out),
        "--no-progress",
        *more,
    ]


def test_cli_distils_and_says_what_it_wrote(teacher, tmp_path, capsys) -> None:
    from qsandbox_env.cli import main

    args = ["--tasks", "bundled", "--limit", "2", "-n", "1", "--repair", "1", "--workers", "1"]
    assert main(cli(teacher, tmp_path, *args)) == 0
    printed = capsys.readouterr().out
    assert "kept 2 of 2 samples (100.0%), 0 after repair; 2 requests, 300 tokens" in printed
    assert "{train.jsonl, stats.json, report.md}" in printed
    assert len(read_jsonl(tmp_path / "train.jsonl")) == 2


def test_cli_refuses_the_benchmark_before_asking_the_teacher(teacher, tmp_path, capsys) -> None:
    from qsandbox_env.cli import main

    path = str(humaneval_path())
    assert main(cli(teacher, tmp_path, "--tasks", "qiskit-humaneval", "--data", path)) == 2
    assert "--allow-benchmark-tasks" in capsys.readouterr().err
    assert teacher.requests == 0


def test_cli_reads_the_prompt_template_from_a_file(teacher, tmp_path, capsys) -> None:
    from qsandbox_env.cli import main

    template = tmp_path / "template.txt"
    template.write_text("Explain the physics of {entry_point} on {target}, then code:\n{task}")
    args = ["--tasks", "bundled", "--limit", "1", "-n", "1", "--workers", "1"]
    args += ["--prompt-template", str(template), "--target", "aer"]
    assert main(cli(teacher, tmp_path / "run", *args)) == 0
    user = teacher.bodies[0]["messages"][-1]["content"]
    assert user.startswith("Explain the physics of ghz_circuit on aer, then code:\nComplete")


def test_cli_refuses_a_template_without_the_task(teacher, tmp_path, capsys) -> None:
    from qsandbox_env.cli import main

    template = tmp_path / "template.txt"
    template.write_text("Write some code.")
    args = ["--tasks", "bundled", "--prompt-template", str(template)]
    assert main(cli(teacher, tmp_path / "run", *args)) == 2
    assert "expected {task} or {prompt} in the user template" in capsys.readouterr().err
