"""The lifecycle every pool of `agents.ray` shares: connect to Ray, check capacity, start the
actors, run batches one call at a time, close the actors and the session.

`RayPool` is the base of `agents.ray.verifier.RayVerifier` and `agents.ray.pool.RolloutPool`;
they differ only in the actors they start and the batches they send. A pool that fails to start
leaves the Ray session as it found it; closing the last pool on a session this package started
shuts that session down.

Asking for more actors than the cluster's nodes can hold raises ``ValueError`` at once; actors
that cannot start within ``start_timeout`` (other jobs hold the resources) raise ``RuntimeError``
naming what is free, instead of waiting forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from agents.ray.actors import ActorHost
from agents.ray.budget import RayBudgetLedger
from agents.ray.cluster import check_capacity, connect, disconnect, import_ray
from agents.ray.options import PoolShape, positive_number
from agents.ray.scheduler import ActorPool, Failure
from agents.ray.wire import wire_item
from qsandbox_env.budget import Budget, BudgetLedger
from qsandbox_env.tasks import Task

__all__ = ["RayPool", "start_on_ray", "start_pool"]

_Pool = TypeVar("_Pool", bound="RayPool")


class RayPool:
    """A pool of Ray actors with its lifecycle: start on construction (`_start`), run batches
    (`_run`, one call at a time across threads), `close` (also as a context manager).

    Subclasses set ``label`` (named in errors) and start their actors with `_start`.
    """

    label = "RayPool"

    def _start(
        self,
        shape: PoolShape,
        address: str | None,
        actor_class: type,
        args: tuple,
        kwargs: dict[str, Any],
        *,
        concurrency: int,
        retry: bool,
    ) -> None:
        """Connect to Ray and start the actors; raises as `start_on_ray` does."""
        self._shape = shape
        self._lock = threading.Lock()
        self._pool: ActorPool | None = None
        self._ray, self._owns_ray, self._pool = start_on_ray(
            shape,
            address,
            actor_class,
            args,
            kwargs,
            concurrency=concurrency,
            label=self.label,
            retry=retry,
        )

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: ``completed`` items (batches, for a `RolloutPool`),
        ``actors_replaced``, ``items_resent``, ``items_timed_out``."""
        return dict(self._open_pool().stats)

    @property
    def worker_nodes(self) -> list[str | None]:
        """The Ray node id of each worker now serving, in ``workers`` order (None if starting)."""
        return self._open_pool().worker_nodes

    @property
    def completed_per_node(self) -> dict[str, int]:
        """Results since start (items; batches, for a `RolloutPool`) by the Ray node id of the
        worker that returned them; a lost node keeps its count."""
        return dict(self._open_pool().completed_per_node)

    def close(self) -> None:
        """End the actors (each closes its sandbox first) and, when this was the last pool on a
        Ray session this package started, the session."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            disconnect(self._ray, self._owns_ray)

    def __enter__(self: _Pool) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(
        self,
        payloads: Sequence[Any],
        method: str,
        limits: Sequence[float],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any | Failure]:
        """`ActorPool.run` on this pool's actors, one call at a time."""
        with self._lock:
            return self._open_pool().run(payloads, method, limits, on_result)

    def _wire_pairs(
        self, pairs: Iterable[tuple[Task, str]], timeout: float | None
    ) -> tuple[list[dict[str, Any]], float | None]:
        """(task, completion) pairs as the items a pool's actors check, and the call's checked
        ``timeout``; ValueError when the pool is closed."""
        if timeout is not None:
            timeout = positive_number(timeout, "timeout")
        self._open_pool()
        return [wire_item(task, completion, timeout) for task, completion in pairs], timeout

    def _open_pool(self) -> ActorPool:
        if self._pool is None:
            raise ValueError(f"this {self.label} is closed; create a new one")
        return self._pool


def start_on_ray(
    shape: PoolShape,
    address: str | None,
    actor_class: Any,
    args: tuple,
    kwargs: dict[str, Any],
    *,
    concurrency: int,
    label: str,
    retry: bool,
) -> tuple[Any, bool, ActorPool]:
    """Connect to Ray and start a pool's actors: (ray, whether this package owns the session,
    the pool). A pool that fails to start leaves the Ray session as it found it."""
    ray = import_ray()
    owns_ray = connect(ray, address, label)
    try:
        pool = start_pool(
            shape, ray, actor_class, args, kwargs, concurrency=concurrency, label=label, retry=retry
        )
    except BaseException:
        disconnect(ray, owns_ray)
        raise
    return ray, owns_ray, pool


def start_pool(
    shape: PoolShape,
    ray: Any,
    actor_class: type,
    args: tuple,
    kwargs: dict[str, Any],
    *,
    concurrency: int,
    label: str,
    retry: bool,
) -> ActorPool:
    """Start ``shape``'s actors of ``actor_class`` (each in an `ActorHost`), with a shared budget
    ledger actor when ``kwargs`` hold a QPU `Budget`; ValueError when the cluster cannot hold
    them."""
    per_worker = {"CPU": shape.num_cpus, **({"GPU": shape.num_gpus} if shape.num_gpus else {})}
    room = check_capacity(ray, shape.workers or 1, per_worker, label)
    count = shape.workers or room
    companions = []
    budget = kwargs.get("budget")
    if isinstance(budget, Budget):
        ledger = ray.remote(BudgetLedger).options(num_cpus=0).remote(budget)
        companions.append(ledger)
        kwargs = {**kwargs, "budget": RayBudgetLedger(ledger, budget)}
    host = ray.remote(ActorHost).options(
        num_cpus=shape.num_cpus, num_gpus=shape.num_gpus, max_concurrency=concurrency
    )
    return ActorPool(  # a pool that fails to start ends its companions too
        lambda: host.remote(actor_class, args, kwargs),
        count,
        concurrency=concurrency,
        max_in_flight=shape.max_in_flight,
        max_retries=shape.max_retries,
        start_timeout=shape.start_timeout,
        retry_timeouts=retry,
        label=label,
        companions=companions,
    )
