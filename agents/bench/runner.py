"""The benchmark runner: generate ``n`` samples per task with a policy, verify each, resume on disk.

`run_benchmark` runs (or resumes) one run in its directory (`agents.bench.rundir`: the logs, the
resume state, the outputs) for a `agents.bench.config.BenchConfig`. Resuming verifies samples that
have no verdict and generates only the samples that are missing: nothing is generated or verified
twice. Generation (main thread) and verification (`agents.bench.lanes`: ``lanes`` threads calling
``verify_many``) overlap.

With a ``rollout`` pool (``qsandbox bench --ray`` with a replicable agent: an API client, the
oracle, stale-api) generation moves to the pool's workers too: each builds the agent from its spec,
generates a batch and verifies it in its own sandbox, and the driver writes each sample line and
then its verdict line as batches come back. The same pool verifies the samples a resumed run left
without a verdict. A batch lost with its worker is made again on another one; a sample is on disk
only once its batch has returned.

This module never executes generated code: verdicts come from the Verifier (or any object with
its ``verify_many``/``close`` interface, such as ``agents.ray.RayVerifier``; see
`agents.verifying`).
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agents.bench.config import BenchConfig, BenchError, resolve_tasks
from agents.bench.lanes import VerifyLanes
from agents.bench.rundir import (
    CONFIG_FILE,
    RESULTS_FILE,
    SAMPLES_FILE,
    SUMMARY_FILE,
    JsonlLog,
    RunState,
    check_config,
    load_state,
    missing_samples,
    result_record,
    write_config,
    write_outputs,
)
from agents.policy import (
    Policy,
    PolicyError,
    SamplingParams,
    check_policy_spec,
    make_policy,
    query_for,
)
from agents.verifying import VerifierError, VerifierLike, build_verifier, verifier_options
from qsandbox_env.progress import Progress
from qsandbox_env.tasks import Task, TaskSet

__all__ = [  # the configuration, directory and verifier names stay importable from here
    "SUMMARY_FILE",
    "BenchConfig",
    "BenchError",
    "JsonlLog",
    "build_rollout",
    "build_verifier",
    "resolve_tasks",
    "run_benchmark",
    "write_outputs",
]


class RolloutLike(VerifierLike, Protocol):
    """What the runner needs of a rollout pool (``agents.ray.RolloutPool`` has it)."""

    def rollout(
        self,
        task_ids: Sequence[str],
        n: int,
        params: SamplingParams | None,
        *,
        on_batch: Callable[[list[Any]], None],
    ) -> list[Any]: ...

    def close(self) -> None: ...


def build_rollout(
    config: BenchConfig,
    workers: int | None = None,
    ray: str | bool = True,
    budget: Any = None,
    gpus_per_worker: float = 0.0,
) -> Callable[[TaskSet], Any]:
    """A function that starts an ``agents.ray.RolloutPool`` for ``config``'s agent on Ray
    (``ray`` and ``budget`` as for `build_verifier`), with ``workers`` workers of one sandbox
    and ``gpus_per_worker`` GPUs each; what `run_benchmark` takes as ``rollout``. A local model
    directory is sent as an absolute path: the workers do not share the driver's directory.
    """
    agent = _absolute_model_path(config.agent)

    def build(tasks: TaskSet) -> Any:
        from agents.ray.pool import RolloutPool  # ray is imported only when asked for

        options = verifier_options(config.timeout, config.target, budget, config.fit)
        try:
            return RolloutPool(
                agent,
                tasks,
                address=ray if isinstance(ray, str) else None,
                workers=workers,
                num_gpus=gpus_per_worker,
                policy_options=dict(config.agent_options),
                **options,
            )
        except (ImportError, ValueError, RuntimeError) as error:
            raise BenchError(f"--ray: {error}") from None

    return build


def _absolute_model_path(agent: str) -> str:
    prefix, sep, argument = agent.partition(":")
    if prefix == "hf" and sep and argument.startswith((".", "~")):
        return f"hf:{os.path.abspath(os.path.expanduser(argument))}"
    return agent


def run_benchmark(
    config: BenchConfig,
    out: str,
    *,
    tasks: TaskSet | None = None,
    policy: Policy | Callable[[], Policy] | None = None,
    verifier: VerifierLike | Callable[[], VerifierLike] | None = None,
    rollout: Callable[[TaskSet], RolloutLike] | None = None,
    replicate: bool = False,
    workers: int | None = None,
    lanes: int | None = None,
    batch: int = 1,
    chunk: int = 32,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a benchmark into directory ``out`` and return its summary.

    Args:
        config: What to run.
        out: The run directory (created if needed).
        tasks: The tasks, when already loaded (default: `resolve_tasks` from ``config``).
        policy: A policy or a function building one (default: ``make_policy(config.agent)``);
            built only if some sample is still missing.
        verifier: A Verifier-like object or a function building one (default: a local
            `Verifier`); built only if some sample has no verdict. One built here is closed here.
        rollout: A function building a rollout pool for the tasks. When given, ``policy`` is
            None and the agent is replicable (`Policy.replicable`), the pool generates and
            verifies every missing sample (and verifies the ones without a verdict) instead of
            the local policy and ``verifier``; otherwise it is not used. Closed here.
        replicate: With ``rollout``, generate on the pool's workers even when the agent is not
            replicable: each worker loads its own replica of a local model (``hf:``), and the
            model is never loaded here (its spec is only checked).
        workers: Sandboxes of the default verifier.
        lanes: Threads calling ``verify_many`` at once (default: ``workers`` or the CPU count).
        batch: Samples per ``verify_many`` call.
        chunk: Queries per ``generate`` call; samples are written after each call.
        progress: Draw a progress line on stderr.

    Raises:
        BenchError: A run directory made with another configuration, or bad inputs.
        PolicyError: The policy failed; every sample and verdict already made is kept.
    """
    tasks = (
        tasks
        if tasks is not None
        else resolve_tasks(config.tasks, config.data, config.task_options, config.limit)
    )
    identity = config.identity(list(tasks))
    resuming = check_config(identity, os.path.join(out, CONFIG_FILE))
    if hasattr(verifier, "verify_many"):
        _check_fit(verifier, config)  # before anything is written
    samples_log = JsonlLog(os.path.join(out, SAMPLES_FILE))
    results_log = JsonlLog(os.path.join(out, RESULTS_FILE))
    state = load_state(samples_log, results_log, tasks, config.n)
    missing = missing_samples(tasks, state, config.n)
    # The policy before anything is written or started: a bad spec or a missing extra fails
    # here, leaving no run directory behind to conflict with the corrected command.
    remote = None
    if rollout is not None and replicate and policy is None:
        _check_spec(config)  # a replica per worker: nothing is loaded here
        generator, remote = None, rollout
    else:
        generator = _resolve_policy(policy, config) if missing else None
    if rollout is not None and policy is None and generator is not None and generator.replicable:
        generator.close()  # built to check the spec here; the pool's workers build their own
        generator, remote = None, rollout
    if not resuming:
        write_config(identity, out)
    started = time.monotonic()
    try:
        work = _Work(config, tasks, state, samples_log, results_log, missing, progress)
        if remote is not None:
            work.run_remote(remote)
        else:
            work.run(generator, verifier, workers, lanes, batch, chunk)
    finally:
        samples_log.close()
        results_log.close()
        if generator is not None and generator is not policy:
            generator.close()  # built here: its threads, sessions or weights end with the run
    seconds = time.monotonic() - started
    return write_outputs(config, out, tasks, list(state.results.values()), seconds)


