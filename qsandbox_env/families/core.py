"""The machinery every task family shares: the registry, item seeding and prompt/test assembly.

A family is one module that declares a config dataclass (the knobs of one difficulty), a preset
config per difficulty and a ``generate(rng, config)`` function returning a `GeneratedTask`, and
registers them with `register_family` on its last line. `make_task` turns one (family, seed,
index, difficulty) into a `Task`; the item's random generator is seeded from exactly those four
values, so any task can be rebuilt alone, in any process, on any Python.

This module only writes text. It must never import Qiskit, execute a generated solution or test,
or draw randomness from anywhere but the item's own `random.Random`: generated tasks are checked by
the Verifier, in the sandbox, like any other task.
"""

from __future__ import annotations

import hashlib
import random
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from qsandbox_env.families.checks import check_snippets
from qsandbox_env.tasks import Task

__all__ = [
    "DIFFICULTIES",
    "FAMILIES",
    "Family",
    "GeneratedTask",
    "check_function",
    "family_names",
    "function_body",
    "function_prompt",
    "get_family",
    "item_rng",
    "make_task",
    "register_family",
    "require_choices",
    "require_int_range",
]

DIFFICULTIES = ("basic", "intermediate", "difficult")
_WIDTH = 96  # docstring lines stay under the project's 100-column limit once indented


@dataclass(frozen=True)
class GeneratedTask:
    """What a family's ``generate`` returns: one task, before it gets an id.

    Attributes:
        entry_point: Name of the function the prompt declares and the test checks.
        prompt: Imports, the function signature and its docstring (the completion continues it).
        canonical_solution: A function body that passes ``test``.
        test: Code defining ``check(candidate)``, without calling it.
        parameters: The concrete parameters drawn for this item (JSON-friendly values only).
    """

    entry_point: str
    prompt: str
    canonical_solution: str
    test: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """A registered task family.

    Attributes:
        name: Family name, the middle part of task ids ``procedural/<name>/<index>``.
        summary: One line saying what the tasks ask for.
        config_type: The family's config dataclass; building one validates it.
        presets: The config used for each difficulty in `DIFFICULTIES`.
        generate: ``generate(rng, config) -> GeneratedTask``; uses no randomness but ``rng``.
        distinct_tasks: For each difficulty whose task space is small, how many distinct tasks
            it has (a set asking for more repeats some); difficulties not listed have thousands.
    """

    name: str
    summary: str
    config_type: type
    presets: Mapping[str, Any]
    generate: Callable[[random.Random, Any], GeneratedTask]
    distinct_tasks: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if sorted(self.presets) != sorted(DIFFICULTIES):
            raise ValueError(
                f"family {self.name!r}: expected one preset per difficulty "
                f"{list(DIFFICULTIES)}, got {sorted(self.presets)}"
            )
        for difficulty, config in self.presets.items():
            if not isinstance(config, self.config_type):
                raise TypeError(
                    f"family {self.name!r}: preset {difficulty!r} is a "
                    f"{type(config).__name__}, expected {self.config_type.__name__}"
                )
        unknown = set(self.distinct_tasks) - set(DIFFICULTIES)
        if unknown:
            raise ValueError(
                f"family {self.name!r}: distinct_tasks names unknown difficulties {sorted(unknown)}"
            )
        object.__setattr__(self, "presets", MappingProxyType(dict(self.presets)))
        object.__setattr__(self, "distinct_tasks", MappingProxyType(dict(self.distinct_tasks)))


_FAMILIES: dict[str, Family] = {}
FAMILIES: Mapping[str, Family] = MappingProxyType(_FAMILIES)
"""Read-only view of the registry: family name → `Family`."""


def register_family(family: Family) -> Family:
    """Add ``family`` to the registry (its name must be new) and return it."""
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} is already registered; pick another name")
    _FAMILIES[family.name] = family
    return family


def family_names() -> tuple[str, ...]:
    """Registered family names, sorted."""
    return tuple(sorted(_FAMILIES))


def get_family(name: str) -> Family:
    """The registered family called ``name``.

    Raises:
        ValueError: No such family; the message lists the valid names.
    """
    if name not in _FAMILIES:
        raise ValueError(
            f"families: unknown family {name!r}; valid families: {', '.join(family_names())}"
        )
    return _FAMILIES[name]


