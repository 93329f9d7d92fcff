"""`RolloutPool`: rollouts over many `RolloutWorker` Ray actors, each with its policy replica and
its own sandbox.

The driver sends batches of task ids and gets `Trajectory` records back. Workers that die are
replaced and their batches sent again; a batch running past ``item_timeout`` (a hung policy call)
is sent again on a fresh worker, up to ``max_retries`` times, after which `RolloutPool.rollout`
raises `RolloutError` carrying every trajectory that did complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agents.policy import SamplingParams, policy_builder
from agents.ray.lifecycle import RayPool
from agents.ray.options import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_START_TIMEOUT,
    PoolShape,
    checked_verifier_options,
    positive_int,
)
from agents.ray.scheduler import Failure
from agents.ray.verifier import stuck_after, verdict_of
from agents.ray.wire import params_to_wire, task_to_wire
from agents.ray.worker import PolicyLike, RolloutWorker, Trajectory, check_policy_like, task_set
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Verdict

__all__ = ["RolloutError", "RolloutPool"]


class RolloutError(RuntimeError):
    """Some rollouts could not be completed; the trajectories that were are kept.

    Attributes:
        trajectories: Trajectories of the tasks that completed, in task order.
        failed: ``task_id -> reason`` for the tasks that did not.
    """

    def __init__(self, message: str, trajectories: list[Trajectory], failed: dict[str, str]):
        super().__init__(message)
        self.trajectories, self.failed = trajectories, failed


class RolloutPool(RayPool):
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
        workers: How many workers (Ray actors); default as many as the cluster can hold.
        sandboxes_per_worker: Sandboxes of each worker's `Verifier` (default 1); episodes of one
            batch run that many at once.
        batch_size: Tasks per request to a worker (a policy answers a batch in one call).
        max_attempts: Attempts per episode (repair mode above 1).
        max_in_flight: Batches sent to one worker and not yet returned.
        item_timeout: Seconds one batch may take on a worker; ``None`` for no limit (a local
            model's generation time is hard to bound; set one for API policies).
        num_cpus: Ray CPUs each worker reserves (default its ``sandboxes_per_worker``).
        num_gpus: Ray GPUs each worker reserves (default 0). A local model (``"hf:..."``) on a
            worker with GPUs loads onto them: Ray shows the worker only its own devices.
        max_retries: Times a batch is sent again after its worker died or timed out.
        start_timeout: Seconds to wait for the workers to start.
        policy_options: Options for `make_policy`.
        **verifier_kwargs: Options of each worker's `Verifier` (``timeout``, ``target``, ...;
            ``parallelism=`` is the older name of ``sandboxes_per_worker=`` and warns).

    The pool is also a verifier: `verify_many` checks given completions on the workers'
    sandboxes, so one pool can finish the verdicts of a resumed benchmark and then generate.
    An API policy reads its key from the worker's environment: on a cluster, set it on the nodes
    or in the job's ``runtime_env``; the sandbox never passes it to the programs.
    """

    label = "RolloutPool"

    def __init__(
        self,
        policy: PolicyLike,
        tasks: TaskSet | str = "bundled",
        *,
        address: str | None = None,
        workers: int | None = None,
        sandboxes_per_worker: int | None = None,
        batch_size: int = 4,
        max_attempts: int = 1,
        max_in_flight: int = 2,
        item_timeout: float | None = None,
        num_cpus: float | None = None,
        num_gpus: float = 0.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        policy_options: dict[str, Any] | None = None,
        **verifier_kwargs: Any,
    ) -> None:
        self.tasks = task_set(tasks)
        self.batch_size = positive_int(batch_size, "batch_size")
        positive_int(max_attempts, "max_attempts")
        check_policy_like(policy)
        if isinstance(policy, str):  # an unknown spec fails here, before Ray starts
            policy, policy_options = policy_builder(policy, **(policy_options or {})), None
        options = checked_verifier_options(verifier_kwargs, self.label, sandboxes_per_worker)
        self.timeout: float = options["timeout"]
        self.sandboxes_per_worker: int = options["workers"]
        shape = PoolShape.checked(
            workers,
            self.sandboxes_per_worker if num_cpus is None else num_cpus,
            max_in_flight,
            item_timeout,
            max_retries,
            start_timeout,
            num_gpus,
        )
        self._start(
            shape,
            address,
            RolloutWorker,
            ([task_to_wire(self.tasks[t]) for t in self.tasks], policy),
            {"max_attempts": max_attempts, "policy_options": policy_options, **options},
            concurrency=1,
            retry=True,
        )

    @property
    def workers(self) -> list[Any]:
        """The worker actor handles now serving."""
        return self._open_pool().actors

    @property
    def actors(self) -> list[Any]:
        """The same handles as `workers` (Ray calls them actors)."""
        return self._open_pool().actors

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
        positive_int(n, "n")
        if params is not None and not isinstance(params, SamplingParams):
            raise TypeError(f"params: expected SamplingParams, got {type(params).__name__}")
        wire_params = None if params is None else params_to_wire(params)
        batches = [ids[i : i + self.batch_size] for i in range(0, len(ids), self.batch_size)]
        requests = [{"task_ids": b, "n": n, "params": wire_params} for b in batches]
        limit = self._shape.item_timeout or float("inf")
        settled = None
        if on_batch is not None:

            def settled(_: int, result: Any) -> None:
                if not isinstance(result, Failure):
                    on_batch(list(result))

        results = self._run(requests, "rollout", [limit] * len(requests), settled)
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
        items, timeout = self._wire_pairs(pairs, timeout)
        size = self.sandboxes_per_worker
        groups = [items[i : i + size] for i in range(0, len(items), size)]
        requests = [{"items": group, "timeout": timeout} for group in groups]
        limits = [stuck_after(group, timeout, self.timeout) for group in groups]
        results = self._run(requests, "verify", limits)
        verdicts: list[Verdict] = []
        for group, result in zip(groups, results, strict=True):
            for index, item in enumerate(group):
                one = result if isinstance(result, Failure) else result[index]
                verdicts.append(verdict_of(item, one))
        return verdicts


def _collect(batches: list[list[str]], results: list[Any]) -> list[Trajectory]:
    trajectories: list[Trajectory] = []
    failed: dict[str, str] = {}
    for batch, result in zip(batches, results, strict=True):
        if isinstance(result, Failure):
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
