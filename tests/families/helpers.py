"""What every family's test file checks, written once: the files differ only in their family,
its config errors, how difficulty shows, the realistic mistake that must fail and the shortcut
answers (right output, task not done) that must fail too."""

from __future__ import annotations

import re
from collections.abc import Callable

from qsandbox_env import Outcome, Task, Verifier
from qsandbox_env.families import DIFFICULTIES, FAMILIES, load_procedural, make_task

TASKS_PER_FAMILY = 20
UNIQUE_PER_DIFFICULTY = 100


def twenty_tasks(family: str, seed: int = 11) -> list[Task]:
    """Twenty tasks of ``family``, cycling through the three difficulties."""
    return list(load_procedural(TASKS_PER_FAMILY, seed=seed, families=family).values())


def assert_canonical_solutions_pass(verifier: Verifier, tasks: list[Task]) -> None:
    verdicts = verifier.verify_many([(task, task.canonical_solution) for task in tasks])
    failures = [(v.task_id, v.outcome.value, v.detail[-300:]) for v in verdicts if not v.passed]
    assert not failures, failures


def assert_mutants_fail(
    verifier: Verifier, tasks: list[Task], mutate: Callable[[Task], str | None], minimum: int
) -> None:
    """Each mutated canonical solution (None: the mistake does not apply) fails its test.

    ``Outcome.FAILED`` means the test's own assertions caught the mistake; a crash would not
    show that the test looks at the right thing.
    """
    pairs = []
    for task in tasks:
        mutant = mutate(task)
        if mutant is not None:
            assert mutant != task.canonical_solution, f"{task.task_id}: mutation changed nothing"
            pairs.append((task, mutant))
    assert len(pairs) >= minimum, f"only {len(pairs)} tasks had the mistake to make"
    verdicts = verifier.verify_many(pairs)
    survivors = [
        (v.task_id, v.outcome.value, v.detail[-200:])
        for v in verdicts
        if v.outcome is not Outcome.FAILED
    ]
    assert not survivors, survivors


def assert_deterministic(family: str) -> None:
    """Same arguments, same tasks (every field); another seed, other prompts."""
    first = load_procedural(12, seed=5, families=family)
    again = load_procedural(12, seed=5, families=family)
    assert [_fields(task) for task in first.values()] == [_fields(t) for t in again.values()]
    other = load_procedural(12, seed=6, families=family)
    assert [t.prompt for t in first.values()] != [t.prompt for t in other.values()]
    shared = {t.prompt for t in first.values()} & {t.prompt for t in other.values()}
    assert len(shared) <= 3, f"seeds 5 and 6 share {len(shared)} of 12 prompts"


def assert_rebuilt_from_metadata(family: str) -> None:
    """Any task comes back from the coordinates its metadata records."""
    for task in load_procedural(6, seed=3, families=family).values():
        keys = ("family", "seed", "index", "difficulty", "attempt")
        rebuilt = make_task(**{key: task.metadata[key] for key in keys})
        assert _fields(rebuilt) == _fields(task)


def assert_prompts_unique(family: str) -> None:
    """No prompt repeats within a difficulty, up to three quarters of a small task space."""
    sizes = FAMILIES[family].distinct_tasks
    for difficulty in DIFFICULTIES:
        count = min(UNIQUE_PER_DIFFICULTY, 3 * sizes.get(difficulty, 10**9) // 4)
        tasks = load_procedural(count, seed=0, families=family, difficulty=difficulty)
        prompts = [task.prompt for task in tasks.values()]
        assert len(set(prompts)) == count, (difficulty, count - len(set(prompts)))


def by_difficulty(family: str, count: int = 30) -> dict[str, list[Task]]:
    return {
        level: list(load_procedural(count, seed=2, families=family, difficulty=level).values())
        for level in DIFFICULTIES
    }


def drop_last_gate(code: str) -> str | None:
    """The mistake "a gate is missing": the last ``qc.<gate>(...)`` line becomes ``pass``."""
    lines = code.split("\n")
    for number in range(len(lines) - 1, -1, -1):
        stripped = lines[number].lstrip()
        if re.match(r"qc\.[a-z]+\(", stripped) and not stripped.startswith("qc.measure"):
            lines[number] = lines[number][: len(lines[number]) - len(stripped)] + "pass"
            return "\n".join(lines)
    return None


def whole_function(task: Task, lines: list[str]) -> str:
    """An answer that redefines the entry point as ``def <entry>(*args, **kwargs)``.

    Shortcut answers are written this way so that the same answer runs against any version of a
    family's signature (it ignores what it is given).
    """
    body = "".join(f"    {line}\n" for line in lines)
    return f"def {task.entry_point}(*args, **kwargs):\n{body}"


def read_from_the_test(task: Task, name: str) -> str:
    """The shortcut: return the test's own ``name`` (its reference answer), read from the frame of
    the ``check`` that called the candidate; ``None`` when the test has not made it yet."""
    return whole_function(task, ["import sys", f"return sys._getframe(1).f_locals.get({name!r})"])


def permutation_answer(num_qubits: int, image: list[int]) -> list[str]:
    """Body lines of an answer that appends the basis permutation x -> image[x] as a matrix."""
    size = 2**num_qubits
    return [
        "import numpy as np",
        "from qiskit import QuantumCircuit",
        f"image = {image}",
        f"matrix = np.zeros(({size}, {size}))",
        "for x, y in enumerate(image):",
        "    matrix[y, x] = 1",
        f"qc = QuantumCircuit({num_qubits})",
        f"qc.unitary(matrix, range({num_qubits}))",
        "return qc",
    ]


def _fields(task: Task) -> tuple:
    return (
        task.task_id,
        task.prompt,
        task.test,
        task.entry_point,
        task.canonical_solution,
        task.difficulty,
        dict(task.metadata),
    )
