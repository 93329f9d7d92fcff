"""The QPU budget: what a run may spend (`Budget`) and what it has spent (`BudgetLedger`).

A `Budget` caps jobs, shots and QPU seconds; a `BudgetLedger` holds one budget and the running
account of it, shared by every broker that spends from it (several Verifiers in one process, or
the actors of a Ray pool through a proxy). The broker (:mod:`qsandbox_env.broker`) asks the ledger
before it queues a job and settles with it when the job returns; the command line and the Ray pool
build budgets and ledgers without needing the broker.

This module only keeps accounts. It must never import Qiskit, the broker or anything that talks to
a service: it is plain bookkeeping, cheap to import and to send to another process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["Budget", "BudgetLedger"]


@dataclass(frozen=True)
class Budget:
    """What the broker may spend; ``None`` means no limit.

    Args:
        jobs: jobs submitted to the service (a batch is one job; cache hits are free).
        shots: shots over all PUBs (a sampler PUB costs shots × parameter sets; an estimator PUB
            ⌈1/precision²⌉ × max(parameter sets, observables)).
        seconds: QPU seconds, as the runtime reports them (``job.usage()``); where a job
            reports none (local mode), its wall-clock time.

    Example:
        >>> Budget(jobs=10, shots=100_000, seconds=600).jobs
        10
    """

    jobs: int | None = None
    shots: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("jobs", "shots"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(
                    f"Budget.{name}: expected a non-negative int or None, got {value!r}"
                )
        if self.seconds is not None and (
            isinstance(self.seconds, bool)
            or not isinstance(self.seconds, (int, float))
            or not self.seconds >= 0
        ):
            raise ValueError(
                f"Budget.seconds: expected a non-negative number or None, got {self.seconds!r}"
            )

    def share(self, parts: int) -> Budget:
        """This budget split evenly over ``parts`` spenders, each limit rounded down.

        Example:
            >>> Budget(jobs=5, shots=1001, seconds=9).share(2)
            Budget(jobs=2, shots=500, seconds=4.5)
        """
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise ValueError(f"parts: expected a positive int, got {parts!r}")
        return Budget(
            None if self.jobs is None else self.jobs // parts,
            None if self.shots is None else self.shots // parts,
            None if self.seconds is None else self.seconds / parts,
        )


class BudgetLedger:
    """One `Budget` and what has been spent from it, shared by every broker that spends it.

    A broker holds a request's job and shots here before queueing it and settles them when the
    job returns, so that brokers spending from one ledger (several Verifiers in one process, or
    the actors of a Ray pool through a proxy) keep to the budget together, and none waits on a
    share another leaves unused. A hold that is never settled (its broker's process died with
    the job out) stays counted: the job may have run. Thread-safe.

    Example:
        >>> ledger = BudgetLedger(Budget(jobs=1))
        >>> ledger.hold(1, 100) is None, ledger.hold(1, 100) is None  # the one job is held
        (True, False)
        >>> ledger.settle(1, 100, 1, 100, 2.5)  # the job ran
        >>> ledger.spent()["jobs"], ledger.spent()["held_jobs"]
        (1, 0)
    """

    def __init__(self, budget: Budget | None = None) -> None:
        if budget is not None and not isinstance(budget, Budget):
            raise TypeError(f"budget: expected a qsandbox_env.Budget, got {type(budget).__name__}")
        self.budget = budget or Budget()
        self._lock = threading.Lock()
        self._jobs = self._shots = self._held_jobs = self._held_shots = 0
        self._seconds = 0.0

    def hold(self, jobs: int, shots: int) -> str | None:
        """Hold ``jobs`` jobs (0 or 1) and ``shots`` shots; why not, or None when held."""
        budget = self.budget
        with self._lock:
            if budget.jobs is not None and self._jobs + self._held_jobs + jobs > budget.jobs:
                running = f" and {self._held_jobs} running" if self._held_jobs else ""
                return (
                    f"QPU budget exhausted: {self._jobs} of {budget.jobs} jobs used{running}; "
                    "nothing was submitted for this request"
                )
            left = None if budget.shots is None else budget.shots - self._shots - self._held_shots
            if left is not None and shots > left:
                return (
                    f"QPU budget exhausted: this request needs {shots} shots and {left} of "
                    f"{budget.shots} remain; nothing was submitted for this request"
                )
            if budget.seconds is not None and self._seconds >= budget.seconds:
                return (
                    f"QPU budget exhausted: {self._seconds:.1f} of {budget.seconds:g} QPU seconds "
                    "used; nothing was submitted for this request"
                )
            self._held_jobs += jobs
            self._held_shots += shots
            return None

    def settle(
        self, held_jobs: int, held_shots: int, jobs: int, shots: int, seconds: float
    ) -> None:
        """Release a hold and record what its job spent (nothing when it was not submitted)."""
        with self._lock:
            self._held_jobs -= held_jobs
            self._held_shots -= held_shots
            self._jobs += jobs
            self._shots += shots
            self._seconds += seconds

    def spent(self) -> dict[str, Any]:
        """``jobs``, ``shots`` and ``seconds`` spent, and the ``held_jobs``/``held_shots`` of
        requests queued or running."""
        with self._lock:
            return {
                "jobs": self._jobs,
                "shots": self._shots,
                "seconds": self._seconds,
                "held_jobs": self._held_jobs,
                "held_shots": self._held_shots,
            }
