"""qsandbox: a Gymnasium environment and verifier for Qiskit code generation with verifiable
rewards.

Public names are imported lazily, so that ``import qsandbox_env`` stays cheap and the sandbox
modules can run under another interpreter that has only the standard library and Qiskit.

Its parts: tasks (`tasks` the types, `taskfile` the file format, `sources` and its loaders `hub`
and `families`), programs (`extract`, `program`), the `verifier` and its `sandbox`, QPU access
(`targets`, `broker`, `budget`), execution `profiles`, the Gymnasium `env` with its `prompts`, and
the ``qsandbox`` command line (`cli`).

This package must never import ``agents`` (the benchmarking, training and Ray code built on it),
by import statement or by name in a string: ``agents`` adds its subcommands through the
``qsandbox.commands`` entry points, and the dependency runs one way. Nothing at this level may
import a heavy optional dependency (torch, ray, transformers, datasets) at import time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Task": "qsandbox_env.tasks",
    "TaskSet": "qsandbox_env.tasks",
    "load_tasks": "qsandbox_env.sources",
    "extract_code": "qsandbox_env.extract",
    "Program": "qsandbox_env.program",
    "assemble": "qsandbox_env.program",
    "Outcome": "qsandbox_env.verifier",
    "Verdict": "qsandbox_env.verifier",
    "Verifier": "qsandbox_env.verifier",
    "SandboxError": "qsandbox_env.verifier",
    "Target": "qsandbox_env.targets",
    "parse_target": "qsandbox_env.targets",
    "QiskitCodeEnv": "qsandbox_env.env",
    "Broker": "qsandbox_env.broker",
    "Budget": "qsandbox_env.budget",
    "BudgetLedger": "qsandbox_env.budget",
}

__all__ = [
    "Broker",
    "Budget",
    "BudgetLedger",
    "Outcome",
    "Program",
    "QiskitCodeEnv",
    "SandboxError",
    "Target",
    "Task",
    "TaskSet",
    "Verdict",
    "Verifier",
    "assemble",
    "extract_code",
    "load_tasks",
    "parse_target",
]

if TYPE_CHECKING:
    from qsandbox_env.broker import Broker
    from qsandbox_env.budget import Budget, BudgetLedger
    from qsandbox_env.env import QiskitCodeEnv
    from qsandbox_env.extract import extract_code
    from qsandbox_env.program import Program, assemble
    from qsandbox_env.sources import load_tasks
    from qsandbox_env.targets import Target, parse_target
    from qsandbox_env.tasks import Task, TaskSet
    from qsandbox_env.verifier import Outcome, SandboxError, Verdict, Verifier


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qsandbox_env' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _register_envs() -> None:
    """Gymnasium ids with string entry points: nothing heavy is imported until ``make``."""
    try:
        import gymnasium
    except ImportError:  # the sandbox's own interpreter may lack gymnasium; it needs no envs
        return
    from qsandbox_env.gym_ids import register_ids

    register_ids(gymnasium)


_register_envs()
