"""Connecting to Ray and checking what the cluster can hold, for the pools of `agents.ray`.

Ray is imported here, lazily (`import_ray`), with an ``ImportError`` naming the ``pip install``
command when it is missing. A Ray session this package starts is shut down when the last pool
using it closes; a session someone else started is left alone.

`LocalCluster` starts a Ray cluster of several nodes on this one machine (a raylet per node), so
that the multi-node paths (work spread over nodes, a node lost or added mid-run) can be tested
and measured without more machines.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

__all__ = [
    "RAY_INSTALL",
    "LocalCluster",
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
            f"{len(nodes)} alive node(s) ({have} in all) hold {room}; ask for workers <= {room}, "
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


class LocalCluster:
    """A Ray cluster of ``nodes`` worker nodes on this machine, each its own raylet.

    The head node holds ``head_cpus`` CPUs (default none, so that actors land only on the worker
    nodes) and each worker node ``cpus_per_node``. Connect to it with
    ``ray.init(address=cluster.address)`` or by passing `address` to a pool. It uses Ray's
    ``ray.cluster_utils.Cluster``; unlike that, it does not leave its address in Ray's
    ``ray_current_cluster`` file, so other processes on this machine that start a Ray of their
    own with ``ray.init()`` do not join it by mistake. `shutdown` (or leaving the ``with`` block)
    ends every node's processes.
    """

    def __init__(self, nodes: int, *, cpus_per_node: float = 1, head_cpus: float = 0) -> None:
        import_ray()
        from ray._common.utils import get_ray_address_file  # Ray 2.x; where ray start records it
        from ray.cluster_utils import Cluster

        self.cpus_per_node = cpus_per_node
        self._cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": head_cpus, "include_dashboard": False},
        )
        self._address_file = get_ray_address_file(None)
        _forget_address(self._address_file, self._cluster.address)
        self._nodes: dict[str, Any] = {}
        try:
            for _ in range(nodes):
                self.add_node()
        except BaseException:
            self.shutdown()
            raise

    @property
    def address(self) -> str:
        """The head's address (``host:port``), for ``ray.init(address=...)`` or a pool."""
        return self._cluster.address

    @property
    def node_ids(self) -> list[str]:
        """The Ray node ids of the worker nodes now running, oldest first."""
        return list(self._nodes)

    def add_node(self) -> str:
        """Start one more worker node; its Ray node id once it has joined."""
        node = self._cluster.add_node(num_cpus=self.cpus_per_node, include_dashboard=False)
        self._nodes[node.node_id] = node
        return node.node_id

    def remove_node(self, node_id: str) -> None:
        """Kill a worker node's raylet and every process on it, as a machine lost would."""
        self._cluster.remove_node(self._nodes.pop(node_id))

    def shutdown(self) -> None:
        """End every node; an address another cluster left in Ray's file meanwhile stays."""
        kept, mine = _read(self._address_file), self._cluster.address
        self._nodes.clear()
        self._cluster.shutdown()  # it removes Ray's address file, whoever wrote it
        if kept is not None and kept != mine:
            with open(self._address_file, "w") as f:
                f.write(kept)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _forget_address(address_file: str, address: str) -> None:
    """Remove ``address_file`` if it names ``address`` (and not a cluster someone else started)."""
    if _read(address_file) == address:
        try:
            os.remove(address_file)
        except OSError:
            pass


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