@dataclass
class _Work:
    """What is left of a run, and the logs it goes into."""

    config: BenchConfig
    tasks: TaskSet
    state: RunState
    samples_log: JsonlLog
    results_log: JsonlLog
    missing: dict[str, list[int]]
    progress: bool

    def run(
        self,
        generator: Policy | None,
        verifier: Any,
        workers: int | None,
        lanes: int | None,
        batch: int,
        chunk: int,
    ) -> None:
        state = self.state
        unverified = [key for key in state.samples if key not in state.results]
        if not self.missing and not unverified:
            return
        bar = self._progress()
        owned = not hasattr(verifier, "verify_many")  # built here, so closed here
        active = None
        try:
            active = _resolve_verifier(verifier, self.config, workers)
            width = lanes or workers or os.cpu_count() or 1
            pool = VerifyLanes(active, self, bar, width, batch)
            pool.submit(unverified)
            try:
                if generator is not None:
                    self._generate(generator, chunk, pool, bar)
            except KeyboardInterrupt:
                pool.stop(wait=False)
                raise
            except BaseException:
                pool.stop(wait=True, reraise=False)  # keep the verdicts of what was generated
                raise
            pool.stop(wait=True)
        finally:
            bar.close()
            if owned and active is not None:
                active.close()

    def _progress(self) -> Progress:
        state = self.state
        passed = sum(r.get("outcome") == "passed" for r in state.results.values())
        return Progress(
            self.config.n * len(self.tasks),
            done=len(state.results),
            passed=passed,
            made=len(state.samples),
            enabled=self.progress,
        )

    def run_remote(self, build: Callable[[TaskSet], RolloutLike]) -> None:
        """Verify what lacks a verdict, then generate and verify the missing samples, on a pool."""
        from agents.ray.pool import RolloutError

        state = self.state
        unverified = [key for key in state.samples if key not in state.results]
        bar = self._progress()
        pool = None
        try:
            pool = build(self.tasks)
            if unverified:
                verdicts = pool.verify_many(self.pairs(unverified))
                for key, verdict in zip(unverified, verdicts, strict=True):
                    self.record_result(key, verdict, bar)
            for count, task_ids in self._groups_by_count().items():

                def save(trajectories: list[Any]) -> None:
                    for trajectory in trajectories:
                        index = self.missing[trajectory.task_id][trajectory.sample]
                        key = (trajectory.task_id, index)
                        self._record_sample(key, trajectory.completion)
                        bar.generated(1)
                        self.record_result(key, trajectory, bar)

                pool.rollout(task_ids, count, self.config.params, on_batch=save)
        except RolloutError as error:  # what completed is saved already
            raise BenchError(
                f"{error}; the samples that completed are saved: rerun the same command to make "
                "the rest"
            ) from None
        finally:
            bar.close()
            if pool is not None:
                pool.close()

    def _record_sample(self, key: tuple[str, int], completion: str) -> None:
        task_id, index = key
        self.samples_log.append({"task_id": task_id, "sample": index, "completion": completion})
        self.state.samples[key] = completion

    def pairs(self, keys: Sequence[tuple[str, int]]) -> list[tuple[Task, str]]:
        return [(self.tasks[task_id], self.state.samples[(task_id, j)]) for task_id, j in keys]

    def record_result(self, key: tuple[str, int], verdict: Any, bar: Progress) -> None:
        record = result_record(*key, verdict)
        self.results_log.append(record)
        self.state.results[key] = record
        bar.verified(record["passed"])

    def _groups_by_count(self) -> dict[int, list[str]]:
        """Tasks missing the same number of samples share generate calls (n is per call)."""
        by_count: dict[int, list[str]] = collections.defaultdict(list)
        for task_id, indexes in self.missing.items():
            by_count[len(indexes)].append(task_id)
        return by_count

    def _generate(self, policy: Policy, chunk: int, pool: VerifyLanes, bar: Progress) -> None:
        config, missing = self.config, self.missing
        for count, task_ids in self._groups_by_count().items():
            for group in _chunks(task_ids, chunk):
                queries = [query_for(self.tasks[task_id]) for task_id in group]
                answers = policy.generate(queries, count, config.params)
                _check_answers(answers, len(group), count, config.agent)
                written = []
                for task_id, completions in zip(group, answers, strict=True):
                    for index, completion in zip(missing[task_id], completions, strict=True):
                        self._record_sample((task_id, index), completion)
                        written.append((task_id, index))
                bar.generated(len(written))
                pool.submit(written)


