"""What one benchmark run is: its configuration, its tasks, and the error for bad inputs.

`BenchConfig` is written to the run directory's ``config.json`` (`BenchConfig.identity`) and a
resumed run must match it; `resolve_tasks` loads the tasks it names. Nothing here touches the run
directory, a policy or a verifier.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agents.policy import SamplingParams
from qsandbox_env.program import FIT_POLICIES
from qsandbox_env.sources import SOURCES, load_tasks
from qsandbox_env.tasks import TaskSet

__all__ = ["HUMANEVAL_SOURCES", "BenchConfig", "BenchError", "resolve_tasks"]

HUMANEVAL_SOURCES = ("qiskit-humaneval", "qiskit-humaneval-hard")


class BenchError(Exception):
    """A problem with the run's inputs or directory; the message says what and how to fix it."""


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run is. Fields marked (resume) must match when a run is resumed.

    Attributes:
        agent: Policy spec (resume), e.g. ``"oracle"`` or ``"hf:Qwen/Qwen2.5-Coder-1.5B"``.
        tasks: Task source (resume): a named source or a task file.
        n: Samples per task (resume).
        ks: Budgets to report; may change between resumes.
        params: Sampling parameters (resume).
        data: Task file for sources that need one (resume).
        task_options: Options for a named source, e.g. ``{"n": 50}`` for procedural (resume).
        limit: Only the first ``limit`` tasks (resume).
        timeout: Per-program wall-clock limit for the Verifier (resume).
        target: Verifier target (resume), passed only when set.
        fit: How completions become programs (resume): ``"fitted"`` (the default: code taken
            out of the model's text and fitted to the prompt) or ``"strict"`` (plain HumanEval:
            prompt + completion + test); see `qsandbox_env.Verifier`.
        agent_options: Options for the policy (device, batching, concurrency); may change.
    """

    agent: str
    tasks: str
    n: int = 1
    ks: tuple[int, ...] = (1,)
    params: SamplingParams = field(default_factory=SamplingParams)
    data: str | None = None
    task_options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    timeout: float = 60.0
    target: str | None = None
    agent_options: Mapping[str, Any] = field(default_factory=dict)
    fit: str = "fitted"

    def __post_init__(self) -> None:
        if self.fit not in FIT_POLICIES:
            raise ValueError(f"fit: expected one of {', '.join(FIT_POLICIES)}, got {self.fit!r}")
        for name in ("n", "limit"):
            value = getattr(self, name)
            if value is None and name == "limit":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(self.timeout, bool) or not 0 < self.timeout < float("inf"):
            raise ValueError(f"timeout: expected positive seconds, got {self.timeout!r}")
        if not self.ks or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks
        ):
            raise ValueError(f"ks: expected positive ints such as (1, 5, 10), got {self.ks!r}")

    def identity(self, task_ids: Sequence[str]) -> dict[str, Any]:
        """What ``config.json`` records and a resumed run must match."""
        data = os.path.abspath(self.data) if self.data else None
        tasks = (
            self.tasks
            if self.tasks in SOURCES or not os.path.exists(self.tasks)
            else (os.path.abspath(self.tasks))
        )
        return {
            "agent": self.agent,
            "tasks": tasks,
            "data": data,
            "task_options": dict(self.task_options),
            "limit": self.limit,
            "n": self.n,
            "sampling": {**asdict(self.params), "stop": list(self.params.stop)},
            "timeout": self.timeout,
            "target": self.target,
            "fit": self.fit,
            "task_count": len(task_ids),
            "task_ids_sha256": hashlib.sha256("\n".join(task_ids).encode()).hexdigest(),
        }


def resolve_tasks(
    source: str,
    data: str | None = None,
    options: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> TaskSet:
    """Load the run's tasks: a named source (with ``path=data`` when given) or a task file.

    ``qiskit-humaneval`` and ``qiskit-humaneval-hard`` read the file named by ``data``.

    Raises:
        BenchError: Unknown source, missing ``data``, or a task file that does not load.
    """
    options = dict(options or {})
    try:
        if source in SOURCES:
            tasks = load_tasks(source, **options, **({"path": data} if data else {}))
        elif source in HUMANEVAL_SOURCES:
            if not data:
                raise BenchError(
                    f"--tasks {source} needs --data PATH: the Qiskit-HumanEval JSON file"
                )
            tasks = load_tasks(data, **options)
        elif data:
            raise BenchError(
                f"--data is for named sources ({', '.join(HUMANEVAL_SOURCES)}); "
                f"--tasks {source!r} is read as the task file itself"
            )
        else:
            tasks = load_tasks(source, **options)
    except (ValueError, TypeError, OSError) as error:
        raise BenchError(str(error)) from None
    if limit is not None:
        tasks = TaskSet(list(tasks.values())[:limit], source=tasks.source)
    if not len(tasks):
        raise BenchError(f"--tasks {source}: no tasks to run")
    return tasks
