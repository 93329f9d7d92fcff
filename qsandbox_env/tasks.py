"""Coding tasks and the loader for HumanEval-style task files.

A `Task` is one prompt plus the test that decides whether a completion solves it; a `TaskSet` is an
ordered, read-only collection of tasks keyed by ``task_id``; `load_tasks` reads a task file (JSON,
JSON Lines, optionally gzip-compressed) into a `TaskSet`.

Two task formats exist, both from the Qiskit-HumanEval benchmark:

- ``"completion"`` (the normal set): ``prompt`` holds the imports, the function signature and its
  docstring; the model's completion continues the prompt, and ``test`` defines ``check(candidate)``
  without calling it.
- ``"program"`` (the hard set): ``prompt`` is plain English; the completion is a whole program with
  its own imports, and ``test`` brings its own imports and ends with its own ``check(entry_point)``
  call.

This module only describes tasks. It must never execute, import or ``exec`` a task's prompt, test
or solution: untrusted code runs only in the sandbox behind the Verifier. A malformed task file
raises a `ValueError` that names the file, the record, the field and the fix; it is never silently
skipped.
"""

from __future__ import annotations

import ast
import difflib
import gzip
import importlib
import json
import keyword
import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

__all__ = ["Task", "TaskSet", "load_file", "load_tasks", "register_source", "tasks_from_records"]

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
_REQUIRED_FIELDS = ("task_id", "prompt", "test", "entry_point")
_OPTIONAL_TEXT_FIELDS = ("canonical_solution", "difficulty_scale", "difficulty", "format")
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


DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
BUNDLED_FILE = os.path.join(DATA_DIR, "bundled.jsonl")

# Named task sources: each name maps to a loader, "module:function", imported on first use so that
# generators and the hub client cost nothing until asked for. A loader takes the keyword options
# given to `load_tasks` and returns a `TaskSet`.
SOURCES: dict[str, str] = {
    "bundled": "qsandbox_env.tasks:load_bundled",
    "procedural": "qsandbox_env.families:load_procedural",
    "qiskit-humaneval": "qsandbox_env.hub:load_qiskit_humaneval",
    "qiskit-humaneval-hard": "qsandbox_env.hub:load_qiskit_humaneval_hard",
}
# Anything shaped like a Hugging Face dataset id ("owner/name") that is not an existing file.
HUB_LOADER = "qsandbox_env.hub:load_hub"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FILE_SUFFIXES = (".json", ".jsonl", ".gz")


def register_source(name: str, loader: str) -> None:
    """Make ``load_tasks(name, **options)`` call ``loader`` (``"module:function"``)."""
    if ":" not in loader:
        raise ValueError(f"loader: expected 'module:function', got {loader!r}")
    SOURCES[name] = loader


def load_bundled() -> TaskSet:
    """The original tasks shipped with the package (the embedded default)."""
    return load_file(BUNDLED_FILE)


def load_tasks(source: str | os.PathLike[str], **options: Any) -> TaskSet:
    """Load tasks from a named source, a task file or a Hugging Face hub dataset id.

    Args:
        source: ``"bundled"`` (shipped with the package), ``"procedural"`` (generated; options
            ``n``, ``seed``, ``families``, ``difficulty``), ``"qiskit-humaneval"`` or
            ``"qiskit-humaneval-hard"`` (option ``path`` for a local copy, else the hub; see
            `qsandbox_env.hub`), a HumanEval-schema JSON/JSONL file
            (see `load_file`), or a hub id such as ``"Qiskit/qiskit_humaneval_hard"``. An existing
            file always wins over a name.
        **options: Passed to the source's loader; a task file takes none.

    Returns:
        The tasks in source order, keyed by task_id.

    Raises:
        FileNotFoundError: A file path that does not exist.
        ValueError: A malformed file or record, or options the source does not take.

    Example:
        >>> tasks = load_tasks("bundled")
        >>> next(iter(tasks)).startswith("qsandbox/")
        True
    """
    name = os.fspath(source)
    if not isinstance(name, str):
        raise TypeError(f"source: expected a str or path, got {type(source).__name__}")
    if os.path.exists(name):
        return _no_options(load_file, name, options)
    if name in SOURCES:
        return _import_loader(SOURCES[name])(**options)
    if _HUB_ID.fullmatch(name) and not name.endswith(_FILE_SUFFIXES):
        return _import_loader(HUB_LOADER)(name, **options)
    return _no_options(load_file, name, options)


