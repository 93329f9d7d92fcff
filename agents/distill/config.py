"""What one distillation run is: its configuration, and the error for bad inputs.

`DistillConfig.identity` is written to the run directory's ``config.json``; a rerun into the same
directory must match it. The spending caps (``max_requests``, ``max_tokens_total``), the teacher's
connection options and the benchmark files compared against may change between reruns: raising a
cap and rerunning continues a run that stopped at it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agents.distill.prompting import DEFAULT_TEMPLATE, PromptTemplate
from agents.policy import SamplingParams
from qsandbox_env.program import FIT_POLICIES
from qsandbox_env.sources import SOURCES

__all__ = ["DEFAULT_PARAMS", "DistillConfig", "DistillError"]

# Reasoning first needs room: 1024 tokens (a policy's default) cuts many answers short.
DEFAULT_PARAMS = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=4096)


class DistillError(Exception):
    """A problem with the run's inputs, directory or teacher; the message says what and how to
    fix it. Everything already kept stays on disk."""


@dataclass(frozen=True)
class DistillConfig:
    """One distillation run. Fields marked (resume) must match when a run is continued.

    Attributes:
        teacher: ``openai:<model>@<base-url>`` (resume).
        tasks: Task source (resume): ``procedural``, ``bundled``, a task file or a hub id.
        n: Samples asked per task, at most (resume).
        keep: Stop a task once this many distinct passing answers are kept (resume); None: no
            limit.
        repair: Further turns a failed answer gets, each shown its execution feedback (resume).
        params: Sampling parameters (resume).
        data: Task file for sources that need one (resume).
        task_options: Options of a named source, e.g. ``{"n": 200}`` (resume).
        limit: Only the first ``limit`` tasks (resume).
        target: Verifier target, e.g. ``"aer"`` or ``"fake:sherbrooke"`` (resume).
        timeout: Seconds per program (resume).
        fit: How answers become programs, ``"fitted"`` or ``"strict"`` (resume).
        template: The teacher's prompt (resume).
        allow_benchmark_tasks: Distil on Qiskit-HumanEval anyway (resume).
        max_requests: Stop after this many teacher requests in all (the directory's total).
        max_tokens_total: Stop once the teacher's prompt + completion tokens reach this total.
        teacher_options: ``OpenAIPolicy`` options: ``concurrency``, ``timeout``,
            ``api_key_env``, ``max_retries``.
        benchmark_files: Benchmark task files the similarity report compares with.
    """

    teacher: str
    tasks: str
    n: int = 4
    keep: int | None = None
    repair: int = 0
    params: SamplingParams = DEFAULT_PARAMS
    data: str | None = None
    task_options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    target: str | None = None
    timeout: float = 60.0
    fit: str = "fitted"
    template: PromptTemplate = DEFAULT_TEMPLATE
    allow_benchmark_tasks: bool = False
    max_requests: int | None = None
    max_tokens_total: int | None = None
    teacher_options: Mapping[str, Any] = field(default_factory=dict)
    benchmark_files: Sequence[str] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, str) or not self.teacher.startswith("openai:"):
            raise ValueError(f"teacher: expected 'openai:<model>@<base-url>', got {self.teacher!r}")
        if self.fit not in FIT_POLICIES:
            raise ValueError(f"fit: expected one of {', '.join(FIT_POLICIES)}, got {self.fit!r}")
        _count("n", self.n, minimum=1)
        _count("repair", self.repair, minimum=0)
        for name in ("keep", "limit", "max_requests", "max_tokens_total"):
            if getattr(self, name) is not None:
                _count(name, getattr(self, name), minimum=1)
        if isinstance(self.timeout, bool) or not 0 < self.timeout < float("inf"):
            raise ValueError(f"timeout: expected positive seconds, got {self.timeout!r}")
        if not isinstance(self.params, SamplingParams):
            raise TypeError(f"params: expected SamplingParams, got {type(self.params).__name__}")
        if not isinstance(self.template, PromptTemplate):
            raise TypeError(
                f"template: expected PromptTemplate, got {type(self.template).__name__}"
            )

    def identity(self, task_ids: Sequence[str]) -> dict[str, Any]:
        """What ``config.json`` records and a continued run must match."""
        tasks = self.tasks
        if tasks not in SOURCES and os.path.exists(tasks):
            tasks = os.path.abspath(tasks)
        return {
            "teacher": self.teacher,
            "tasks": tasks,
            "data": os.path.abspath(self.data) if self.data else None,
            "task_options": dict(self.task_options),
            "limit": self.limit,
            "n": self.n,
            "keep": self.keep,
            "repair": self.repair,
            "sampling": {**asdict(self.params), "stop": list(self.params.stop)},
            "target": self.target,
            "timeout": self.timeout,
            "fit": self.fit,
            "template": {"system": self.template.system, "user": self.template.user},
            "allow_benchmark_tasks": self.allow_benchmark_tasks,
            "task_count": len(task_ids),
            "task_ids_sha256": hashlib.sha256("\n".join(task_ids).encode()).hexdigest(),
        }


def _count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
