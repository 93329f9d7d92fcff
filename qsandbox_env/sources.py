"""Task sources: ``load_tasks(source, **options)`` for a name, a task file or a hub id.

A named source maps to a loader, ``"module:function"``, imported on first use so that generators
and the hub client cost nothing until asked for. A loader takes the keyword options given to
`load_tasks` and returns a `TaskSet`; `register_source` adds one.

This module sits above its loaders: it names :mod:`qsandbox_env.taskfile`,
:mod:`qsandbox_env.hub` and :mod:`qsandbox_env.families`, and none of them may import it back. It
only dispatches; it must never parse a file itself or run anything from a task.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

from qsandbox_env.taskfile import load_file
from qsandbox_env.tasks import TaskSet, _quoted

__all__ = ["SOURCES", "load_tasks", "register_source"]

# Named task sources: each name maps to a loader, "module:function", imported on first use so that
# generators and the hub client cost nothing until asked for. A loader takes the keyword options
# given to `load_tasks` and returns a `TaskSet`.
SOURCES: dict[str, str] = {
    "bundled": "qsandbox_env.taskfile:load_bundled",
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


def load_tasks(source: str | os.PathLike[str], **options: Any) -> TaskSet:
    """Load tasks from a named source, a task file or a Hugging Face hub dataset id.

    Args:
        source: ``"bundled"`` (shipped with the package), ``"procedural"`` (generated; options
            ``n``, ``seed``, ``families``, ``difficulty``), ``"qiskit-humaneval"`` or
            ``"qiskit-humaneval-hard"`` (option ``path`` for a local copy, else the hub; see
            `qsandbox_env.hub`), a HumanEval-schema JSON/JSONL file (see
            `qsandbox_env.taskfile.load_file`), or a hub id such as
            ``"Qiskit/qiskit_humaneval_hard"``. An existing file always wins over a name.
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
        _no_options(name, options)
        return load_file(name)
    if name in SOURCES:
        return _import_loader(SOURCES[name])(**options)
    if _HUB_ID.fullmatch(name) and not name.endswith(_FILE_SUFFIXES):
        return _import_loader(HUB_LOADER)(name, **options)
    _no_options(name, options)
    try:
        return load_file(name)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"task file not found: {name}; pass the path of a .json or .jsonl task file, "
            f"a named task set ({', '.join(sorted(SOURCES))}) or a Hugging Face dataset id "
            "(owner/name)"
        ) from None


def _no_options(name: str, options: dict[str, Any]) -> None:
    if options:
        raise ValueError(
            f"{name}: a task file takes no options, got {_quoted(sorted(options))}; options "
            f"belong to named sources ({_quoted(sorted(SOURCES))}) and hub ids"
        )


def _import_loader(spec: str) -> Any:
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)
