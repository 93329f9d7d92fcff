"""The fault-tolerant scheduler of `agents.ray`: a fixed pool of actors fed items with bounded
in-flight work, replacing actors that die or get stuck.

- **Back-pressure:** at most ``max_in_flight`` items are sent to one actor and not yet returned;
  the rest wait on the driver.
- **Dead actors:** an actor that dies (``ray.kill``, out of memory, its node lost) is replaced by a
  new one, and the items it held are sent again. An item that was running is sent again alone,
  to an actor holding nothing else, so that an item that kills actors neither takes others with
  it nor shares the blame. An item whose actor dies while running it more than ``max_retries``
  times settles as a `Failure`.
- **Item timeout:** an item running on an actor for longer than its limit (from when the actor
  started it, not when it was queued) means the actor is stuck: it is killed and replaced, and the
  item either settles as a ``timeout`` `Failure` or is sent again (``retry_timeouts``), counted
  against ``max_retries``.
- **No room left:** when every actor is lost (its node with it) and no replacement can start
  within ``start_timeout``, the items still waiting settle as ``died`` `Failure` saying so; the
  results that arrived are kept.

Every item has exactly one result, whatever happens to the actors; an item whose result arrived
is never run again. ``completed_per_node`` counts results by the Ray node of the actor that
returned them, and ``worker_nodes`` says where each actor now serving runs, so a caller can see
how work spread over a cluster's nodes. This module knows nothing of verifiers or policies: it
calls a named method of `agents.ray.actors.ActorHost` with plain data.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.ray.actors import start_exception
from agents.ray.cluster import actor_gone_errors, first_line, import_ray

__all__ = ["ActorPool", "Failure"]


@dataclass
class _Slot:
    """One actor of a pool and the refs of the items it holds, oldest first."""

    actor: Any
    ready_ref: Any  # the actor's ready() call until it answers, then None
    since: float  # when the actor was asked for
    info: dict[str, Any] = field(default_factory=dict)
    inflight: list[Any] = field(default_factory=list)


@dataclass
class _Job:
    index: int
    slot: _Slot
    running_since: float | None  # None while queued on the actor behind other items


@dataclass(frozen=True)
class Failure:
    """Why an item has no result: ``kind`` is ``"timeout"`` or ``"died"``."""

    kind: str
    detail: str


_MISSING = object()


class _Batch:
    """The driver-side state of one `ActorPool.run` call."""

    def __init__(
        self,
        payloads: Sequence[Any],
        method: str,
        limits: Sequence[float],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> None:
        self.payloads, self.method, self.limits = payloads, method, limits
        self.on_result = on_result
        self.results: list[Any] = [_MISSING] * len(payloads)
        self.waiting: deque[int] = deque(range(len(payloads)))
        self.jobs: dict[Any, _Job] = {}
        self.charges = [0] * len(payloads)  # actors lost while running each item
        self.left = len(payloads)

    def settle(self, index: int, value: Any) -> None:
        if self.results[index] is not _MISSING:
            raise AssertionError(f"item {index} got two results")  # a scheduler bug, loudly
        self.results[index] = value
        self.left -= 1
        if self.on_result is not None:
            self.on_result(index, value)


class ActorPool:
    """A fixed number of actors of one class, kept alive and fed items with bounded in-flight work.

    ``spawn()`` returns a new actor handle whose class has ``ready()``, ``close()`` and the method
    named in `run`. ``concurrency`` is how many items one actor works on at once; an item's time
    limit counts from when its actor started it (estimated on the driver: items an actor holds
    start in the order they were sent, as one finishes the next begins).
    """

    def __init__(
        self,
        spawn: Callable[[], Any],
        size: int,
        *,
        concurrency: int,
        max_in_flight: int,
        max_retries: int,
        start_timeout: float,
        retry_timeouts: bool,
        label: str,
        companions: Sequence[Any] = (),
    ) -> None:
        self._ray = import_ray()
        self._companions = list(companions)  # actors the pool's actors use (a budget ledger)
        self._spawn, self.label = spawn, label
        self.concurrency, self.max_in_flight = concurrency, max_in_flight
        self.max_retries, self.start_timeout = max_retries, start_timeout
        self.retry_timeouts = retry_timeouts
        self.stats = {"completed": 0, "actors_replaced": 0, "items_resent": 0, "items_timed_out": 0}
        self.completed_per_node: Counter[str] = Counter()  # results by their actor's Ray node id
        self.slots: list[_Slot] = []
        self._start_failures = 0  # actors lost while starting (out of memory, node lost)
        try:
            self.slots = [self._new_slot() for _ in range(size)]
            self._await_start()
        except BaseException:
            self.close()
            raise

    @property
    def actors(self) -> list[Any]:
        return [slot.actor for slot in self.slots]

    @property
    def worker_nodes(self) -> list[str | None]:
        """The Ray node id of each actor now serving, in `actors` order (None while starting)."""
        return [slot.info.get("node_id") for slot in self.slots]

    def _new_slot(self) -> _Slot:
        actor = self._spawn()
        return _Slot(actor, actor.ready.remote(), time.monotonic())

    def _await_start(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while starting := {s.ready_ref: s for s in self.slots if s.ready_ref is not None}:
            left = deadline - time.monotonic()
            done, _ = self._ray.wait(list(starting), num_returns=1, timeout=max(0.0, left))
            if not done:
                raise RuntimeError(self._start_timeout_message(len(starting)))
            self._started(starting[done[0]])

    def _start_timeout_message(self, missing: int) -> str:
        free, total = self._ray.available_resources(), self._ray.cluster_resources()
        return (
            f"{self.label}: {missing} of {len(self.slots)} Ray actors did not start within "
            f"{self.start_timeout:g} s; the cluster has {free.get('CPU', 0):g} of "
            f"{total.get('CPU', 0):g} CPUs free (other jobs or actors hold the rest). Ask for "
            "fewer actors, free the cluster, or raise start_timeout"
        )

    # -- one batch ----------------------------------------------------------------------------
    def run(
        self,
        payloads: Sequence[Any],
        method: str,
        limits: Sequence[float],
        on_result: Callable[[int, Any], None] | None = None,
    ) -> list[Any | Failure]:
        """Run ``actor.method(payload)`` for every payload; results or `Failure` in input order.

        ``on_result(index, result)`` is called on this thread as each item settles, so that a
        caller can save results while the rest run.
        """
        batch = _Batch(payloads, method, limits, on_result)
        for slot in self.slots:
            slot.inflight.clear()  # refs of an earlier, aborted call are not waited for again
        while batch.left:
            self._dispatch(batch)
            self._wait_once(batch)
            self._expire(batch)
            self._check_starting(batch)
        return batch.results

    def _dispatch(self, batch: _Batch) -> None:
        """Send waiting items to actors with room, one per actor per round, so that a few items
        spread over the actors instead of queueing on the first."""
        now, sent = time.monotonic(), True
        while sent and batch.waiting:
            sent = False
            for slot in self.slots:
                if slot.ready_ref is not None or len(slot.inflight) >= self.max_in_flight:
                    continue
                index = self._next_for(slot, batch)
                if index is None:
                    continue
                ref = slot.actor.call.remote(batch.method, batch.payloads[index])
                running = now if len(slot.inflight) < self.concurrency else None
                batch.jobs[ref] = _Job(index, slot, running)
                slot.inflight.append(ref)
                sent = True

    @staticmethod
    def _next_for(slot: _Slot, batch: _Batch) -> int | None:
        """The waiting item to send to ``slot`` next, taken off the queue; None for none.

        An item that was running when its actor died (or stuck) is a suspect: it is sent only to
        an actor holding nothing and nothing joins it there. So an item that kills its actor
        takes no other item down with it, and the charges for the deaths land on it alone (an
        item whose reply was lost as its actor died behind it is charged once, then completes).
        """
        if not batch.waiting:
            return None
        if not slot.inflight:
            return batch.waiting.popleft()
        if any(batch.charges[job.index] for job in map(batch.jobs.get, slot.inflight) if job):
            return None  # a suspect holds this actor alone
        for position, index in enumerate(batch.waiting):
            if not batch.charges[index]:
                del batch.waiting[position]
                return index
        return None

    def _wait_once(self, batch: _Batch) -> None:
        starting = {slot.ready_ref: slot for slot in self.slots if slot.ready_ref is not None}
        refs = [*batch.jobs, *starting]
        done, _ = self._ray.wait(refs, num_returns=1, timeout=self._next_wake(batch))
        for ref in done:
            if ref in starting:
                self._started(starting[ref])
            elif ref in batch.jobs:
                self._finish(ref, batch)

    def _next_wake(self, batch: _Batch) -> float:
        now, wake = time.monotonic(), 5.0
        for job in batch.jobs.values():
            if job.running_since is not None:
                wake = min(wake, job.running_since + batch.limits[job.index] - now)
        return max(0.01, wake)

    def _finish(self, ref: Any, batch: _Batch) -> None:
        job = batch.jobs[ref]
        try:
            value = self._ray.get(ref)
        except actor_gone_errors(self._ray) as exc:
            self._replace(job.slot, batch, f"{type(exc).__name__}: {first_line(exc)}")
            return
        del batch.jobs[ref]
        job.slot.inflight.remove(ref)
        batch.settle(job.index, value)
        self.stats["completed"] += 1
        self.completed_per_node[job.slot.info.get("node_id") or "?"] += 1
        self._promote(job.slot, batch)

    def _promote(self, slot: _Slot, batch: _Batch) -> None:
        """The items next in an actor's queue start as soon as a running one ends."""
        now = time.monotonic()
        for ref in slot.inflight[: self.concurrency]:
            job = batch.jobs.get(ref)
            if job is not None and job.running_since is None:
                job.running_since = now

    def _expire(self, batch: _Batch) -> None:
        now = time.monotonic()
        for ref, job in list(batch.jobs.items()):
            if ref not in batch.jobs or job.running_since is None:
                continue  # re-queued already, with the rest of a replaced actor's items
            limit = batch.limits[job.index]
            if now - job.running_since <= limit:
                continue
            self.stats["items_timed_out"] += 1
            detail = (
                f"no result within item_timeout={limit:g} s on a Ray actor (pid "
                f"{job.slot.info.get('pid', '?')}); the actor was stopped and replaced"
            )
            if not self.retry_timeouts:
                del batch.jobs[ref]
                job.slot.inflight.remove(ref)
                batch.settle(job.index, Failure("timeout", detail))
            self._replace(job.slot, batch, detail, kind="timeout")

    def _replace(self, slot: _Slot, batch: _Batch, reason: str, kind: str = "died") -> None:
        """Replace a dead or stuck actor; its items are sent again (running ones are charged)."""
        for ref in reversed(slot.inflight):
            job = batch.jobs.pop(ref, None)
            if job is None:
                continue
            if job.running_since is not None:
                batch.charges[job.index] += 1
            if batch.charges[job.index] > self.max_retries:
                batch.settle(job.index, Failure(kind, _gave_up(batch.charges[job.index], reason)))
            else:
                self.stats["items_resent"] += 1
                batch.waiting.appendleft(job.index)
        slot.inflight.clear()
        self._kill(slot.actor)
        self.stats["actors_replaced"] += 1
        fresh = self._new_slot()
        slot.actor, slot.ready_ref, slot.since, slot.info = (
            fresh.actor,
            fresh.ready_ref,
            fresh.since,
            {},
        )

    def _started(self, slot: _Slot) -> None:
        """Record a started actor; one the system killed while starting is asked for again."""
        try:
            slot.info = self._ray.get(slot.ready_ref)
        except actor_gone_errors(self._ray) as exc:
            self._start_failures += 1
            if self._start_failures > self.max_retries + len(self.slots):
                last = first_line(exc)
                raise RuntimeError(
                    f"{self.label}: Ray actors keep dying while they start (last: {last})"
                ) from exc
            self._kill(slot.actor)
            fresh = self._new_slot()
            slot.actor, slot.ready_ref, slot.since = fresh.actor, fresh.ready_ref, fresh.since
            return
        slot.ready_ref = None
        if "start_error" in slot.info:
            raise start_exception(self.label, *slot.info["start_error"])

    def _check_starting(self, batch: _Batch) -> None:
        """When every actor has been starting for longer than ``start_timeout`` (the actors were
        lost, their nodes with them, and the cluster has no room for replacements), the items
        still waiting settle as failures saying so: the call returns what did complete instead
        of waiting for nodes that may never come. The replacements stay asked for, so a node
        that joins later serves the next call."""
        now = time.monotonic()
        stuck = [
            s for s in self.slots if s.ready_ref is not None and now - s.since > self.start_timeout
        ]
        if not stuck or len(stuck) < len(self.slots):
            return
        free, total = self._ray.available_resources(), self._ray.cluster_resources()
        alive = sum(1 for node in self._ray.nodes() if node.get("Alive"))
        detail = (
            f"{self.label}: no Ray actor could be started within start_timeout="
            f"{self.start_timeout:g} s to replace the {len(stuck)} lost; the cluster's {alive} "
            f"alive node(s) have {free.get('CPU', 0):g} of {total.get('CPU', 0):g} CPUs free "
            "(nodes lost, or other jobs hold the CPUs); add nodes or free the cluster, then "
            "run the items again"
        )
        while batch.waiting:
            batch.settle(batch.waiting.popleft(), Failure("died", detail))

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor)
        except Exception:  # noqa: BLE001 - an actor already gone needs no killing
            pass

    def close(self) -> None:
        """Let each actor close its sandbox (for up to 10 s), then end it."""
        closing = []
        for slot in self.slots:
            try:
                closing.append(slot.actor.close.remote())
            except Exception:  # noqa: BLE001 - a dead actor has nothing to close
                pass
        if closing:
            self._ray.wait(closing, num_returns=len(closing), timeout=10.0)
        for actor in [slot.actor for slot in self.slots] + self._companions:
            self._kill(actor)
        self.slots, self._companions = [], []


def _gave_up(charges: int, reason: str) -> str:
    return f"its Ray actor was lost {charges} times while running it (last: {reason})"
