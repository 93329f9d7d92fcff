"""Task files: HumanEval-schema JSON, JSON Lines and gzip read into a `TaskSet`.

`load_file` reads a task file (a JSON list of records, an object with that list under ``"tasks"``
or ``"data"``, or JSON Lines; any of them gzip-compressed) and `tasks_from_records` validates
parsed records, so that a hub dataset (:mod:`qsandbox_env.hub`) goes through the same per-record
checks and format detection as a file. `load_bundled` reads the tasks shipped with the package.

This module only parses. It must never execute, import or ``exec`` a task's prompt, test or
solution, and never import the source registry (:mod:`qsandbox_env.sources`), the hub client or
the task families: they sit above it. A malformed file raises a `ValueError` that names the file,
the record, the field and the fix; a record is never silently skipped.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from qsandbox_env.tasks import Task, TaskSet, _quoted

__all__ = ["BUNDLED_FILE", "load_bundled", "load_file", "tasks_from_records"]

_REQUIRED_FIELDS = ("task_id", "prompt", "test", "entry_point")
_OPTIONAL_TEXT_FIELDS = ("canonical_solution", "difficulty_scale", "difficulty", "format")
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
BUNDLED_FILE = os.path.join(DATA_DIR, "bundled.jsonl")


def load_bundled() -> TaskSet:
    """The original tasks shipped with the package (the embedded default)."""
    return load_file(BUNDLED_FILE)


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
            f"task file not found: {source}; pass the path of a .json or .jsonl task file"
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


def _json_type(value: object) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "number" if isinstance(value, int | float) else type(value).__name__