def _no_options(loader: Any, name: str, options: dict[str, Any]) -> TaskSet:
    if options:
        raise ValueError(
            f"{name}: a task file takes no options, got {_quoted(sorted(options))}; options "
            f"belong to named sources ({_quoted(sorted(SOURCES))}) and hub ids"
        )
    return loader(name)


def _import_loader(spec: str) -> Any:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def load_file(path: str | os.PathLike[str]) -> TaskSet:
    """Read a HumanEval-style task file.

    The file may hold a JSON list of records, a JSON object with that list under ``"tasks"`` or
    ``"data"``, or JSON Lines (one record per non-blank line); any of these may be gzip-compressed.
    The layout is detected from the content, so the file name's extension does not matter.

    Each record needs ``task_id``, ``prompt``, ``test`` and ``entry_point``. Optional fields:
    ``canonical_solution``, ``difficulty_scale`` or ``difficulty``, ``format`` and ``timeout``; any
    other field goes into `Task.metadata`. Without a ``format`` field, a record whose test calls
    ``check(...)`` itself is a ``"program"`` task, any other a ``"completion"`` task.

    Args:
        path: The task file.

    Returns:
        The tasks in file order, keyed by task_id.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: The file is not valid JSON/JSON Lines, or a record is malformed. Records are
            named by their 0-based index in a JSON list, or their 1-based line in JSON Lines.
    """
    source = os.fspath(path)
    return tasks_from_records(_records(_read_text(source), source), source)


def tasks_from_records(records: Iterable[tuple[str, object]], source: str) -> TaskSet:
    """Validate parsed records into a `TaskSet`, as `load_file` does for a file's records.

    Args:
        records: ``(location, record)`` pairs in source order; ``location`` names the record in
            messages (``"line 3"``, ``"row 7"``).
        source: Where the records came from, shown in messages and as `TaskSet.source`.

    Raises:
        ValueError: A record is malformed (see `load_file`) or repeats an earlier task_id.
    """
    tasks: list[Task] = []
    first_seen: dict[str, str] = {}
    for location, record in records:
        task = _task_from_record(record, f"{source} {location}")
        if task.task_id in first_seen:
            raise ValueError(
                f"{source} {location} (task {task.task_id!r}): duplicate task_id "
                f"{task.task_id!r}, first seen at {first_seen[task.task_id]}; "
                "task ids must be unique"
            )
        tasks.append(task)
        first_seen[task.task_id] = location
    return TaskSet(tasks, source=source)


def _read_text(source: str) -> str:
    try:
        with open(source, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"task file not found: {source}; pass the path of a .json or .jsonl task file, "
            f"a named task set ({', '.join(sorted(SOURCES))}) or a Hugging Face dataset id "
            "(owner/name)"
        ) from None
    # Detect compression by its magic number, so a gzip file works whatever its name.
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{source}: corrupt gzip data ({error})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{source}: not UTF-8 text (bad byte at offset {error.start}); save it as UTF-8"
        ) from None


