"""The answer-shape matrix: correct answers pass in every shape models write, wrong ones fail.

The shapes are `benchmarks.answer_shapes.SHAPES` (the benchmark prints the whole matrix). Here:
every shape of every answer of every source is assembled and compiled (cheap); a rotation of
shapes over the bundled tasks, the wrong answers of ``tests/data``, a procedural sample, the
bundled tasks reshaped into the hard set's program format and a sample of Qiskit-HumanEval
(normal and hard) is verified, each shape several times; the whole product on the bundled
sources is verified under the ``slow`` marker.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from benchmarks.answer_shapes import (
    SHAPES,
    Answer,
    answer_for,
    canonical_answer,
    hard_format_records,
    program_text,
    render,
)
from qsandbox_env import Outcome, Verifier, load_tasks
from qsandbox_env.extract import completion_text
from tests.conftest import ROOT, humaneval_path

BUNDLED = load_tasks("bundled")
WRONG = json.loads((ROOT / "tests" / "data" / "bundled_wrong.json").read_text(encoding="utf-8"))
# Qiskit-HumanEval tasks whose canonical solutions pass offline in a few seconds.
HUMANEVAL_SAMPLE = ("qiskitHumanEval/0", "qiskitHumanEval/2", "qiskitHumanEval/5")


def bundled_records() -> list[dict]:
    return [
        {
            "task_id": task.task_id,
            "prompt": task.prompt,
            "canonical_solution": task.canonical_solution,
            "test": task.test,
            "entry_point": task.entry_point,
        }
        for task in BUNDLED.values()
    ]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, list[Answer]]:
    """Correct answers by source, and the wrong ones; the hard-format files written here."""
    folder = tmp_path_factory.mktemp("shapes")
    program_file = folder / "bundled_program.json"
    program_file.write_text(json.dumps(hard_format_records(bundled_records())), encoding="utf-8")
    return {
        "bundled": [canonical_answer(task) for task in BUNDLED.values()],
        "bundled-program": [canonical_answer(t) for t in load_tasks(program_file).values()],
        "procedural": [canonical_answer(t) for t in load_tasks("procedural", n=19).values()],
        "bundled-wrong": [
            answer_for(BUNDLED[task_id], item["completion"])
            for task_id, items in WRONG.items()
            for item in items
        ],
    }


@pytest.fixture(scope="module")
def humaneval(tmp_path_factory) -> dict[str, list[Answer]]:
    path = humaneval_path()
    records = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    hard = tmp_path_factory.mktemp("hard") / "qiskit_humaneval_hard.json"
    hard.write_text(json.dumps(hard_format_records(records)), encoding="utf-8")
    return {
        "humaneval": [canonical_answer(t) for t in load_tasks(path).values()],
        "humaneval-hard": [canonical_answer(t) for t in load_tasks(hard).values()],
    }


def rotation(answers: list[Answer], per_answer: int) -> list[tuple[str, Answer, object]]:
    """``per_answer`` shapes of each answer, moving on through the shapes from one to the next,
    so that every shape is verified on several answers."""
    picked = []
    for index, answer in enumerate(answers):
        shaped = list(render(answer).items())
        for step in range(min(per_answer, len(shaped))):
            name, completion = shaped[(index * per_answer + step) % len(shaped)]
            picked.append((name, answer, completion))
    return picked


def every_shape(answers: list[Answer]) -> list[tuple[str, Answer, object]]:
    return [(name, a, completion) for a in answers for name, completion in render(a).items()]


def verify(verifier, picked) -> list[tuple[str, str, Outcome, str]]:
    pairs = [(answer.task, completion_text(completion)) for _, answer, completion in picked]
    verdicts = verifier.verify_many(pairs, timeout=240)
    return [
        (name, answer.task.task_id, verdict.outcome, verdict.detail[-400:])
        for (name, answer, _), verdict in zip(picked, verdicts, strict=True)
    ]


def shapes_covered(picked) -> set[str]:
    return {name for name, _, _ in picked}


# -- the shapes themselves -------------------------------------------------------------------------


def test_every_shape_applies_to_some_bundled_task(sources):
    rendered = {name for answers in sources.values() for a in answers for name in render(a)}
    assert rendered == set(SHAPES)


def test_body_shapes_are_what_their_names_say():
    shapes = render(canonical_answer(BUNDLED["qsandbox/ghz_circuit"]))
    assert shapes["body"].startswith("\n    ")
    assert shapes["body without leading newline"].startswith("    ")
    assert shapes["body, first line unindented"].startswith("qc = ")
    flush_left = shapes["flush-left body with return"].splitlines()
    assert "return qc" in flush_left and all(not line.startswith(" ") for line in flush_left[:3])
    assert "\n\t" in shapes["tab-indented body"] and "\n    " not in shapes["tab-indented body"]
    assert (
        shapes["2-space body"].startswith("\n  qc = ") and "\n    qc.cx" in shapes["2-space body"]
    )
    assert "\r\n" in shapes["body, CRLF"]
    assert "flush-left body without return" not in shapes


# -- compile level: every shape of every answer of every source ------------------------------------


def compile_failures(answers: list[Answer]) -> list[tuple[str, str, str]]:
    failures = []
    for name, answer, completion in every_shape(answers):
        source = program_text(answer.task, completion, "fitted")
        try:
            compile(source, answer.task.task_id, "exec")
        except (SyntaxError, ValueError) as error:
            failures.append((answer.task.task_id, name, str(error)))
    return failures


@pytest.mark.parametrize("source", ["bundled", "bundled-program", "procedural", "bundled-wrong"])
def test_every_shape_of_every_answer_assembles_into_a_program_that_compiles(sources, source):
    assert compile_failures(sources[source]) == []


@pytest.mark.dataset
@pytest.mark.parametrize("source", ["humaneval", "humaneval-hard"])
def test_every_shape_of_every_humaneval_solution_compiles(humaneval, source):
    assert len(humaneval[source]) == 151
    assert compile_failures(humaneval[source]) == []


# -- verified: a rotation of shapes over every source ----------------------------------------------


def test_bundled_solutions_pass_in_every_shape(verifier, sources):
    picked = rotation(sources["bundled"], per_answer=4) + [
        row for row in every_shape(sources["bundled"]) if row[0] == "flush-left body without return"
    ]
    assert shapes_covered(picked) == set(SHAPES)
    failed = [row for row in verify(verifier, picked) if row[2] is not Outcome.PASSED]
    assert failed == []


def test_bundled_solutions_reshaped_as_whole_programs_pass(verifier, sources):
    picked = rotation(sources["bundled-program"], per_answer=1)
    assert len(shapes_covered(picked)) == 8  # every shape that applies to a whole program
    failed = [row for row in verify(verifier, picked) if row[2] is not Outcome.PASSED]
    assert failed == []


def test_procedural_solutions_pass_in_every_shape(verifier, sources):
    picked = rotation(sources["procedural"], per_answer=2)
    assert shapes_covered(picked) == set(SHAPES) - {"flush-left body without return"}
    failed = [row for row in verify(verifier, picked) if row[2] is not Outcome.PASSED]
    assert failed == []


def test_wrong_answers_fail_in_every_shape(verifier, sources):
    picked = rotation(sources["bundled-wrong"], per_answer=1)
    assert shapes_covered(picked) == set(SHAPES) - {"flush-left body without return"}
    passed = [row for row in verify(verifier, picked) if row[2] is Outcome.PASSED]
    assert passed == []


@pytest.mark.dataset
def test_sampled_humaneval_solutions_pass_in_every_shape_normal_and_hard(verifier, humaneval):
    picked = [
        row
        for source in ("humaneval", "humaneval-hard")
        for row in every_shape([a for a in humaneval[source] if a.task.task_id in HUMANEVAL_SAMPLE])
    ]
    assert shapes_covered(picked) == set(SHAPES) - {"flush-left body without return"}
    failed = [row for row in verify(verifier, picked) if row[2] is not Outcome.PASSED]
    assert failed == []


# -- strict: the plain HumanEval convention --------------------------------------------------------


@pytest.fixture(scope="module")
def strict_verifier():
    with Verifier(workers=2, fit="strict") as verifier:
        yield verifier


@pytest.mark.dataset
def test_strict_scores_the_issues_answers_as_plain_humaneval_does_and_fitted_passes_them(
    verifier, strict_verifier, humaneval
):
    task = next(a.task for a in humaneval["humaneval"] if a.task.task_id == "qiskitHumanEval/2")
    answers = [
        "    return Statevector([1/sqrt(2), 0, 0, 1/sqrt(2)])\n",
        "Here is the body:\n```python\n    return Statevector([1/sqrt(2), 0, 0, 1/sqrt(2)])\n```",
        "```python\nreturn Statevector([1/sqrt(2), 0, 0, 1/sqrt(2)])\n```",
    ]
    pairs = [(task, answer) for answer in answers]
    assert [v.outcome for v in strict_verifier.verify_many(pairs)] == [Outcome.SYNTAX] * 3
    assert [v.outcome for v in verifier.verify_many(pairs)] == [Outcome.PASSED] * 3
    canonical = [(task, task.canonical_solution)]
    assert strict_verifier.verify_many(canonical)[0].outcome is Outcome.PASSED


def test_strict_runs_the_completion_as_written(strict_verifier):
    task = BUNDLED["qsandbox/ghz_circuit"]
    shapes = render(canonical_answer(task))
    pairs = [(task, shapes[name]) for name in ("body", "body fenced in prose", "2-space body")]
    verdicts = strict_verifier.verify_many(pairs)
    assert [v.outcome for v in verdicts] == [Outcome.PASSED, Outcome.SYNTAX, Outcome.SYNTAX]
    assert verdicts[1].code == shapes["body fenced in prose"]  # nothing taken out of the text


# -- the whole product (slow) ----------------------------------------------------------------------


@pytest.mark.slow
def test_every_shape_of_every_bundled_answer_is_verified(verifier, sources):
    for source in ("bundled", "bundled-program", "procedural", "bundled-wrong"):
        rows = verify(verifier, every_shape(sources[source]))
        expected = Outcome.FAILED if source == "bundled-wrong" else Outcome.PASSED
        wrong = [row for row in rows if (row[2] is Outcome.PASSED) != (expected is Outcome.PASSED)]
        assert wrong == [], source