def item_rng(
    family: str, seed: int, index: int, difficulty: str, attempt: int = 0
) -> random.Random:
    """The random generator of one item, a pure function of its coordinates.

    A hash of the coordinates, not ``seed + index``, so that neighbouring seeds do not share
    items and no two families draw the same stream. ``attempt`` numbers redraws (see
    `load_procedural`); attempt 0 is the first draw.

    Example:
        >>> item_rng("demo", 0, 3, "basic").random() == item_rng("demo", 0, 3, "basic").random()
        True
    """
    key = f"qsandbox-procedural|{family}|{seed}|{index}|{difficulty}|{attempt}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def make_task(family: str, seed: int, index: int, difficulty: str, attempt: int = 0) -> Task:
    """Build task ``index`` of ``family`` for ``seed`` at ``difficulty`` (draw ``attempt``).

    The result depends on these five values only; ``metadata`` records all of them, so
    ``make_task(**{k: task.metadata[k] for k in ("family", "seed", "index", "difficulty",
    "attempt")})`` rebuilds any generated task.

    Raises:
        ValueError: Unknown family or difficulty.
    """
    spec = get_family(family)
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"difficulty: expected one of {', '.join(DIFFICULTIES)} or None, got {difficulty!r}"
        )
    rng = item_rng(family, seed, index, difficulty, attempt)
    item = spec.generate(rng, spec.presets[difficulty])
    return Task(
        task_id=f"procedural/{family}/{index}",
        prompt=item.prompt,
        test=item.test,
        entry_point=item.entry_point,
        canonical_solution=item.canonical_solution,
        difficulty=difficulty,
        metadata={
            "source": "procedural",
            "family": family,
            "seed": seed,
            "index": index,
            "difficulty": difficulty,
            "attempt": attempt,
            "parameters": dict(item.parameters),
        },
    )


# -- text assembly ---------------------------------------------------------------------------
def function_prompt(imports: Iterable[str], signature: str, paragraphs: Iterable[str]) -> str:
    """A completion-format prompt: import lines, ``def signature:`` and a wrapped docstring.

    Example:
        >>> print(function_prompt(["import math"], "f() -> int", ["Return one."]), end="")
        import math
        <BLANKLINE>
        <BLANKLINE>
        def f() -> int:
            \"\"\"Return one.\"\"\"
    """
    blocks = [_wrap(paragraph) for paragraph in paragraphs]
    head = "\n".join(imports) + "\n\n\n" + f"def {signature}:\n"
    if len(blocks) == 1 and "\n" not in blocks[0]:
        return head + f'    """{blocks[0]}"""\n'
    text = "\n\n".join(blocks)
    return head + '    """' + textwrap.indent(text, "    ")[4:] + '\n    """\n'


def _wrap(paragraph: str) -> str:
    # List items ("- ...") and indented lines (formulas, code) stay as written; prose is wrapped.
    return "\n".join(
        line
        if line.startswith(("- ", "  "))
        else textwrap.fill(line, _WIDTH, break_on_hyphens=False, break_long_words=False)
        for line in paragraph.split("\n")
    )


def function_body(lines: Iterable[str]) -> str:
    """A canonical solution: the given code lines, indented one level, after a blank line."""
    return "\n" + "".join(f"    {line}\n" if line else "\n" for line in lines)


def check_function(
    imports: Iterable[str],
    constants: Mapping[str, Any],
    body: str,
    snippets: Sequence[str] = (),
) -> str:
    """A test: ``def check(candidate):`` with local imports, literal constants, then ``body``.

    Constants are written with ``repr``, so every value must be a literal Python reads back
    exactly (ints, floats, strings, tuples and lists of those). ``snippets`` names helpers of
    `qsandbox_env.families.checks` to define before ``body``.
    """
    lines = [f"    {line}" for line in imports]
    lines += [f"    {name} = {value!r}" for name, value in constants.items()]
    code = textwrap.dedent(body).strip("\n")
    if snippets:
        code = check_snippets(*snippets) + "\n" + code
    code = textwrap.indent(code, "    ")
    return "def check(candidate):\n" + "\n".join(lines) + "\n" + code + "\n"


# -- config validation -----------------------------------------------------------------------
def require_int_range(owner: str, low_name: str, low: int, high_name: str, high: int) -> None:
    """Check that ``low`` and ``high`` are ints with ``1 <= low <= high``.

    Raises:
        TypeError: Either bound is not an int.
        ValueError: A bound below 1, or ``low > high``.
    """
    for name, value in ((low_name, low), (high_name, high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{owner}.{name}: expected an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{owner}.{name}: expected a positive int, got {value}")
    if low > high:
        raise ValueError(f"{owner}: expected {low_name} <= {high_name}, got {low} > {high}")


def require_choices(
    owner: str, name: str, values: Sequence[object], allowed: Sequence[object]
) -> None:
    """Check that ``values`` is a non-empty tuple of distinct members of ``allowed``."""
    if not isinstance(values, tuple) or not values:
        raise TypeError(f"{owner}.{name}: expected a non-empty tuple, got {values!r}")
    unknown = [value for value in values if value not in allowed]
    if unknown:
        raise ValueError(
            f"{owner}.{name}: unknown value {unknown[0]!r}; expected some of "
            f"{', '.join(str(value) for value in allowed)}"
        )
    if len(set(values)) != len(values):
        raise ValueError(f"{owner}.{name}: values must be distinct, got {values!r}")