def _records(text: str, source: str) -> list[tuple[str, object]]:
    """Split a task file's text into (location, record) pairs, in file order."""
    if not text.strip():
        raise ValueError(f"{source}: file is empty; expected a JSON list of task records or JSONL")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        # JSON Lines fails as one document, but its first line parses on its own.
        if _first_line_is_json(text):
            return _json_lines(text, source)
        raise ValueError(
            f"{source}: invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    return _document_records(document, text, source)


def _first_line(text: str) -> tuple[int, str]:
    """The 1-based number and text of the first non-blank line."""
    return next((n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip())


def _first_line_is_json(text: str) -> bool:
    try:
        json.loads(_first_line(text)[1])
    except json.JSONDecodeError:
        return False
    return True


def _json_lines(text: str, source: str) -> list[tuple[str, object]]:
    records = []
    # Split on "\n" only: str.splitlines would also split on U+2028 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{source}: invalid JSON at line {number}, column {error.colno}: {error.msg}"
            ) from None
    return records


def _document_records(document: object, text: str, source: str) -> list[tuple[str, object]]:
    expected = (
        "expected a JSON list of task records, an object with a 'tasks' or 'data' list, or JSONL"
    )
    if isinstance(document, dict):
        key = next((key for key in ("tasks", "data") if key in document), None)
        if key is None and not any(name in document for name in _REQUIRED_FIELDS):
            raise ValueError(f"{source}: {expected}; got an object with keys {_quoted(document)}")
        if key is None:
            # A one-record JSON Lines file parses as a single JSON object.
            return [(f"line {_first_line(text)[0]}", document)]
        document = document[key]
        if not isinstance(document, list):
            raise ValueError(
                f"{source}: {key!r} must be a list of task records, got {_json_type(document)}"
            )
    if not isinstance(document, list):
        raise ValueError(f"{source}: {expected}; got {_json_type(document)}")
    return [(f"record at index {index}", record) for index, record in enumerate(document)]


def _task_from_record(record: object, where: str) -> Task:
    """Turn one parsed record into a Task; ``where`` names the file and record for messages."""
    if not isinstance(record, dict):
        raise ValueError(
            f"{where}: expected a JSON object (one task record), got {_json_type(record)}"
        )
    task_id = record.get("task_id")
    named = f"{where} (task {task_id!r})" if isinstance(task_id, str) and task_id else where
    for name in _REQUIRED_FIELDS:
        _check_required(record, name, named)
    for name in _OPTIONAL_TEXT_FIELDS:
        _check_optional_text(record, name, named)
    fields = {key: value for key, value in record.items() if value is not None}
    difficulty_key = "difficulty_scale" if "difficulty_scale" in fields else "difficulty"
    consumed = {*_REQUIRED_FIELDS, "canonical_solution", "format", "timeout", difficulty_key}
    try:
        return Task(
            task_id=fields["task_id"],
            prompt=fields["prompt"],
            test=fields["test"],
            entry_point=fields["entry_point"],
            canonical_solution=fields.get("canonical_solution", ""),
            difficulty=fields.get(difficulty_key, "unknown"),
            format=fields["format"] if "format" in fields else _detect_format(fields),
            metadata={key: value for key, value in record.items() if key not in consumed},
            timeout=fields.get("timeout"),
        )
    except (TypeError, ValueError) as error:
        # A bad value in a file is a malformed file (ValueError), whatever Task calls it; Task's
        # message already names the task.
        raise ValueError(f"{where}: {error}") from None


def _check_required(record: dict[str, Any], name: str, where: str) -> None:
    if name not in record or record[name] is None:
        raise ValueError(
            f"{where}: field {name!r} is missing; every record needs task_id, prompt, test "
            "and entry_point"
        )
    value = record[name]
    if not isinstance(value, str):
        raise ValueError(
            f"{where}: field {name!r} must be a string, got {_json_type(value)}; "
            "store it as a JSON string"
        )
    if not value.strip():
        raise ValueError(f"{where}: field {name!r} is empty; give it a non-empty string")


def _check_optional_text(record: dict[str, Any], name: str, where: str) -> None:
    value = record.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(
            f"{where}: field {name!r} must be a string, got {_json_type(value)}; "
            "store it as a JSON string or leave the field out"
        )


def _detect_format(record: Mapping[str, Any]) -> str:
    """Tell a hard-set record (whole program; the test calls check) from a completion record."""
    at_top_level, anywhere = _check_calls(record["test"])
    if at_top_level:
        return "program"
    defines_entry = re.search(rf"\bdef\s+{re.escape(record['entry_point'])}\s*\(", record["prompt"])
    # A test that calls check only inside a block (e.g. `if __name__ == "__main__":`) still runs
    # itself; with no function in the prompt to continue, the completion must be a whole program.
    if anywhere and not defines_entry:
        return "program"
    return "completion"


def _check_calls(test: str) -> tuple[bool, bool]:
    """Whether ``test`` calls ``check(...)`` as a top-level statement, and whether anywhere."""
    try:
        module = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        # A test that does not parse still needs a format; a line-based guess is the best left.
        at_top_level = re.search(r"^check\(", test, re.MULTILINE) is not None
        return at_top_level, at_top_level or re.search(r"(?<!def )\bcheck\(", test) is not None
    at_top_level = any(_is_check_call(statement) for statement in module.body)
    return at_top_level, at_top_level or any(_is_check_call(node) for node in ast.walk(module))


def _is_check_call(node: ast.AST) -> bool:
    if isinstance(node, ast.Expr):
        node = node.value
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "check"
    )


def _require_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected str, got {type(value).__name__}")


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "number" if isinstance(value, int | float) else type(value).__name__


def _quoted(names: Iterable[object]) -> str:
    return ", ".join(repr(name) for name in names)
