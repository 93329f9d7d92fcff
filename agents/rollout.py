"""Ray-parallel verification and rollouts: the Verifier and the environment over a pool of actors.

- `RayVerifier` has the `qsandbox_env.Verifier` interface (``verify``, ``verify_many``, ``close``,
  ``isolation``) but runs each program on one of a pool of Ray actors, each owning a local
  `Verifier` (its own warm, isolated sandbox). Verdicts come back in input order.
- `RolloutWorker` holds copies of `QiskitCodeEnv` and a policy, and turns task ids into
  `Trajectory` records (prompt, completion, reward, verdict fields, token log-probs when the policy
  gives them). `RolloutPool` schedules rollouts over many `RolloutWorker` actors.

What crosses the network is plain data: task fields and completions go to actors, verdict fields
and trajectories come back. Programs run only inside each actor's own sandbox, on the actor's node;
credentials stay with whoever holds them (the sandbox scrubs its environment). This module never
executes a program itself and never retries one whose result arrived: every item has exactly one
result, whatever happens to the actors.

Fault tolerance, in one scheduler shared by both pools:

- **Back-pressure:** at most ``max_in_flight`` items are sent to one actor and not yet returned;
  the rest wait on the driver.
- **Dead actors:** an actor that dies (``ray.kill``, out of memory, its node lost) is replaced by a
  new one, and the items it held are sent again. An item that was running is sent again alone,
  to an actor holding nothing else, so that an item that kills actors neither takes others with
  it nor shares the blame. An item whose actor dies while running it more than ``max_retries``
  times gets a ``sandbox`` verdict (`RayVerifier`) or fails the call (`RolloutPool`).
- **Item timeout:** an item running on an actor for longer than ``item_timeout`` seconds (from when
  the actor started it, not when it was queued) means the actor is stuck: it is killed and replaced.
  `RayVerifier` gives that item a ``timeout`` verdict and does not run it again (it would likely
  hang again); `RolloutPool` retries it on a fresh actor (a policy call may hang once), counted
  against ``max_retries``. Programs that merely run long end earlier, inside the sandbox, at the
  program limit (``timeout``), with the actor left warm.
- **Resources:** asking for more actors than the cluster's nodes can hold raises ``ValueError`` at
  once; actors that cannot start within ``start_timeout`` (other jobs hold the resources) raise
  ``RuntimeError`` naming what is free, instead of waiting forever.

Ray worker processes and the sandbox coexist: an actor's `Verifier` starts its zygotes as new
interpreters (fork and exec, never a bare fork of the threaded Ray worker), with a scrubbed
environment, and Ray ends a killed actor's child processes, zygotes included. Each pool of zygotes
gets its own unprivileged uids (derived from the actor's pid), so actors on one node do not share
a process cap.

Ray is imported lazily: ``import agents.rollout`` works without it, and using a pool without Ray
installed raises ``ImportError`` with the ``pip install`` command.
"""

from __future__ import annotations

import inspect
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from agents.policy import Policy, Query, SamplingParams, make_policy, policy_builder
from qsandbox_env.broker import Budget, BudgetLedger
from qsandbox_env.env import QiskitCodeEnv
from qsandbox_env.targets import Target, parse_target
from qsandbox_env.tasks import Task, TaskSet, load_tasks
from qsandbox_env.verifier import Outcome, Verdict, Verifier

__all__ = [
    "RayBudgetLedger",
    "RayVerifier",
    "RolloutError",
    "RolloutPool",
    "RolloutWorker",
    "Trajectory",
    "task_from_wire",
    "task_to_wire",
]

RAY_INSTALL = 'pip install "qsandbox[ray]"'
DEFAULT_START_TIMEOUT = 300.0  # zygotes preload Qiskit; a busy node takes a while
DEFAULT_MAX_RETRIES = 2
# Past the program's own limit, how long an item may take on an actor before it counts as stuck:
# the sandbox allows 20 s past the limit for a stuck zygote and retries once on a fresh one.
HANG_GRACE = 60.0
_VERIFIER_PARAMETERS = frozenset(inspect.signature(Verifier).parameters)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"Ray-parallel workers need Ray; install it with: {RAY_INSTALL}") from exc
    return ray


# -- plain data on the wire --------------------------------------------------------------------
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


# -- the actors' side --------------------------------------------------------------------------
def _describe_actor(isolation: dict) -> dict[str, Any]:
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname(), "isolation": isolation}


class VerifierActor:
    """What runs inside one `RayVerifier` actor: a local `Verifier` and nothing else."""

    def __init__(self, **verifier_kwargs: Any) -> None:
        self.verifier = Verifier(**verifier_kwargs)

    def ready(self) -> dict[str, Any]:
        return _describe_actor(self.verifier.isolation)

    def verify(self, item: dict[str, Any]) -> dict[str, Any]:
        return _verify_items(self.verifier, [item], item["timeout"])[0]

    def budget(self, _: object = None) -> dict[str, Any] | None:
        """The QPU budget, what this actor's broker has spent (``usage``) and what the whole
        pool has (``spent``: the shared ledger's count), for ``ibm:`` targets."""
        broker = self.verifier.broker
        if broker is None:
            return None
        return {
            "budget": asdict(broker.budget),
            "usage": asdict(broker.usage),
            "spent": broker.ledger.spent(),
        }

    def close(self) -> None:
        self.verifier.close()


