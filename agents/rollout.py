"""The old home of Ray-parallel verification and rollouts, kept so that existing imports work.

Everything moved to the `agents.ray` package (`agents.ray.verifier.RayVerifier`,
`agents.ray.pool.RolloutPool`, ...); import from there. This module only re-exports the names it
used to define.
"""

from __future__ import annotations

from agents.ray.actors import ActorHost, VerifierActor
from agents.ray.budget import RayBudgetLedger
from agents.ray.cluster import RAY_INSTALL
from agents.ray.options import DEFAULT_MAX_RETRIES, DEFAULT_START_TIMEOUT
from agents.ray.pool import RolloutError, RolloutPool
from agents.ray.scheduler import ActorPool
from agents.ray.verifier import HANG_GRACE, RayVerifier
from agents.ray.wire import task_from_wire, task_to_wire, verdict_from_wire, verdict_to_wire
from agents.ray.worker import PolicyLike, RolloutWorker, Trajectory

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_START_TIMEOUT",
    "HANG_GRACE",
    "RAY_INSTALL",
    "ActorHost",
    "ActorPool",
    "PolicyLike",
    "RayBudgetLedger",
    "RayVerifier",
    "RolloutError",
    "RolloutPool",
    "RolloutWorker",
    "Trajectory",
    "VerifierActor",
    "task_from_wire",
    "task_to_wire",
    "verdict_from_wire",
    "verdict_to_wire",
]
