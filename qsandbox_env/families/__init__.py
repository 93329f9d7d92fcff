"""Procedural task families: unlimited, reproducible Qiskit coding tasks for training.

``load_tasks("procedural", n=..., seed=..., families=..., difficulty=...)`` lands in
`load_procedural`. Each family lives in its own module (config dataclass, one preset per
difficulty, ``generate(rng, config)``, registration on its last line); importing this package
registers them all. Tasks use the completion format of Qiskit-HumanEval's normal set and ids
``procedural/<family>/<index>``, where ``index`` counts the family's tasks in the set.

Generated tasks are for training, never for reporting benchmark scores: they are not
Qiskit-HumanEval. This package only writes task text; it must never run a generated solution or
test itself (the Verifier does, in the sandbox). It imports only the task types
(:mod:`qsandbox_env.tasks`) from the rest of the project; it must never import the source registry
(:mod:`qsandbox_env.sources`, which sits above it and names `load_procedural`), the Verifier, the
sandbox or ``agents``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from qsandbox_env.families.core import (
    DIFFICULTIES,
    FAMILIES,
    Family,
    GeneratedTask,
    family_names,
    get_family,
    make_task,
    register_family,
)
from qsandbox_env.tasks import Task, TaskSet

__all__ = [
    "DIFFICULTIES",
    "FAMILIES",
    "MAX_ATTEMPTS",
    "Family",
    "GeneratedTask",
    "family_names",
    "get_family",
    "load_procedural",
    "make_task",
    "register_family",
]

# One module per family; importing a module registers its family.
FAMILY_MODULES = (
    "basis_state",
    "bernstein_vazirani",
    "classical_logic",
    "deutsch_jozsa",
    "entangled_state",
    "grover_search",
    "isa_transpile",
    "parameter_binding",
    "pauli_expectation",
    "qft_variants",
    "single_qubit",
)
for _module in FAMILY_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


def load_procedural(
    n: int = 200,
    seed: int = 0,
    families: Sequence[str] | str | None = None,
    difficulty: str | None = None,
) -> TaskSet:
    """Generate ``n`` tasks spread round-robin over ``families``.

    Task ``i`` of the set comes from family ``families[i % len(families)]`` and is that family's
    task number ``i // len(families)``. A family's tasks depend only on the family, ``seed`` and
    ``difficulty``, never on ``n`` or the other families: ``procedural/<family>/<k>`` is the
    same task in every set built with the same seed and difficulty. Within a family no prompt
    repeats while the family's task space allows (a repeated draw is redrawn, up to
    `MAX_ATTEMPTS` times; see `Family.distinct_tasks` for the few small spaces).

    Args:
        n: Number of tasks, at least 1.
        seed: Any int; distinct seeds give distinct task sets.
        families: One family name, several, or ``None`` for every registered family (sorted).
        difficulty: ``"basic"``, ``"intermediate"`` or ``"difficult"``; ``None`` cycles through
            the three per family (its task 0 is basic, 1 intermediate, 2 difficult, 3 basic, ...).

    Returns:
        The tasks in generation order, keyed by ``procedural/<family>/<index>``.

    Raises:
        TypeError: An argument of the wrong type.
        ValueError: ``n`` below 1, an unknown or repeated family, or an unknown difficulty.

    Example:
        >>> tasks = load_procedural(n=4, seed=7, families=["basis_state", "grover_search"])
        >>> list(tasks)  # doctest: +NORMALIZE_WHITESPACE
        ['procedural/basis_state/0', 'procedural/grover_search/0',
         'procedural/basis_state/1', 'procedural/grover_search/1']
        >>> [task.difficulty for task in tasks.values()]
        ['basic', 'basic', 'intermediate', 'intermediate']
    """
    count = _checked_count(n)
    seed = _checked_seed(seed)
    names = _checked_families(families)
    _checked_difficulty(difficulty)
    per_family = {
        name: _family_tasks(name, seed, len(range(k, count, len(names))), difficulty)
        for k, name in enumerate(names)
    }
    tasks = [per_family[names[i % len(names)]][i // len(names)] for i in range(count)]
    shown = ",".join(names) if families is not None else "all"
    source = f"procedural(n={count}, seed={seed}, families={shown}, difficulty={difficulty})"
    return TaskSet(tasks, source=source)


MAX_ATTEMPTS = 64
"""Draws tried per task before a repeated prompt is accepted (small task spaces run out)."""


def _family_tasks(family: str, seed: int, count: int, difficulty: str | None) -> list[Task]:
    """The family's first ``count`` tasks, redrawing any whose prompt an earlier one has."""
    seen: set[str] = set()
    tasks = []
    for index in range(count):
        level = difficulty or DIFFICULTIES[index % len(DIFFICULTIES)]
        for attempt in range(MAX_ATTEMPTS):
            task = make_task(family, seed, index, level, attempt)
            if task.prompt not in seen:
                break
        seen.add(task.prompt)
        tasks.append(task)
    return tasks


def _checked_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int number of tasks, got {type(n).__name__}")
    if n <= 0:
        raise ValueError(f"n: expected a positive number of tasks, got {n}")
    return n


def _checked_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
    return seed


def _checked_families(families: Sequence[str] | str | None) -> tuple[str, ...]:
    if families is None:
        return family_names()
    if isinstance(families, str):
        families = (families,)
    if not isinstance(families, Sequence):
        raise TypeError(
            f"families: expected a family name, a sequence of names or None, "
            f"got {type(families).__name__}"
        )
    if not families:
        raise ValueError(
            f"families: expected at least one family name, got none; valid families: "
            f"{', '.join(family_names())}"
        )
    for name in families:
        if not isinstance(name, str):
            raise TypeError(f"families: expected family names (str), got {type(name).__name__}")
        get_family(name)
    repeated = sorted({name for name in families if families.count(name) > 1})
    if repeated:
        raise ValueError(
            f"families: each family may appear once, got {repeated[0]!r} more than once"
        )
    return tuple(families)


def _checked_difficulty(difficulty: object) -> None:
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise ValueError(
            f"difficulty: expected one of {', '.join(DIFFICULTIES)} or None, got {difficulty!r}"
        )
