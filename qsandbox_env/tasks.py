"""Coding tasks: `Task`, one prompt plus the test that decides whether a completion solves it,
and `TaskSet`, an ordered, read-only collection of tasks keyed by ``task_id``.

Two task formats exist, both from the Qiskit-HumanEval benchmark:

- ``"completion"`` (the normal set): ``prompt`` holds the imports, the function signature and its
  docstring; the model's completion continues the prompt, and ``test`` defines ``check(candidate)``
  without calling it.
- ``"program"`` (the hard set): ``prompt`` is plain English; the completion is a whole program with
  its own imports, and ``test`` brings its own imports and ends with its own ``check(entry_point)``
  call.

Reading task files is :mod:`qsandbox_env.taskfile`'s job, and finding a source by name
(``load_tasks``) is :mod:`qsandbox_env.sources`'; both sit above this module.

This module only describes tasks. It must never execute, import or ``exec`` a task's prompt, test
or solution: untrusted code runs only in the sandbox behind the Verifier. It must never import the
modules above it (task files, sources, the hub, the families), except through the deprecated
aliases at its end, which load them only when an old import path asks.
"""

from __future__ import annotations

import difflib
import importlib
import keyword
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

__all__ = ["FORMATS", "Task", "TaskSet"]

FORMATS = ("completion", "program")
_TEXT_FIELDS = (
    "task_id",
    "prompt",
    "test",
    "entry_point",
    "canonical_solution",
    "difficulty",
    "format",
)
_CLOSE_MATCHES = 5


@dataclass(frozen=True)
class Task:
    """One coding task: a prompt, the test that checks a solution, and how the two fit together.

    Attributes:
        task_id: Unique name of the task, e.g. ``"qiskitHumanEval/0"``.
        prompt: What the model sees. For ``"completion"`` tasks, code the completion continues; for
            ``"program"`` tasks, plain English.
        test: Code defining ``check(candidate)``; ``"program"`` tests also call it themselves.
        entry_point: Name of the function the test checks.
        canonical_solution: A known-good completion; empty when the source has none.
        difficulty: The source's difficulty label (``"basic"``, ``"intermediate"``, ...).
        format: ``"completion"`` or ``"program"``; see the module docstring.
        metadata: Any further fields of the source record, read-only.
        timeout: Wall-clock limit in seconds for this task; ``None`` means the Verifier's default.

    Example:
        >>> task = Task("demo/0", "def f():\\n", "def check(c):\\n    assert c() == 1\\n", "f")
        >>> task.format, dict(task.metadata)
        ('completion', {})
    """

    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str = ""
    difficulty: str = "unknown"
    format: str = "completion"
    metadata: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    def __post_init__(self) -> None:
        for name in _TEXT_FIELDS:
            _require_str(f"Task.{name}", getattr(self, name))
        self._check_names()
        if self.format not in FORMATS:
            raise ValueError(
                f"Task {self.task_id!r}: format {self.format!r} is not valid; "
                f"expected one of {_quoted(FORMATS)}"
            )
        if not isinstance(self.metadata, Mapping):
            raise TypeError(
                f"Task.metadata: expected a mapping, got {type(self.metadata).__name__}"
            )
        # A private copy behind a read-only view: neither the caller's dict nor the task's users
        # can change a task after it is built.
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        object.__setattr__(self, "timeout", self._checked_timeout())

    def __hash__(self) -> int:
        # task_id identifies a task; hashing the metadata view would fail (it is unhashable).
        return hash(self.task_id)

    def __reduce__(self) -> tuple[type, tuple]:
        # The read-only metadata view does not pickle; a plain copy does, and __post_init__
        # puts it behind a new view. Tasks then travel to worker processes as they are.
        values = tuple(
            dict(self.metadata) if f.name == "metadata" else getattr(self, f.name)
            for f in fields(self)
        )
        return (Task, values)

    def _check_names(self) -> None:
        if not self.task_id:
            raise ValueError("Task.task_id: must be a non-empty string")
        if not self.entry_point:
            raise ValueError(f"Task {self.task_id!r}: entry_point must be a non-empty string")
        if not self.entry_point.isidentifier() or keyword.iskeyword(self.entry_point):
            raise ValueError(
                f"Task {self.task_id!r}: entry_point {self.entry_point!r} is not a valid Python "
                "identifier; use the name of the function the test checks"
            )

    def _checked_timeout(self) -> float | None:
        timeout = self.timeout
        if timeout is None:
            return None
        # bool is an int subclass, but `timeout=True` is a mistake, not one second.
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise TypeError(
                f"Task.timeout: expected a number of seconds or None, got {type(timeout).__name__}"
            )
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(
                f"Task {self.task_id!r}: timeout must be a positive, finite number of seconds "
                f"or None, got {timeout!r}"
            )
        return float(timeout)


