"""The bundled task set: well-formed, every canonical solution passes, plausible mistakes fail.

Wrong answers live in ``tests/data/bundled_wrong.json`` (never in the package data): for each task,
one or more realistic mistakes (wrong qubit, big-endian bit order, a missing gate, a removed API,
a non-ISA circuit, a missing factor), each of which the task's test must reject. Together with the
canonical solutions passing, this is a mutation test: no task's test is vacuous.

The bundled prompts must also be original: `test_no_prompt_is_a_near_duplicate_of_qiskit_humaneval`
compares every bundled prompt with every Qiskit-HumanEval prompt.
"""

from __future__ import annotations

import collections
import itertools
import json
import pathlib
import re

import pytest

import qsandbox_env
from qsandbox_env import QiskitCodeEnv, load_tasks
from tests.conftest import humaneval_path

BUNDLED = pathlib.Path(qsandbox_env.__file__).parent / "data" / "bundled.jsonl"
WRONG_ANSWERS = pathlib.Path(__file__).parent / "data" / "bundled_wrong.json"
DIFFICULTIES = ("basic", "intermediate", "difficult")
# Areas the bundled set must cover, each by at least one task of that topic.
REQUIRED_TOPICS = (
    "circuits",
    "transpilation",
    "primitives",
    "quantum-info",
    "noise",
    "qasm2",
    "qasm3",
    "qpy",
    "dynamic-circuits",
)
MIN_TASKS = 40
MIN_PER_DIFFICULTY = 8

# Near-duplicate threshold on the Jaccard similarity of word 3-shingles. Calibrated on
# Qiskit-HumanEval itself: its tasks that are one-word variants of another (QASM 2 vs QASM 3
# export, /85 vs /94; no vs maximum optimisation, /18 vs /19; AND vs OR gate, /54 vs /55) score
# 0.35 to 0.74, while unrelated prompts stay below 0.2. 0.25 flags anything as close as such a
# variant, with margin, and leaves room for the shared Qiskit vocabulary of unrelated tasks.
NEAR_DUPLICATE = 0.25
SHINGLE = 3
KNOWN_VARIANTS = (
    ("qiskitHumanEval/85", "qiskitHumanEval/94"),
    ("qiskitHumanEval/18", "qiskitHumanEval/19"),
)


