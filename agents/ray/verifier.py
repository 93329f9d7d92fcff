"""`RayVerifier`: the `Verifier` interface over a pool of Ray actors, each with its own sandbox.

Each program runs on one actor's `Verifier` (its own isolated sandbox, on the actor's node);
verdicts come back in input order. An item whose actor dies while running it more than
``max_retries`` times gets a ``sandbox`` verdict; one whose actor is stuck past ``item_timeout``
gets a ``timeout`` verdict and is not run again (it would likely hang again). Programs that
merely run long end earlier, inside the sandbox, at the program limit, with the actor left warm.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

from agents.ray.actors import VerifierActor
from agents.ray.lifecycle import RayPool
from agents.ray.options import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_START_TIMEOUT,
    PoolShape,
    checked_verifier_options,
)
from agents.ray.scheduler import Failure
from agents.ray.wire import verdict_from_wire
from qsandbox_env.deprecation import renamed_keyword
from qsandbox_env.targets import Target, parse_target
from qsandbox_env.tasks import Task
from qsandbox_env.verifier import Outcome, Verdict

__all__ = ["HANG_GRACE", "RayVerifier", "stuck_after", "verdict_of"]

# Past the program's own limit, how long an item may take on an actor before it counts as stuck:
# the sandbox allows 20 s past the limit for a stuck zygote and retries once on a fresh one.
HANG_GRACE = 60.0


class RayVerifier(RayPool):
    """The `Verifier` interface over a pool of Ray actors, each with its own warm sandbox.

    Args:
        address: Ray to use. ``None``: the session already initialised in this process, else the
            cluster in ``$RAY_ADDRESS``, else a new local instance (no dashboard, one CPU per core)
            that `close` shuts down. ``"auto"`` or ``"ray://host:10001"``: an existing cluster.
        workers: How many Ray workers (actors, each with its own `Verifier`); default as many as
            the cluster's alive nodes can hold. ``actors=`` is its older name (warns).
        sandboxes_per_worker: Sandboxes of each worker's `Verifier` (its ``workers``; default
            1), so ``workers * sandboxes_per_worker`` programs run at once.
        max_in_flight: Items sent to one actor and not yet returned (default twice its
            ``sandboxes_per_worker``, so each sandbox has its next program waiting).
        item_timeout: Seconds an item may take on an actor, from when the actor starts it, before
            the actor counts as stuck: the item then gets a ``timeout`` verdict (it is not run
            again) and the actor is replaced. Default: twice the program's limit plus 60 s, a
            backstop; programs that run long end at their own limit inside the sandbox.
        num_cpus: Ray CPUs each actor reserves (default its ``sandboxes_per_worker``).
        max_retries: Times an item is sent again after its actor died running it; past that it
            gets a ``sandbox`` verdict.
        start_timeout: Seconds to wait for actors to start before raising ``RuntimeError``.
        **verifier_kwargs: Options of each actor's `Verifier` (``timeout``, ``memory``,
            ``preload``, ``target``, ...). For
            ``ibm:`` targets each actor has its own broker, built from its node's account; all
            of them spend from one ``budget``, kept in a ledger actor (`RayBudgetLedger`), so
            the pool keeps to it as a whole and a replaced actor adds nothing to it. A
            ``broker`` object is refused (it would carry credentials to the actors).

    Raises:
        ImportError: Ray is not installed (the message has the ``pip install`` command).
        ValueError: The cluster's nodes cannot hold ``workers`` actors of ``num_cpus`` CPUs.
        RuntimeError: Actors did not start within ``start_timeout`` when the pool was made.
            (Later, when every actor is lost and none restarts within ``start_timeout``, the
            items not yet verified get ``sandbox`` verdicts saying so; verdicts already in hand
            are kept.)

    Calls from several threads are served one at a time. When Ray is already initialised in
    this process, that session is used whatever ``address`` says.
    """

    label = "RayVerifier"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        sandboxes_per_worker: int | None = None,
        max_in_flight: int | None = None,
        item_timeout: float | None = None,
        num_cpus: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        actors: int | None = None,
        **verifier_kwargs: Any,
    ) -> None:
        workers = renamed_keyword(self.label, "actors", actors, "workers", workers)
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address: expected None or a Ray address str, got {address!r}")
        options = checked_verifier_options(verifier_kwargs, self.label, sandboxes_per_worker)
        self.timeout: float = options["timeout"]
        self.target: Target = parse_target(options.get("target", "aer"))
        self.fit: str = options.get("fit", "fitted")
        per_actor = options["workers"]
        shape = PoolShape.checked(
            workers,
            per_actor if num_cpus is None else num_cpus,
            2 * per_actor if max_in_flight is None else max_in_flight,
            item_timeout,
            max_retries,
            start_timeout,
        )
        self._start(shape, address, VerifierActor, (), options, concurrency=per_actor, retry=False)
        self.sandboxes_per_worker: int = per_actor

    @property
    def parallelism(self) -> int:
        """Programs run at once, ``workers * sandboxes_per_worker`` (deprecated name; warns)."""
        warnings.warn(
            "RayVerifier.parallelism is deprecated; read workers * sandboxes_per_worker",
            DeprecationWarning,
            2,
        )
        return len(self._open_pool().slots) * self.sandboxes_per_worker

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
        items, _ = self._wire_pairs(pairs, timeout)
        limits = [self._item_limit(item) for item in items]
        results = self._run(items, "verify", limits)
        return [verdict_of(item, result) for item, result in zip(items, results, strict=True)]

    # -- inspection ---------------------------------------------------------------------------
    @property
    def workers(self) -> list[Any]:
        """The worker actor handles now serving (a replaced actor's successor takes its place)."""
        return self._open_pool().actors

    @property
    def actors(self) -> list[Any]:
        """The same handles as `workers` (Ray calls them actors)."""
        return self._open_pool().actors

    # -- internals ----------------------------------------------------------------------------
    def _item_limit(self, item: dict[str, Any]) -> float:
        if self._shape.item_timeout is not None:
            return self._shape.item_timeout
        return stuck_after([item], item["timeout"], self.timeout)


def stuck_after(items: Sequence[dict[str, Any]], timeout: float | None, default: float) -> float:
    """Seconds after which an actor checking ``items`` together counts as stuck: twice the
    longest program limit among them (the call's, else the task's, else the pool's) plus
    `HANG_GRACE`."""
    longest = max(timeout or item["task"]["timeout"] or default for item in items)
    return 2 * longest + HANG_GRACE


def verdict_of(item: dict[str, Any], result: Any) -> Verdict:
    if not isinstance(result, Failure):
        return verdict_from_wire(result)
    outcome = Outcome.TIMEOUT if result.kind == "timeout" else Outcome.SANDBOX
    return Verdict(item["task"]["task_id"], outcome, result.detail)