class TaskSet(Mapping[str, Task]):
    """A read-only, ordered mapping from task_id to `Task`.

    Iteration follows the order the tasks were given (file order for `load_tasks`). Looking up an
    unknown id raises a `KeyError` that suggests the closest known ids.

    Example:
        >>> task = Task("demo/0", "def f():\\n", "def check(c):\\n    assert c() == 1\\n", "f")
        >>> tasks = TaskSet.from_tasks([task], source="example")
        >>> list(tasks), tasks
        (['demo/0'], TaskSet(source='example', tasks=1))
    """

    def __init__(self, tasks: Iterable[Task] = (), source: str = "<in-memory>") -> None:
        """Build a task set.

        Args:
            tasks: The tasks, in the order iteration should follow.
            source: Where the tasks came from (a path, a hub id, ...), shown in messages.

        Raises:
            TypeError: An item is not a `Task`, or ``source`` is not a string.
            ValueError: Two tasks share a task_id.
        """
        _require_str("TaskSet.source", source)
        self._source = source
        self._tasks: dict[str, Task] = {}
        for task in tasks:
            if not isinstance(task, Task):
                raise TypeError(f"TaskSet: expected Task, got {type(task).__name__}")
            if task.task_id in self._tasks:
                raise ValueError(
                    f"TaskSet {source!r}: duplicate task_id {task.task_id!r}; "
                    "task ids must be unique"
                )
            self._tasks[task.task_id] = task

    @classmethod
    def from_tasks(cls, tasks: Iterable[Task], source: str = "<in-memory>") -> TaskSet:
        """Build a task set from `Task` objects; see `TaskSet.__init__` for arguments and errors."""
        return cls(tasks, source=source)

    @property
    def source(self) -> str:
        """Where the tasks came from, as given when the set was built."""
        return self._source

    def get_task(self, task_id: str) -> Task:
        """Return the task named ``task_id``.

        Raises:
            ValueError: No such task; the message lists the closest known ids.
        """
        if task_id in self._tasks:
            return self._tasks[task_id]
        raise ValueError(self._unknown_id_message(task_id))

    def __getitem__(self, task_id: str) -> Task:
        if task_id in self._tasks:
            return self._tasks[task_id]
        raise KeyError(self._unknown_id_message(task_id))

    def __contains__(self, task_id: object) -> bool:
        # Mapping's default goes through __getitem__, which would build a "did you mean" message
        # for every miss.
        return task_id in self._tasks

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"TaskSet(source={self._source!r}, tasks={len(self._tasks)})"

    def _unknown_id_message(self, task_id: object) -> str:
        count = len(self._tasks)
        message = (
            f"unknown task_id {task_id!r} in {self._source} ({count} task{'s' * (count != 1)})"
        )
        if not isinstance(task_id, str):
            return message
        matches = difflib.get_close_matches(task_id, list(self._tasks), n=_CLOSE_MATCHES)
        if not matches:
            return f"{message}; no close matches"
        return f"{message}; close matches: {_quoted(matches)}"


def _require_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected str, got {type(value).__name__}")


def _quoted(names: Iterable[object]) -> str:
    return ", ".join(repr(name) for name in names)


# Old homes of names that moved out with task-file parsing and the source registry. agents/ still
# imports load_tasks and SOURCES from here; remove these once nothing does.
_MOVED = {
    "SOURCES": "qsandbox_env.sources",
    "load_tasks": "qsandbox_env.sources",
    "register_source": "qsandbox_env.sources",
    "BUNDLED_FILE": "qsandbox_env.taskfile",
    "load_bundled": "qsandbox_env.taskfile",
    "load_file": "qsandbox_env.taskfile",
    "tasks_from_records": "qsandbox_env.taskfile",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"qsandbox_env.tasks.{name} is deprecated; import {name} from {module}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
