"""qsandbox: a Gymnasium environment and verifier for Qiskit code generation with verifiable
rewards.

Public names are imported lazily, so that ``import qsandbox_env`` stays cheap and the sandbox
modules can run under another interpreter that has only the standard library and Qiskit.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "qsandbox_env.tasks",
    "TaskSet": "qsandbox_env.tasks",
    "load_tasks": "qsandbox_env.tasks",
    "extract_code": "qsandbox_env.extract",
    "Program": "qsandbox_env.program",
    "assemble": "qsandbox_env.program",
    "Outcome": "qsandbox_env.verifier",
    "Verdict": "qsandbox_env.verifier",
    "Verifier": "qsandbox_env.verifier",
    "SandboxError": "qsandbox_env.verifier",
}

__all__ = [
    "Outcome",
    "Program",
    "SandboxError",
    "Task",
    "TaskSet",
    "Verdict",
    "Verifier",
    "assemble",
    "extract_code",
    "load_tasks",
]

if TYPE_CHECKING:
    from qsandbox_env.extract import extract_code
    from qsandbox_env.program import Program, assemble
    from qsandbox_env.tasks import Task, TaskSet, load_tasks
    from qsandbox_env.verifier import Outcome, SandboxError, Verdict, Verifier


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qsandbox_env' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