def shingles(text: str, size: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    """The set of ``size``-word windows of ``text``, case and punctuation ignored."""
    words = re.findall(r"[a-z0-9_]+", text.lower())
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def similarity(a: frozenset, b: frozenset) -> float:
    """Jaccard similarity of two shingle sets: 1.0 for identical wording, 0.0 for none shared."""
    union = a | b
    return len(a & b) / len(union) if union else 0.0


@pytest.fixture(scope="module")
def tasks():
    return load_tasks("bundled")


@pytest.fixture(scope="module")
def wrong_answers():
    return json.loads(WRONG_ANSWERS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def humaneval():
    return {record["task_id"]: record for record in json.loads(humaneval_path().read_text())}


def test_the_named_source_is_the_packaged_file(tasks):
    assert list(tasks) == list(load_tasks(BUNDLED))


def test_bundled_set_has_enough_tasks_of_every_difficulty(tasks):
    counts = collections.Counter(task.difficulty for task in tasks.values())
    assert len(tasks) >= MIN_TASKS, len(tasks)
    assert set(counts) == set(DIFFICULTIES), counts
    assert min(counts.values()) >= MIN_PER_DIFFICULTY, counts


def test_bundled_set_covers_every_required_topic(tasks):
    topics = {task.metadata["topic"] for task in tasks.values()}
    assert set(REQUIRED_TOPICS) <= topics, sorted(set(REQUIRED_TOPICS) - topics)


def test_bundled_tasks_are_well_formed(tasks):
    for task in tasks.values():
        assert re.fullmatch(r"qsandbox/[a-z0-9_]+", task.task_id), task.task_id
        assert task.format == "completion"
        assert task.canonical_solution.startswith("\n    "), task.task_id
        assert task.difficulty in DIFFICULTIES, (task.task_id, task.difficulty)
        assert task.metadata.get("topic"), task.task_id
        assert f"def {task.entry_point}(" in task.prompt
        assert task.prompt.endswith('"""\n'), task.task_id
        assert task.test.startswith("def check(candidate):\n"), task.task_id


def test_tests_use_no_removed_qiskit_api(tasks):
    removed = re.compile(r"\bexecute\(|BasicAer|\.c_if\(|\bSampler\(\)|\bEstimator\(\)")
    for task in tasks.values():
        for text in (task.prompt, task.canonical_solution, task.test):
            assert not removed.search(text), (task.task_id, removed.search(text).group())


def test_every_task_has_a_documented_wrong_answer(tasks, wrong_answers):
    assert set(wrong_answers) == set(tasks)
    for task_id, answers in wrong_answers.items():
        assert answers, task_id
        for answer in answers:
            assert answer["mistake"].strip() and answer["completion"].strip(), task_id
            assert answer["completion"] != tasks[task_id].canonical_solution, task_id


def test_canonical_solutions_pass(tasks, verifier):
    verdicts = verifier.verify_many([(t, t.canonical_solution) for t in tasks.values()])
    failed = [(v.task_id, v.outcome.value, v.detail[-400:]) for v in verdicts if not v.passed]
    assert not failed


def test_a_whole_function_answer_earns_reward_through_the_environment(tasks, verifier):
    # One task per difficulty, answered the way a model does: the whole function, fenced.
    one_per_difficulty = {task.difficulty: task for task in tasks.values()}
    env = QiskitCodeEnv(tasks, verifier=verifier)
    rewards = {}
    for task in one_per_difficulty.values():
        env.reset(options={"task_id": task.task_id})
        answer = f"Here it is:\n```python\n{task.prompt}{task.canonical_solution}```\n"
        rewards[task.task_id] = env.step(answer)[1]
    assert set(rewards.values()) == {1.0}, rewards


def test_every_wrong_answer_fails(tasks, wrong_answers, verifier):
    pairs = [
        (tasks[task_id], answer["completion"])
        for task_id, answers in wrong_answers.items()
        for answer in answers
    ]
    mistakes = [answer["mistake"] for answers in wrong_answers.values() for answer in answers]
    verdicts = verifier.verify_many(pairs)
    passed = [(v.task_id, why) for v, why in zip(verdicts, mistakes, strict=True) if v.passed]
    assert not passed


def test_an_empty_answer_fails_every_task(tasks, verifier):
    verdicts = verifier.verify_many([(task, "\n    return None\n") for task in tasks.values()])
    assert not [v.task_id for v in verdicts if v.passed]


@pytest.mark.dataset
def test_similarity_flags_the_known_variants_inside_qiskit_humaneval(humaneval):
    for first, second in KNOWN_VARIANTS:
        score = similarity(
            shingles(humaneval[first]["prompt"]), shingles(humaneval[second]["prompt"])
        )
        assert score > NEAR_DUPLICATE, (first, second, score)


@pytest.mark.dataset
def test_similarity_flags_a_lightly_reworded_copy(humaneval):
    prompt = humaneval["qiskitHumanEval/135"]["prompt"]
    reworded = prompt.replace("noise_model", "build_model").replace("Construct", "Build")
    assert similarity(shingles(prompt), shingles(reworded)) > NEAR_DUPLICATE


@pytest.mark.dataset
def test_no_prompt_is_a_near_duplicate_of_qiskit_humaneval(tasks, humaneval):
    theirs = {task_id: shingles(record["prompt"]) for task_id, record in humaneval.items()}
    score, ours, closest = max(
        (similarity(shingles(task.prompt), other), task.task_id, their_id)
        for task in tasks.values()
        for their_id, other in theirs.items()
    )
    assert score <= NEAR_DUPLICATE, f"{ours} vs {closest}: similarity {score:.3f}"
    print(f"max similarity to Qiskit-HumanEval: {score:.3f} ({ours} vs {closest})")


def test_no_two_bundled_prompts_are_near_duplicates(tasks):
    ours = {task.task_id: shingles(task.prompt) for task in tasks.values()}
    score, first, second = max(
        (similarity(ours[a], ours[b]), a, b) for a, b in itertools.combinations(ours, 2)
    )
    assert score <= NEAR_DUPLICATE, f"{first} vs {second}: similarity {score:.3f}"
