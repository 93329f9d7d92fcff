"""The wire format of `agents.ray`: what crosses the network between the driver and the actors.

Only plain data crosses: task fields and completions go to the actors, verdict fields come back,
safe for any pickler. Nothing here runs a program.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from agents.policy import SamplingParams
from qsandbox_env.tasks import Task
from qsandbox_env.verifier import Outcome, Verdict

__all__ = [
    "params_to_wire",
    "task_from_wire",
    "task_to_wire",
    "verdict_from_wire",
    "verdict_to_wire",
    "wire_item",
]


def task_to_wire(task: Task) -> dict[str, Any]:
    """A task as plain data (its metadata view becomes a dict), safe for any pickler.

    Example:
        >>> task = Task("demo/0", "def f():\\n", "def check(c):\\n    assert c() == 1\\n", "f")
        >>> task_from_wire(task_to_wire(task)) == task
        True
    """
    if not isinstance(task, Task):
        raise TypeError(f"task: expected a qsandbox_env.Task, got {type(task).__name__}")
    data = {f.name: getattr(task, f.name) for f in fields(Task)}
    data["metadata"] = dict(task.metadata)
    return data


def task_from_wire(data: dict[str, Any]) -> Task:
    """Rebuild a task sent by `task_to_wire` (validated again by `Task` itself)."""
    return Task(**data)


def verdict_to_wire(verdict: Verdict) -> dict[str, Any]:
    data = {f.name: getattr(verdict, f.name) for f in fields(Verdict)}
    data["outcome"] = verdict.outcome.value
    return data


def verdict_from_wire(data: dict[str, Any]) -> Verdict:
    return Verdict(**{**data, "outcome": Outcome(data["outcome"])})


def wire_item(task: Task, completion: str, timeout: float | None) -> dict[str, Any]:
    """One (task, completion) pair as the plain data a pool's actors check."""
    if not isinstance(completion, str):
        raise TypeError(f"completion: expected str, got {type(completion).__name__}")
    return {"task": task_to_wire(task), "completion": completion, "timeout": timeout}


def params_to_wire(params: SamplingParams) -> dict[str, Any]:
    """Sampling parameters as plain data (``SamplingParams(**data)`` rebuilds them)."""
    return {f.name: getattr(params, f.name) for f in fields(params)}
