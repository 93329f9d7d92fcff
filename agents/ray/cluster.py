"""Connecting to Ray and checking what the cluster can hold, for the pools of `agents.ray`.

Ray is imported here, lazily (`import_ray`), with an ``ImportError`` naming the ``pip install``
command when it is missing. A Ray session this package starts is shut down when the last pool
using it closes; a session someone else started is left alone.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

__all__ = [
    "RAY_INSTALL",
    "actor_gone_errors",
    "check_capacity",
    "connect",
    "disconnect",
    "first_line",
    "import_ray",
]

RAY_INSTALL = 'pip install "qsandbox[ray]"'


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"Ray-parallel workers need Ray; install it with: {RAY_INSTALL}") from exc
    return ray


_OWNED_LOCK = threading.Lock()
_owned_users = 0  # pools using a Ray session that this module started


def connect(ray: Any, address: str | None, label: str) -> bool:
    """Use the running Ray session, or start/connect one; True when this module did."""
    global _owned_users
    with _OWNED_LOCK:
        if ray.is_initialized():
            if _owned_users:
                _owned_users += 1
                return True
            return False
        try:
            if address is None and not os.environ.get("RAY_ADDRESS"):
                # A small local instance: no dashboard, one logical CPU per core.
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False)
            else:
                ray.init(address=address)
        except Exception as exc:
            where = address or os.environ.get("RAY_ADDRESS")
            raise RuntimeError(
                f"{label}: could not connect to Ray at {where!r}: {first_line(exc)} Start a "
                "cluster with `ray start --head` (then use address='auto'), give its address, or "
                "give no address for a new local Ray"
            ) from exc
        _owned_users = 1
        return True


def disconnect(ray: Any, owned: bool) -> None:
    global _owned_users
    if not owned:
        return
    with _OWNED_LOCK:
        _owned_users -= 1
        if _owned_users == 0 and ray.is_initialized():
            ray.shutdown()


def check_capacity(ray: Any, actors: int, per_actor: dict[str, float], label: str) -> int:
    """How many such actors the alive nodes can hold; ValueError when fewer than ``actors``."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    room = sum(_fits(node.get("Resources", {}), per_actor) for node in nodes)
    if actors > room:
        ask = ", ".join(f"{name} {amount:g}" for name, amount in per_actor.items())
        have = ", ".join(
            f"{name} {sum(n.get('Resources', {}).get(name, 0) for n in nodes):g}"
            for name in per_actor
        )
        raise ValueError(
            f"{label}: {actors} actors of ({ask}) each cannot be placed: the Ray cluster's "
            f"{len(nodes)} alive node(s) ({have} in all) hold {room}; ask for actors <= {room}, "
            "fewer CPUs per actor (num_cpus=...), or add nodes"
        )
    return room


def _fits(resources: dict[str, float], per_actor: dict[str, float]) -> int:
    counts = [math.floor(resources.get(k, 0) / v + 1e-9) for k, v in per_actor.items() if v > 0]
    return min(counts) if counts else 1


def actor_gone_errors(ray: Any) -> tuple[type[BaseException], ...]:
    errors = ray.exceptions
    return (
        errors.RayActorError,
        errors.WorkerCrashedError,
        errors.OutOfMemoryError,
        errors.NodeDiedError,
        errors.ObjectLostError,
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