def _verify_items(
    verifier: Verifier, items: Sequence[dict[str, Any]], timeout: float | None
) -> list[dict[str, Any]]:
    """Verdicts, as plain data, for items ``{"task", "completion"}``, run in parallel here."""
    tasks = [task_from_wire(item["task"]) for item in items]
    try:
        pairs = [(task, item["completion"]) for task, item in zip(tasks, items, strict=True)]
        verdicts = verifier.verify_many(pairs, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the sandbox failing is a verdict, not a crash
        detail = f"{type(exc).__name__}: {exc}"
        verdicts = [Verdict(task.task_id, Outcome.SANDBOX, detail) for task in tasks]
    return [verdict_to_wire(verdict) for verdict in verdicts]


class ActorHost:
    """The Ray actor around a worker object (`VerifierActor`, `RolloutWorker`).

    It keeps the worker's construction error instead of dying with it, so that the driver can
    raise it with its own type (a ``ValueError`` from bad options stays a ``ValueError``).
    """

    def __init__(self, cls: type, args: tuple, kwargs: dict[str, Any]) -> None:
        self.worker: Any = None
        self.start_error: tuple[str, str] | None = None
        try:
            self.worker = cls(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by ready(), raised on the driver
            self.start_error = (type(exc).__name__, str(exc))

    def ready(self) -> dict[str, Any]:
        if self.start_error is not None:
            return {"start_error": self.start_error}
        return self.worker.ready()

    def call(self, method: str, payload: Any) -> Any:
        return getattr(self.worker, method)(payload)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def _start_error(label: str, kind: str, message: str) -> Exception:
    error = {"ValueError": ValueError, "TypeError": TypeError}.get(kind, RuntimeError)
    if error is RuntimeError:
        message = f"{label}: a Ray actor failed to start: {kind}: {message}"
    return error(message)


# -- scheduling --------------------------------------------------------------------------------
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
class _Failure:
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
        self._ray = _import_ray()
        self._companions = list(companions)  # actors the pool's actors use (a budget ledger)
        self._spawn, self.label = spawn, label
        self.concurrency, self.max_in_flight = concurrency, max_in_flight
        self.max_retries, self.start_timeout = max_retries, start_timeout
        self.retry_timeouts = retry_timeouts
        self.stats = {"completed": 0, "actors_replaced": 0, "items_resent": 0, "items_timed_out": 0}
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
    ) -> list[Any | _Failure]:
        """Run ``actor.method(payload)`` for every payload; results or `_Failure` in input order.

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
            self._check_starting()
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
        except _actor_gone_errors(self._ray) as exc:
            self._replace(job.slot, batch, f"{type(exc).__name__}: {_first_line(exc)}")
            return
        del batch.jobs[ref]
        job.slot.inflight.remove(ref)
        batch.settle(job.index, value)
        self.stats["completed"] += 1
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
                batch.settle(job.index, _Failure("timeout", detail))
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
                batch.settle(job.index, _Failure(kind, _gave_up(batch.charges[job.index], reason)))
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
        except _actor_gone_errors(self._ray) as exc:
            self._start_failures += 1
            if self._start_failures > self.max_retries + len(self.slots):
                last = _first_line(exc)
                raise RuntimeError(
                    f"{self.label}: Ray actors keep dying while they start (last: {last})"
                ) from exc
            self._kill(slot.actor)
            fresh = self._new_slot()
            slot.actor, slot.ready_ref, slot.since = fresh.actor, fresh.ready_ref, fresh.since
            return
        slot.ready_ref = None
        if "start_error" in slot.info:
            raise _start_error(self.label, *slot.info["start_error"])

    def _check_starting(self) -> None:
        now = time.monotonic()
        stuck = [
            s for s in self.slots if s.ready_ref is not None and now - s.since > self.start_timeout
        ]
        if stuck and len(stuck) == len(self.slots):
            raise RuntimeError(self._start_timeout_message(len(stuck)))

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


def _actor_gone_errors(ray: Any) -> tuple[type[BaseException], ...]:
    errors = ray.exceptions
    return (
        errors.RayActorError,
        errors.WorkerCrashedError,
        errors.OutOfMemoryError,
        errors.NodeDiedError,
        errors.ObjectLostError,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- connecting to Ray --------------------------------------------------------------------------
_OWNED_LOCK = threading.Lock()
_owned_users = 0  # pools using a Ray session that this module started


def _connect(ray: Any, address: str | None, label: str) -> bool:
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
                f"{label}: could not connect to Ray at {where!r}: {_first_line(exc)} Start a "
                "cluster with `ray start --head` (then use address='auto'), give its address, or "
                "give no address for a new local Ray"
            ) from exc
        _owned_users = 1
        return True


def _disconnect(ray: Any, owned: bool) -> None:
    global _owned_users
    if not owned:
        return
    with _OWNED_LOCK:
        _owned_users -= 1
        if _owned_users == 0 and ray.is_initialized():
            ray.shutdown()


def _start_on_ray(
    shape: _PoolShape,
    address: str | None,
    actor_class: Any,
    args: tuple,
    kwargs: dict[str, Any],
    *,
    concurrency: int,
    label: str,
    retry: bool,
) -> tuple[Any, bool, ActorPool]:
    """Connect to Ray and start a pool's actors: (ray, whether this module owns the session,
    the pool). A pool that fails to start leaves the Ray session as it found it."""
    ray = _import_ray()
    owns_ray = _connect(ray, address, label)
    try:
        pool = shape.start(
            ray, actor_class, args, kwargs, concurrency=concurrency, label=label, retry=retry
        )
    except BaseException:
        _disconnect(ray, owns_ray)
        raise
    return ray, owns_ray, pool


def _check_capacity(ray: Any, actors: int, per_actor: dict[str, float], label: str) -> int:
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


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _positive_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a positive number, got {value!r}")
    if not 0 < float(value) < float("inf"):
        raise ValueError(f"{name}: expected a positive, finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class _PoolShape:
    """What every pool asks of Ray, checked once on the driver."""

    actors: int | None
    num_cpus: float
    max_in_flight: int
    item_timeout: float | None
    max_retries: int
    start_timeout: float

    @classmethod
    def checked(
        cls,
        actors: int | None,
        num_cpus: float,
        max_in_flight: int,
        item_timeout: float | None,
        max_retries: int,
        start_timeout: float,
    ) -> _PoolShape:
        if actors is not None:
            _positive_int(actors, "actors")
        _positive_number(num_cpus, "num_cpus")
        _positive_int(max_in_flight, "max_in_flight")
        if item_timeout is not None:
            _positive_number(item_timeout, "item_timeout")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries: expected an int >= 0, got {max_retries!r}")
        _positive_number(start_timeout, "start_timeout")
        return cls(actors, num_cpus, max_in_flight, item_timeout, max_retries, start_timeout)

    def start(
        self,
        ray: Any,
        actor_class: type,
        args: tuple,
        kwargs: dict[str, Any],
        *,
        concurrency: int,
        label: str,
        retry: bool,
    ) -> ActorPool:
        room = _check_capacity(ray, self.actors or 1, {"CPU": self.num_cpus}, label)
        count = self.actors or room
        companions = []
        budget = kwargs.get("budget")
        if isinstance(budget, Budget):
            ledger = ray.remote(BudgetLedger).options(num_cpus=0).remote(budget)
            companions.append(ledger)
            kwargs = {**kwargs, "budget": RayBudgetLedger(ledger, budget)}
        host = ray.remote(ActorHost).options(num_cpus=self.num_cpus, max_concurrency=concurrency)
        return ActorPool(  # a pool that fails to start ends its companions too
            lambda: host.remote(actor_class, args, kwargs),
            count,
            concurrency=concurrency,
            max_in_flight=self.max_in_flight,
            max_retries=self.max_retries,
            start_timeout=self.start_timeout,
            retry_timeouts=retry,
            label=label,
            companions=companions,
        )


class RayBudgetLedger(BudgetLedger):
    """The `BudgetLedger` of a pool, kept in one Ray actor, as every pool actor's broker sees it.

    All the pool's brokers hold and settle in that one ledger, so the pool keeps to its budget
    as a whole: an actor may spend what the others leave, and one that replaces a dead actor
    inherits nothing (a job the dead actor held stays counted, since it may have run).
    """

    def __init__(self, actor: Any, budget: Budget) -> None:  # no local state: it is the actor's
        self.budget, self._actor = budget, actor

    def hold(self, jobs: int, shots: int) -> str | None:
        return _import_ray().get(self._actor.hold.remote(jobs, shots))

    def settle(
        self, held_jobs: int, held_shots: int, jobs: int, shots: int, seconds: float
    ) -> None:
        _import_ray().get(self._actor.settle.remote(held_jobs, held_shots, jobs, shots, seconds))

    def spent(self) -> dict[str, Any]:
        return _import_ray().get(self._actor.spent.remote())


def _verifier_options(options: dict[str, Any], label: str) -> dict[str, Any]:
    unknown = sorted(set(options) - _VERIFIER_PARAMETERS)
    if unknown:
        raise TypeError(
            f"{label}: unknown Verifier option(s) {unknown}; expected some of "
            f"{sorted(_VERIFIER_PARAMETERS)}"
        )
    if options.get("broker") is not None:
        raise TypeError(
            f"{label}: broker= cannot be sent to Ray actors (it holds a Runtime service and its "
            "credentials); pass target='ibm:...' (and budget=...) and each actor builds its own "
            "broker from its node's saved account or QISKIT_IBM_* environment"
        )
    options = dict(options)
    options["parallelism"] = _positive_int(options.get("parallelism", 1), "parallelism")
    options["timeout"] = _positive_number(options.get("timeout", 60.0), "timeout")
    return options


# -- RayVerifier --------------------------------------------------------------------------------
class RayVerifier:
    """The `Verifier` interface over a pool of Ray actors, each with its own warm sandbox.

    Args:
        address: Ray to use. ``None``: the session already initialised in this process, else the
            cluster in ``$RAY_ADDRESS``, else a new local instance (no dashboard, one CPU per core)
            that `close` shuts down. ``"auto"`` or ``"ray://host:10001"``: an existing cluster.
        actors: How many actors; default as many as the cluster's alive nodes can hold.
        max_in_flight: Items sent to one actor and not yet returned (default twice its
            ``parallelism``, so each sandbox has its next program waiting).
        item_timeout: Seconds an item may take on an actor, from when the actor starts it, before
            the actor counts as stuck: the item then gets a ``timeout`` verdict (it is not run
            again) and the actor is replaced. Default: twice the program's limit plus 60 s, a
            backstop; programs that run long end at their own limit inside the sandbox.
        num_cpus: Ray CPUs each actor reserves (default its ``parallelism``).
        max_retries: Times an item is sent again after its actor died running it; past that it
            gets a ``sandbox`` verdict.
        start_timeout: Seconds to wait for actors to start before raising ``RuntimeError``.
        **verifier_kwargs: Options of each actor's `Verifier` (``parallelism`` defaults to 1:
            one sandbox per actor; ``timeout``, ``memory``, ``preload``, ``target``, ...). For
            ``ibm:`` targets each actor has its own broker, built from its node's account; all
            of them spend from one ``budget``, kept in a ledger actor (`RayBudgetLedger`), so
            the pool keeps to it as a whole and a replaced actor adds nothing to it. A
            ``broker`` object is refused (it would carry credentials to the actors).

    Raises:
        ImportError: Ray is not installed (the message has the ``pip install`` command).
        ValueError: The cluster's nodes cannot hold ``actors`` actors of ``num_cpus`` CPUs.
        RuntimeError: Actors did not start within ``start_timeout``.

    Calls from several threads are served one at a time. When Ray is already initialised in
    this process, that session is used whatever ``address`` says.
    """

    def __init__(
        self,
        address: str | None = None,
        actors: int | None = None,
        *,
        max_in_flight: int | None = None,
        item_timeout: float | None = None,
        num_cpus: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        **verifier_kwargs: Any,
    ) -> None:
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address: expected None or a Ray address str, got {address!r}")
        options = _verifier_options(verifier_kwargs, "RayVerifier")
        self.timeout: float = options["timeout"]
        self.target: Target = parse_target(options.get("target", "aer"))
        self.fit: str = options.get("fit", "fitted")
        per_actor = options["parallelism"]
        self._shape = _PoolShape.checked(
            actors,
            per_actor if num_cpus is None else num_cpus,
            2 * per_actor if max_in_flight is None else max_in_flight,
            item_timeout,
            max_retries,
            start_timeout,
        )
        self._lock = threading.Lock()
        self._pool: ActorPool | None = None
        self._ray, self._owns_ray, self._pool = _start_on_ray(
            self._shape,
            address,
            VerifierActor,
            (),
            options,
            concurrency=per_actor,
            label="RayVerifier",
            retry=False,
        )
        self.parallelism = per_actor * len(self._pool.slots)

    # -- the Verifier interface ---------------------------------------------------------------
    @property
    def isolation(self) -> dict:
        """Isolation layers active on every actor, and why any are missing on some."""
        pool = self._open_pool()
        active: set[str] | None = None
        missing: dict[str, str] = {}
        for slot in pool.slots:
            layers = slot.info.get("isolation", {})
            got = set(layers.get("active", []))
            active = got if active is None else active & got
            missing.update(layers.get("missing", {}))
        return {"active": sorted(active or ()), "missing": missing}

    def verify(self, task: Task, completion: str, *, timeout: float | None = None) -> Verdict:
        """Run ``completion`` against ``task`` on one of the actors and return the verdict."""
        return self.verify_many([(task, completion)], timeout=timeout)[0]

    def verify_many(
        self, pairs: Iterable[tuple[Task, str]], *, timeout: float | None = None
    ) -> list[Verdict]:
        """Verify many (task, completion) pairs over the actors; verdicts in input order."""
        if timeout is not None:
            timeout = _positive_number(timeout, "timeout")
        self._open_pool()
        items = [_wire_item(task, completion, timeout) for task, completion in pairs]
        limits = [self._item_limit(item) for item in items]
        with self._lock:
            results = self._open_pool().run(items, "verify", limits)
        return [_verdict_of(item, result) for item, result in zip(items, results, strict=True)]

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            _disconnect(self._ray, self._owns_ray)

    def __enter__(self) -> RayVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inspection ---------------------------------------------------------------------------
    @property
    def actors(self) -> list[Any]:
        """The actor handles now serving (a replaced actor's successor takes its place)."""
        return self._open_pool().actors

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: ``completed``, ``actors_replaced``, ``items_resent``,
        ``items_timed_out``."""
        return dict(self._open_pool().stats)

    # -- internals ----------------------------------------------------------------------------
    def _open_pool(self) -> ActorPool:
        if self._pool is None:
            raise ValueError("this RayVerifier is closed; create a new one")
        return self._pool

    def _item_limit(self, item: dict[str, Any]) -> float:
        if self._shape.item_timeout is not None:
            return self._shape.item_timeout
        return _stuck_after([item], item["timeout"], self.timeout)


def _wire_item(task: Task, completion: str, timeout: float | None) -> dict[str, Any]:
    """One (task, completion) pair as the plain data a pool's actors check."""
    if not isinstance(completion, str):
        raise TypeError(f"completion: expected str, got {type(completion).__name__}")
    return {"task": task_to_wire(task), "completion": completion, "timeout": timeout}


def _stuck_after(items: Sequence[dict[str, Any]], timeout: float | None, default: float) -> float:
    """Seconds after which an actor checking ``items`` together counts as stuck: twice the
    longest program limit among them (the call's, else the task's, else the pool's) plus
    `HANG_GRACE`."""
    longest = max(timeout or item["task"]["timeout"] or default for item in items)
    return 2 * longest + HANG_GRACE


def _verdict_of(item: dict[str, Any], result: Any) -> Verdict:
    if not isinstance(result, _Failure):
        return verdict_from_wire(result)
    outcome = Outcome.TIMEOUT if result.kind == "timeout" else Outcome.SANDBOX
    return Verdict(item["task"]["task_id"], outcome, result.detail)


# -- rollouts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trajectory:
    """One attempt at one task: what the policy saw, what it answered, and what that earned.

    Attributes:
        task_id: The task.
        sample: Which of the ``n`` samples drawn for this task (0-based); a GRPO group is the
            trajectories of one task with the same ``attempt``.
        attempt: 1 for the first answer; 2, 3, ... for repairs after execution feedback.
        prompt: The prompt as plain text (for a repair: the feedback the policy answered).
        messages: The prompt as chat messages, the system prompt first.
        completion: The policy's raw text.
        reward: 1.0 when the code passed, else 0.0.
        outcome: The verdict's outcome (``"passed"``, ``"failed"``, ``"timeout"``, ...).
        detail: The verdict's detail (the error, trimmed by the sandbox).
        error_type: The exception class the program raised, if any.
        seconds: Time the program took in the sandbox.
        code: The code that ran (extracted from the completion).
        token_logprobs: Log-probability of each generated token, when the policy gives them.
        policy: The policy's name.
    """

    task_id: str
    sample: int
    attempt: int
    prompt: str
    messages: tuple[dict[str, str], ...]
    completion: str
    reward: float
    outcome: str
    detail: str = ""
    error_type: str = ""
    seconds: float = 0.0
    code: str = ""
    token_logprobs: tuple[float, ...] | None = None
    policy: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED.value


PolicyLike = str | Policy | Callable[[], Policy]


class _Episode:
    """One sample of one task, possibly over several attempts, on its own environment copy."""

    def __init__(self, env: QiskitCodeEnv, task_id: str, sample: int) -> None:
        self.env, self.task_id, self.sample = env, task_id, sample
        self.prompt, info = env.reset(options={"task_id": task_id})
        self.messages: tuple[dict[str, str], ...] = tuple(info["messages"])
        self.query = Query(env.tasks[task_id], self.prompt, self.messages)
        self.attempt = 0
        self.done = False


class RolloutWorker:
    """Runs episodes of `QiskitCodeEnv` with a policy and returns `Trajectory` records.

    Usable directly in one process, and as a Ray actor in a `RolloutPool`. Environment copies
    share this worker's one `Verifier` (``parallelism`` sandboxes); completions of one batch are
    checked in parallel.

    Args:
        tasks: A `TaskSet`, a task source for `load_tasks`, or a sequence of tasks as plain data
            (`task_to_wire`).
        policy: A spec for `make_policy` (``"openai:model@url"``, ``"hf:path"``, ...), a `Policy`,
            or a function returning one.
        max_attempts: Attempts per episode; above 1 the policy sees the execution feedback of a
            failed attempt and answers again (the environment's repair mode).
        policy_options: Keyword options for `make_policy` when ``policy`` is a spec.
        **verifier_kwargs: Options of the worker's `Verifier` (``parallelism`` defaults to 1).

    Policies that can report token log-probabilities implement
    ``generate_with_logprobs(queries, n, params)``, returning ``result[i][j] = (text, logprobs)``;
    the worker calls it instead of ``generate`` when present.
    """

    def __init__(
        self,
        tasks: TaskSet | str | Sequence[dict[str, Any]],
        policy: PolicyLike,
        *,
        max_attempts: int = 1,
        policy_options: dict[str, Any] | None = None,
        **verifier_kwargs: Any,
    ) -> None:
        self.tasks = _task_set(tasks)
        self.max_attempts = _positive_int(max_attempts, "max_attempts")
        options = _verifier_options(verifier_kwargs, "RolloutWorker")
        self.policy = _build_policy(policy, policy_options or {})
        self.verifier = Verifier(**options)
        self._free_envs: queue.SimpleQueue[QiskitCodeEnv] = queue.SimpleQueue()
        self._steps = ThreadPoolExecutor(options["parallelism"], thread_name_prefix="rollout")

    def ready(self) -> dict[str, Any]:
        return {**_describe_actor(self.verifier.isolation), "policy": self.policy.name}

    def run(
        self, task_ids: Sequence[str], n: int = 1, params: SamplingParams | None = None
    ) -> list[Trajectory]:
        """``n`` episodes per task; trajectories ordered by task, then sample, then attempt."""
        _positive_int(n, "n")
        unknown = [t for t in task_ids if t not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task_id(s) {unknown[:5]}; this worker holds {self.tasks!r}")
        episodes = [_Episode(self._env(), t, s) for t in task_ids for s in range(n)]
        trajectories: list[Trajectory] = []
        try:
            firsts = self._sample([episodes[i * n].query for i in range(len(task_ids))], n, params)
            answers = [answer for row in firsts for answer in row]
            trajectories += self._step(episodes, answers)
            while live := [e for e in episodes if not e.done]:
                trajectories += self._step(live, self._repairs(live, params))
        finally:
            for episode in episodes:
                self._free_envs.put(episode.env)
        order = {t: i for i, t in enumerate(task_ids)}
        return sorted(trajectories, key=lambda r: (order[r.task_id], r.sample, r.attempt))

    def verify(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """Verdicts as plain data for ``{"items": [{"task", "completion"}, ...], "timeout"}``,
        checked in parallel on this worker's sandbox (what `RolloutPool.verify_many` sends)."""
        return _verify_items(self.verifier, request["items"], request.get("timeout"))

    def rollout(self, request: dict[str, Any]) -> list[Trajectory]:
        """`run` for plain-data requests: ``{"task_ids": [...], "n": int, "params": dict}``."""
        params = request.get("params")
        return self.run(
            request["task_ids"], request.get("n", 1), SamplingParams(**params) if params else None
        )

    def close(self) -> None:
        self._steps.shutdown(wait=True)
        self.policy.close()
        self.verifier.close()

    def __enter__(self) -> RolloutWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------
    def _env(self) -> QiskitCodeEnv:
        try:
            return self._free_envs.get_nowait()
        except queue.Empty:
            return QiskitCodeEnv(self.tasks, max_attempts=self.max_attempts, verifier=self.verifier)

    def _sample(
        self, queries: list[Query], n: int, params: SamplingParams | None
    ) -> list[list[tuple[str, tuple[float, ...] | None]]]:
        scored = getattr(self.policy, "generate_with_logprobs", None)
        rows: list[list[tuple[str, tuple[float, ...] | None]]]
        if callable(scored):
            rows = [[(text, tuple(lp)) for text, lp in row] for row in scored(queries, n, params)]
        else:
            plain = self.policy.generate(queries, n, params)
            rows = [[(text, None) for text in row] for row in plain]
        if len(rows) != len(queries) or any(len(row) != n for row in rows):
            raise ValueError(
                f"policy {self.policy.name!r}: expected {n} completion(s) for each of "
                f"{len(queries)} queries, got {[len(row) for row in rows]}"
            )
        for row in rows:
            for text, _ in row:
                if not isinstance(text, str):
                    raise TypeError(
                        f"policy {self.policy.name!r}: expected str completions, got "
                        f"{type(text).__name__}"
                    )
        return rows

    def _repairs(
        self, episodes: list[_Episode], params: SamplingParams | None
    ) -> list[tuple[str, tuple[float, ...] | None]]:
        return [row[0] for row in self._sample([e.query for e in episodes], 1, params)]

    def _step(
        self, episodes: list[_Episode], answers: list[tuple[str, tuple[float, ...] | None]]
    ) -> list[Trajectory]:
        return list(self._steps.map(self._step_one, episodes, answers))

    def _step_one(
        self, episode: _Episode, answer: tuple[str, tuple[float, ...] | None]
    ) -> Trajectory:
        completion, logprobs = answer
        query = episode.query
        observation, reward, terminated, _, _ = episode.env.step(completion)
        verdict = episode.env.last_verdict
        assert verdict is not None  # set by every step
        episode.attempt += 1
        episode.done = terminated
        if not terminated:
            messages = (
                *query.messages,
                {"role": "assistant", "content": completion},
                {"role": "user", "content": observation},
            )
            episode.query = Query(query.task, observation, messages)
        return Trajectory(
            task_id=episode.task_id,
            sample=episode.sample,
            attempt=episode.attempt,
            prompt=query.prompt,
            messages=query.messages,
            completion=completion,
            reward=float(reward),
            outcome=verdict.outcome.value,
            detail=verdict.detail,
            error_type=verdict.error_type,
            seconds=verdict.seconds,
            code=verdict.code,
            token_logprobs=logprobs,
            policy=self.policy.name,
        )


def _task_set(tasks: TaskSet | str | Sequence[dict[str, Any]]) -> TaskSet:
    if isinstance(tasks, TaskSet):
        return tasks
    if isinstance(tasks, (str, os.PathLike)):
        return load_tasks(tasks)
    if isinstance(tasks, Sequence) and all(isinstance(t, dict) for t in tasks):
        records = [t for t in tasks if isinstance(t, dict)]  # all of them; narrows the type
        return TaskSet([task_from_wire(t) for t in records], source="<rollout tasks>")
    raise TypeError(
        f"tasks: expected a TaskSet, a task source or a list of task dicts, got {tasks!r:.80}"
    )


def _check_policy_like(policy: object) -> None:
    if not (isinstance(policy, (str, Policy)) or callable(policy)):
        raise TypeError(
            "policy: expected a spec such as 'openai:model@url' or 'hf:path', a Policy, or a "
            f"function returning one, got {policy!r:.80}"
        )


def _build_policy(policy: PolicyLike, options: dict[str, Any]) -> Policy:
    _check_policy_like(policy)
    if isinstance(policy, str):
        return make_policy(policy, **options)
    if isinstance(policy, Policy):
        return policy
    built = policy()
    if not isinstance(built, Policy):
        raise TypeError(f"policy factory: expected it to return a Policy, got {built!r:.80}")
    return built


class RolloutError(RuntimeError):
    """Some rollouts could not be completed; the trajectories that were are kept.

    Attributes:
        trajectories: Trajectories of the tasks that completed, in task order.
        failed: ``task_id -> reason`` for the tasks that did not.
    """

    def __init__(self, message: str, trajectories: list[Trajectory], failed: dict[str, str]):
        super().__init__(message)
        self.trajectories, self.failed = trajectories, failed


class RolloutPool:
    """Rollouts over many `RolloutWorker` Ray actors.

    Each worker holds the task set, a policy replica (an API client, or a local model for
    ``"hf:..."``) and its own sandbox; the driver sends batches of task ids and gets trajectories
    back. Workers that die are replaced and their batches sent again; a batch running past
    ``item_timeout`` (a hung policy call) is sent again on a fresh worker, up to ``max_retries``
    times, after which `rollout` raises `RolloutError` carrying every trajectory that did complete.

    Args:
        policy: What `RolloutWorker` accepts: a spec (resolved here, so a prefix added with
            `register_policy` works on the workers too), a `Policy` (copied to every worker) or
            a function returning one (called on each worker).
        tasks: A `TaskSet` or a task source; loaded here and sent to the workers as plain data,
            so the workers' nodes need no copy of the task file.
        address: As for `RayVerifier`.
        workers: How many workers; default as many as the cluster can hold.
        batch_size: Tasks per request to a worker (a policy answers a batch in one call).
        max_attempts: Attempts per episode (repair mode above 1).
        max_in_flight: Batches sent to one worker and not yet returned.
        item_timeout: Seconds one batch may take on a worker; ``None`` for no limit (a local
            model's generation time is hard to bound; set one for API policies).
        num_cpus: Ray CPUs each worker reserves (default its ``parallelism``).
        max_retries: Times a batch is sent again after its worker died or timed out.
        start_timeout: Seconds to wait for the workers to start.
        policy_options: Options for `make_policy`.
        **verifier_kwargs: Options of each worker's `Verifier`.

    The pool is also a verifier: `verify_many` checks given completions on the workers'
    sandboxes, so one pool can finish the verdicts of a resumed benchmark and then generate.
    An API policy reads its key from the worker's environment: on a cluster, set it on the nodes
    or in the job's ``runtime_env``; the sandbox never passes it to the programs.
    """

    def __init__(
        self,
        policy: PolicyLike,
        tasks: TaskSet | str = "bundled",
        *,
        address: str | None = None,
        workers: int | None = None,
        batch_size: int = 4,
        max_attempts: int = 1,
        max_in_flight: int = 2,
        item_timeout: float | None = None,
        num_cpus: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        policy_options: dict[str, Any] | None = None,
        **verifier_kwargs: Any,
    ) -> None:
        self.tasks = _task_set(tasks)
        self.batch_size = _positive_int(batch_size, "batch_size")
        _positive_int(max_attempts, "max_attempts")
        _check_policy_like(policy)
        if isinstance(policy, str):  # an unknown spec fails here, before Ray starts
            policy, policy_options = policy_builder(policy, **(policy_options or {})), None
        options = _verifier_options(verifier_kwargs, "RolloutPool")
        self.timeout: float = options["timeout"]
        self._per_worker: int = options["parallelism"]
        self._shape = _PoolShape.checked(
            workers,
            options["parallelism"] if num_cpus is None else num_cpus,
            max_in_flight,
            item_timeout,
            max_retries,
            start_timeout,
        )
        self._lock = threading.Lock()
        self._pool: ActorPool | None = None
        self._ray, self._owns_ray, self._pool = _start_on_ray(
            self._shape,
            address,
            RolloutWorker,
            ([task_to_wire(self.tasks[t]) for t in self.tasks], policy),
            {"max_attempts": max_attempts, "policy_options": policy_options, **options},
            concurrency=1,
            label="RolloutPool",
            retry=True,
        )

    @property
    def workers(self) -> list[Any]:
        """The worker actor handles now serving."""
        return self._open_pool().actors

    @property
    def stats(self) -> dict[str, int]:
        """Counts since start: ``completed`` batches, ``actors_replaced``, ``items_resent``,
        ``items_timed_out``."""
        return dict(self._open_pool().stats)

    def rollout(
        self,
        task_ids: Iterable[str] | None = None,
        n: int = 1,
        params: SamplingParams | None = None,
        *,
        on_batch: Callable[[list[Trajectory]], None] | None = None,
    ) -> list[Trajectory]:
        """``n`` episodes of each task (default every task); trajectories in task order.

        ``on_batch(trajectories)`` is called on this thread with each batch's trajectories as it
        comes back (in completion order), so that they can be saved before the rest finish.

        Raises:
            ValueError: An unknown task id (nothing was run).
            RolloutError: Some batches failed ``max_retries`` + 1 times; it holds the rest.
            PolicyError: The policy failed on a worker (any error it raises comes back as
                itself); batches still running are abandoned.
        """
        ids = list(self.tasks) if task_ids is None else list(task_ids)
        unknown = [t for t in ids if t not in self.tasks]
        if unknown:
            raise ValueError(f"unknown task_id(s) {unknown[:5]}; the pool holds {self.tasks!r}")
        _positive_int(n, "n")
        if params is not None and not isinstance(params, SamplingParams):
            raise TypeError(f"params: expected SamplingParams, got {type(params).__name__}")
        wire_params = None if params is None else _fields_of(params)
        batches = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        requests = [{"task_ids": b, "n": n, "params": wire_params} for b in batches]
        limit = self._shape.item_timeout or float("inf")
        settled = None
        if on_batch is not None:

            def settled(_: int, result: Any) -> None:
                if not isinstance(result, _Failure):
                    on_batch(list(result))

        with self._lock:
            results = self._open_pool().run(requests, "rollout", [limit] * len(requests), settled)
        return _collect(batches, results)

    def verify(self, task: Task, completion: str, *, timeout: float | None = None) -> Verdict:
        """Check ``completion`` against ``task`` on one of the workers."""
        return self.verify_many([(task, completion)], timeout=timeout)[0]

    def verify_many(
        self, pairs: Iterable[tuple[Task, str]], *, timeout: float | None = None
    ) -> list[Verdict]:
        """Check (task, completion) pairs on the workers' sandboxes; verdicts in input order.

        Like `RayVerifier.verify_many`: a worker that dies has its items sent again, and items
        whose worker keeps dying (or is stuck past twice the program limit plus a grace period)
        get ``sandbox`` or ``timeout`` verdicts.
        """
        if timeout is not None:
            timeout = _positive_number(timeout, "timeout")
        self._open_pool()
        items = [_wire_item(task, completion, timeout) for task, completion in pairs]
        size = self._per_worker
        groups = [items[i : i + size] for i in range(0, len(items), size)]
        requests = [{"items": group, "timeout": timeout} for group in groups]
        limits = [_stuck_after(group, timeout, self.timeout) for group in groups]
        with self._lock:
            results = self._open_pool().run(requests, "verify", limits)
        verdicts: list[Verdict] = []
        for group, result in zip(groups, results, strict=True):
            for index, item in enumerate(group):
                one = result if isinstance(result, _Failure) else result[index]
                verdicts.append(_verdict_of(item, one))
        return verdicts

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            _disconnect(self._ray, self._owns_ray)

    def __enter__(self) -> RolloutPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_pool(self) -> ActorPool:
        if self._pool is None:
            raise ValueError("this RolloutPool is closed; create a new one")
        return self._pool


def _fields_of(params: SamplingParams) -> dict[str, Any]:
    return {f.name: getattr(params, f.name) for f in fields(params)}


def _collect(batches: list[list[str]], results: list[Any]) -> list[Trajectory]:
    trajectories: list[Trajectory] = []
    failed: dict[str, str] = {}
    for batch, result in zip(batches, results, strict=True):
        if isinstance(result, _Failure):
            failed.update(dict.fromkeys(batch, result.detail))
        else:
            trajectories += result
    if failed:
        raise RolloutError(
            f"RolloutPool: {len(failed)} task(s) could not be rolled out: "
            f"{next(iter(failed.values()))}",
            trajectories,
            failed,
        )
    return trajectories
