"""The QPU budget of a pool of `agents.ray`: one `BudgetLedger` in a Ray actor, which every pool
actor's broker spends from.
"""

from __future__ import annotations

from typing import Any

from agents.ray.cluster import import_ray
from qsandbox_env.budget import Budget, BudgetLedger

__all__ = ["RayBudgetLedger"]


class RayBudgetLedger(BudgetLedger):
    """The `BudgetLedger` of a pool, kept in one Ray actor, as every pool actor's broker sees it.

    All the pool's brokers hold and settle in that one ledger, so the pool keeps to its budget
    as a whole: an actor may spend what the others leave, and one that replaces a dead actor
    inherits nothing (a job the dead actor held stays counted, since it may have run).
    """

    def __init__(self, actor: Any, budget: Budget) -> None:  # no local state: it is the actor's
        self.budget, self._actor = budget, actor

    def hold(self, jobs: int, shots: int) -> str | None:
        return import_ray().get(self._actor.hold.remote(jobs, shots))

    def settle(
        self, held_jobs: int, held_shots: int, jobs: int, shots: int, seconds: float
    ) -> None:
        import_ray().get(self._actor.settle.remote(held_jobs, held_shots, jobs, shots, seconds))

    def spent(self) -> dict[str, Any]:
        return import_ray().get(self._actor.spent.remote())