def _resolve_verifier(verifier: Any, config: BenchConfig, workers: int | None) -> Any:
    try:
        if verifier is None:
            return build_verifier(workers, config.timeout, config.target, fit=config.fit)
        built = verifier if hasattr(verifier, "verify_many") else verifier()
    except VerifierError as error:  # no Ray, a cluster too small: the run's inputs to fix
        raise BenchError(str(error)) from None
    try:
        _check_fit(built, config)
    except BenchError:
        if built is not verifier:
            built.close()
        raise
    return built


def _check_fit(verifier: Any, config: BenchConfig) -> None:
    """A verifier given to the run must fit answers as the run's configuration says."""
    fit = getattr(verifier, "fit", config.fit)
    if fit != config.fit:
        raise BenchError(
            f"the verifier fits answers with fit={fit!r} but the run's configuration says "
            f"fit={config.fit!r}; pass a Verifier(fit={config.fit!r})"
        )


def _check_spec(config: BenchConfig) -> None:
    """What building ``config.agent`` would refuse at once, checked without building it."""
    try:
        check_policy_spec(config.agent, **dict(config.agent_options))
    except (ImportError, ValueError, TypeError, PolicyError) as error:
        raise BenchError(f"--agent {config.agent}: {error}") from None


def _resolve_policy(policy: Any, config: BenchConfig) -> Policy:
    if isinstance(policy, Policy):
        return policy
    try:
        if policy is None:
            return make_policy(config.agent, **dict(config.agent_options))
        return policy()
    except (ImportError, ValueError, TypeError) as error:
        # A bad spec, an option the agent does not take, or a missing extra (the message has
        # the pip command): the user's to fix, not a crash.
        raise BenchError(f"--agent {config.agent}: {error}") from None


def _check_answers(answers: Any, queries: int, n: int, agent: str) -> None:
    shape_ok = (
        isinstance(answers, list)
        and len(answers) == queries
        and all(
            isinstance(row, list) and len(row) == n and all(isinstance(c, str) for c in row)
            for row in answers
        )
    )
    if not shape_ok:
        raise PolicyError(
            f"agent {agent!r} returned a malformed batch: expected {queries} lists of {n} "
            "strings (one list per query)"
        )


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]
