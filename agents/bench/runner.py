"""The benchmark runner: generate ``n`` samples per task with a policy, verify each, resume on disk.

A run lives in one directory:

- ``config.json``: what the run is (agent, tasks, n, sampling, timeout, target, answer-fitting
  policy, task ids). A rerun into the same directory must match it, else `BenchError` says which
  fields differ.
- ``samples.jsonl``: one line per generation (``task_id``, ``sample``, ``completion``), every one
  kept, appended and flushed line by line.
- ``results.jsonl``: one line per verdict (``task_id``, ``sample``, ``outcome``, ``category``, ...).
- ``summary.json``, ``report.md``, ``passk.png``: written by `agents.bench.report` at the end.

Resuming reads both logs, drops a torn last line (a kill mid-write), verifies samples that have no
verdict and generates only the samples that are missing: nothing is generated or verified twice.
Generation (main thread) and verification (``lanes`` threads calling ``verify_many``) overlap.

With a ``rollout`` pool (``qsandbox bench --ray`` with a replicable agent: an API client, the
oracle, stale-api) generation moves to the pool's workers too: each builds the agent from its spec,
generates a batch and verifies it in its own sandbox, and the driver writes each sample line and
then its verdict line as batches come back. The same pool verifies the samples a resumed run left
without a verdict. A batch lost with its worker is made again on another one; a sample is on disk
only once its batch has returned.

This module never executes generated code: verdicts come from the Verifier (or any object with
its ``verify_many``/``close`` interface, such as ``agents.rollout.RayVerifier``). It never
rewrites or deletes a line of a log except a torn, unterminated last one.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from agents.bench import report
from agents.bench.progress import Progress
from agents.policy import Policy, PolicyError, SamplingParams, make_policy, query_for
from qsandbox_env.program import FIT_POLICIES
from qsandbox_env.tasks import SOURCES, Task, TaskSet, load_tasks

__all__ = [
    "BenchConfig",
    "BenchError",
    "JsonlLog",
    "build_rollout",
    "build_verifier",
    "resolve_tasks",
    "run_benchmark",
]

HUMANEVAL_SOURCES = ("qiskit-humaneval", "qiskit-humaneval-hard")
DETAIL_LIMIT = 2000  # characters of a verdict's detail kept per result line (the tail)
CONFIG_FILE, SAMPLES_FILE, RESULTS_FILE = "config.json", "samples.jsonl", "results.jsonl"
SUMMARY_FILE, REPORT_FILE, CHART_FILE = "summary.json", "report.md", "passk.png"


class BenchError(Exception):
    """A problem with the run's inputs or directory; the message says what and how to fix it."""


class VerifierLike(Protocol):
    def verify_many(self, pairs: Sequence[tuple[Task, str]]) -> list[Any]: ...

    def close(self) -> None: ...


class RolloutLike(VerifierLike, Protocol):
    """What the runner needs of a rollout pool (``agents.rollout.RolloutPool`` has it)."""

    def rollout(
        self,
        task_ids: Sequence[str],
        n: int,
        params: SamplingParams | None,
        *,
        on_batch: Callable[[list[Any]], None],
    ) -> list[Any]: ...


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run is. Fields marked (resume) must match when a run is resumed.

    Attributes:
        agent: Policy spec (resume), e.g. ``"oracle"`` or ``"hf:Qwen/Qwen2.5-Coder-1.5B"``.
        tasks: Task source (resume): a named source or a task file.
        n: Samples per task (resume).
        ks: Budgets to report; may change between resumes.
        params: Sampling parameters (resume).
        data: Task file for sources that need one (resume).
        task_options: Options for a named source, e.g. ``{"n": 50}`` for procedural (resume).
        limit: Only the first ``limit`` tasks (resume).
        timeout: Per-program wall-clock limit for the Verifier (resume).
        target: Verifier target (resume), passed only when set.
        fit: How completions become programs (resume): ``"fitted"`` (the default: code taken
            out of the model's text and fitted to the prompt) or ``"strict"`` (plain HumanEval:
            prompt + completion + test); see `qsandbox_env.Verifier`.
        agent_options: Options for the policy (device, batching, concurrency); may change.
    """

    agent: str
    tasks: str
    n: int = 1
    ks: tuple[int, ...] = (1,)
    params: SamplingParams = field(default_factory=SamplingParams)
    data: str | None = None
    task_options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    timeout: float = 60.0
    target: str | None = None
    agent_options: Mapping[str, Any] = field(default_factory=dict)
    fit: str = "fitted"

    def __post_init__(self) -> None:
        if self.fit not in FIT_POLICIES:
            raise ValueError(f"fit: expected one of {', '.join(FIT_POLICIES)}, got {self.fit!r}")
        for name in ("n", "limit"):
            value = getattr(self, name)
            if value is None and name == "limit":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if isinstance(self.timeout, bool) or not 0 < self.timeout < float("inf"):
            raise ValueError(f"timeout: expected positive seconds, got {self.timeout!r}")
        if not self.ks or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.ks
        ):
            raise ValueError(f"ks: expected positive ints such as (1, 5, 10), got {self.ks!r}")

    def identity(self, task_ids: Sequence[str]) -> dict[str, Any]:
        """What ``config.json`` records and a resumed run must match."""
        data = os.path.abspath(self.data) if self.data else None
        tasks = (
            self.tasks
            if self.tasks in SOURCES or not os.path.exists(self.tasks)
            else (os.path.abspath(self.tasks))
        )
        return {
            "agent": self.agent,
            "tasks": tasks,
            "data": data,
            "task_options": dict(self.task_options),
            "limit": self.limit,
            "n": self.n,
            "sampling": {**asdict(self.params), "stop": list(self.params.stop)},
            "timeout": self.timeout,
            "target": self.target,
            "fit": self.fit,
            "task_count": len(task_ids),
            "task_ids_sha256": hashlib.sha256("\n".join(task_ids).encode()).hexdigest(),
        }


# -- tasks and verifier -----------------------------------------------------------------------


def resolve_tasks(
    source: str,
    data: str | None = None,
    options: Mapping[str, Any] | None = None,
    limit: int | None = None,
) -> TaskSet:
    """Load the run's tasks: a named source (with ``path=data`` when given) or a task file.

    ``qiskit-humaneval`` and ``qiskit-humaneval-hard`` read the file named by ``data``.

    Raises:
        BenchError: Unknown source, missing ``data``, or a task file that does not load.
    """
    options = dict(options or {})
    try:
        if source in SOURCES:
            tasks = load_tasks(source, **options, **({"path": data} if data else {}))
        elif source in HUMANEVAL_SOURCES:
            if not data:
                raise BenchError(
                    f"--tasks {source} needs --data PATH: the Qiskit-HumanEval JSON file"
                )
            tasks = load_tasks(data, **options)
        elif data:
            raise BenchError(
                f"--data is for named sources ({', '.join(HUMANEVAL_SOURCES)}); "
                f"--tasks {source!r} is read as the task file itself"
            )
        else:
            tasks = load_tasks(source, **options)
    except (ValueError, TypeError, OSError) as error:
        raise BenchError(str(error)) from None
    if limit is not None:
        tasks = TaskSet(list(tasks.values())[:limit], source=tasks.source)
    if not len(tasks):
        raise BenchError(f"--tasks {source}: no tasks to run")
    return tasks


def build_verifier(
    workers: int | None = None,
    timeout: float = 60.0,
    target: str | None = None,
    ray: str | bool | None = None,
    budget: Any = None,
    fit: str = "fitted",
) -> Any:
    """The Verifier for a run: a local `Verifier`, or ``agents.rollout.RayVerifier`` when ``ray``
    is set (``True``: the session's cluster or a new local one; a string: that address), with
    ``workers`` actors of one sandbox each. ``target`` and the QPU ``budget`` (a
    ``qsandbox_env.Budget``, which Ray actors spend from together) are passed only when given;
    ``fit`` is the Verifier's answer-fitting policy.
    """
    options = _verifier_options(timeout, target, budget, fit)
    if ray:
        from agents.rollout import RayVerifier  # ray is imported only when asked for

        address = ray if isinstance(ray, str) else None
        try:
            return RayVerifier(address=address, actors=workers, **options)
        except (ImportError, ValueError, RuntimeError) as error:
            # No ray installed, a cluster too small, actors that would not start: say so plainly.
            raise BenchError(f"--ray: {error}") from None
    from qsandbox_env.verifier import Verifier

    try:
        return Verifier(parallelism=workers, **options)
    except (TypeError, ValueError) as error:  # a target that cannot take a budget, say
        raise BenchError(str(error)) from None


def build_rollout(
    config: BenchConfig, workers: int | None = None, ray: str | bool = True, budget: Any = None
) -> Callable[[TaskSet], Any]:
    """A function that starts an ``agents.rollout.RolloutPool`` for ``config``'s agent on Ray
    (``ray`` and ``budget`` as for `build_verifier`), with ``workers`` workers of one sandbox
    each; what `run_benchmark` takes as ``rollout``.
    """

    def build(tasks: TaskSet) -> Any:
        from agents.rollout import RolloutPool  # ray is imported only when asked for

        options = _verifier_options(config.timeout, config.target, budget, config.fit)
        try:
            return RolloutPool(
                config.agent,
                tasks,
                address=ray if isinstance(ray, str) else None,
                workers=workers,
                policy_options=dict(config.agent_options),
                **options,
            )
        except (ImportError, ValueError, RuntimeError) as error:
            raise BenchError(f"--ray: {error}") from None

    return build


def _verifier_options(
    timeout: float, target: str | None, budget: Any, fit: str = "fitted"
) -> dict[str, Any]:
    """Verifier keyword options for a run: ``target`` and ``budget`` only when given."""
    options: dict[str, Any] = {"timeout": timeout, "fit": fit}
    if target is not None:
        options["target"] = target
    if budget is not None:
        options["budget"] = budget
    return options


# -- append-only logs -------------------------------------------------------------------------


class JsonlLog:
    """An append-only JSON Lines file, one flushed line per record, safe across threads.

    `load` repairs a torn last line (a process killed mid-write) by cutting it off; any other
    malformed line is an error, because it means the file was edited.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: Any = None

    def load(self) -> list[dict[str, Any]]:
        """Every complete record, in file order."""
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as file:
                file.truncate(end)  # the torn tail of an interrupted write
        records = []
        for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise BenchError(
                    f"{self.path} line {number} is not valid JSON ({error}); the file was edited "
                    "or corrupted: fix or delete that line, or start a new --out directory"
                ) from None
            if not isinstance(record, dict):
                raise BenchError(f"{self.path} line {number}: expected a JSON object")
            records.append(record)
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _State:
    """What the run directory already holds."""

    samples: dict[tuple[str, int], str]
    results: dict[tuple[str, int], dict[str, Any]]


def run_benchmark(
    config: BenchConfig,
    out: str,
    *,
    tasks: TaskSet | None = None,
    policy: Policy | Callable[[], Policy] | None = None,
    verifier: VerifierLike | Callable[[], VerifierLike] | None = None,
    rollout: Callable[[TaskSet], RolloutLike] | None = None,
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
        workers: Verifier parallelism for the default verifier.
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
    config_path = os.path.join(out, CONFIG_FILE)
    resuming = _check_config(identity, config_path)
    if hasattr(verifier, "verify_many"):
        _check_fit(verifier, config)  # before anything is written
    samples_log = JsonlLog(os.path.join(out, SAMPLES_FILE))
    results_log = JsonlLog(os.path.join(out, RESULTS_FILE))
    state = _load_state(samples_log, results_log, tasks, config.n)
    missing = _missing_samples(tasks, state, config.n)
    # The policy before anything is written or started: a bad spec or a missing extra fails
    # here, leaving no run directory behind to conflict with the corrected command.
    generator = _resolve_policy(policy, config) if missing else None
    remote = None
    if rollout is not None and policy is None and generator is not None and generator.replicable:
        generator.close()  # built to check the spec here; the pool's workers build their own
        generator, remote = None, rollout
    if not resuming:
        os.makedirs(out, exist_ok=True)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        report.write_json({**identity, "created": created}, config_path)
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


def _check_config(identity: dict[str, Any], path: str) -> bool:
    """True when ``path`` holds this run's configuration; False when there is none yet.

    Raises:
        BenchError: It holds another configuration, or cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except FileNotFoundError:
        return False
    except (OSError, json.JSONDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}; delete it only if the run is empty")
    saved.pop("created", None)
    differences = [
        f"{key}: {saved.get(key)!r} in the saved run, {value!r} now"
        for key, value in identity.items()
        if saved.get(key) != value
    ]
    if differences:
        raise BenchError(
            f"{os.path.dirname(path) or '.'} holds a run with another configuration:\n  "
            + "\n  ".join(differences)
            + "\nresume it with the same options, or pass a new --out directory"
        )
    return True


def _load_state(samples_log: JsonlLog, results_log: JsonlLog, tasks: TaskSet, n: int) -> _State:
    samples: dict[tuple[str, int], str] = {}
    for record in samples_log.load():
        key = _key(record, tasks, n, samples_log.path)
        samples.setdefault(key, str(record.get("completion", "")))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for record in results_log.load():
        key = _key(record, tasks, n, results_log.path)
        if key in samples:  # a verdict whose sample line was torn off is made again
            results.setdefault(key, record)
    return _State(samples, results)


def _key(record: Mapping[str, Any], tasks: TaskSet, n: int, path: str) -> tuple[str, int]:
    task_id, sample = record.get("task_id"), record.get("sample")
    if (
        not isinstance(task_id, str)
        or task_id not in tasks
        or not isinstance(sample, int)
        or not 0 <= sample < n
    ):
        raise BenchError(
            f"{path}: record for task {task_id!r} sample {sample!r} does not belong to this run "
            f"({len(tasks)} tasks, n={n}); use a new --out directory"
        )
    return task_id, sample


@dataclass
class _Work:
    """What is left of a run, and the logs it goes into."""

    config: BenchConfig
    tasks: TaskSet
    state: _State
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
            pool = _VerifyPool(active, self, bar, width, batch)
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
        from agents.rollout import RolloutError

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
        record = _result_record(*key, verdict)
        self.results_log.append(record)
        self.state.results[key] = record
        bar.verified(record["passed"])

    def _groups_by_count(self) -> dict[int, list[str]]:
        """Tasks missing the same number of samples share generate calls (n is per call)."""
        by_count: dict[int, list[str]] = collections.defaultdict(list)
        for task_id, indexes in self.missing.items():
            by_count[len(indexes)].append(task_id)
        return by_count

    def _generate(self, policy: Policy, chunk: int, pool: _VerifyPool, bar: Progress) -> None:
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
    if verifier is None:
        return build_verifier(workers, config.timeout, config.target, fit=config.fit)
    built = verifier if hasattr(verifier, "verify_many") else verifier()
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


def _missing_samples(tasks: TaskSet, state: _State, n: int) -> dict[str, list[int]]:
    missing: dict[str, list[int]] = {}
    for task_id in tasks:
        indexes = [j for j in range(n) if (task_id, j) not in state.samples]
        if indexes:
            missing[task_id] = indexes
    return missing


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


class _VerifyPool:
    """``lanes`` threads that take samples off a queue, verify them in batches and log verdicts."""

    def __init__(self, verifier: Any, work: _Work, bar: Progress, lanes: int, batch: int) -> None:
        self._verifier, self._work, self._bar = verifier, work, bar
        self._batch = max(1, batch)
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._halt = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._lane, name=f"bench-verify-{i}", daemon=True)
            for i in range(max(1, lanes))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, keys: Sequence[tuple[str, int]]) -> None:
        self._raise_if_failed()
        for key in keys:
            self._queue.put(key)

    def stop(self, wait: bool, reraise: bool = True) -> None:
        """Let the lanes finish what is queued (``wait``) or only what they hold, then end.

        With ``reraise``, a lane's exception (a sandbox that would not start) is raised here.
        """
        if not wait:
            self._halt.set()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()
            if reraise:
                self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._errors:
            raise self._errors[0]

    def _lane(self) -> None:
        while not self._halt.is_set():
            keys = self._take()
            if not keys:
                return
            try:
                verdicts = self._verifier.verify_many(self._work.pairs(keys))
            except BaseException as error:  # noqa: BLE001 - handed to the main thread
                self._errors.append(error)
                self._halt.set()
                return
            for key, verdict in zip(keys, verdicts, strict=True):
                self._work.record_result(key, verdict, self._bar)

    def _take(self) -> list[tuple[str, int]]:
        first = self._queue.get()
        if first is None:
            return []
        keys = [first]
        while len(keys) < self._batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # another lane's stop signal: hand it back
                break
            keys.append(item)
        return keys


def _result_record(task_id: str, index: int, verdict: Any) -> dict[str, Any]:
    """The results line for a `Verdict`, a verdict dict, or a rollout trajectory."""
    if hasattr(verdict, "to_dict"):
        data = verdict.to_dict()
    elif isinstance(verdict, Mapping):
        data = dict(verdict)
    else:
        data = {name: getattr(verdict, name) for name in ("outcome", "detail", "error_type")}
        data["seconds"] = verdict.seconds
    detail = str(data.get("detail", ""))
    record = {
        "task_id": task_id,
        "sample": index,
        "outcome": str(data["outcome"]),
        "passed": str(data["outcome"]) == "passed",
        "error_type": str(data.get("error_type", "")),
        "detail": detail[-DETAIL_LIMIT:],
        "seconds": round(float(data.get("seconds", 0.0)), 4),
    }
    record["category"] = report.categorize(record)
    return record


# -- outputs ----------------------------------------------------------------------------------


def write_outputs(
    config: BenchConfig,
    out: str,
    tasks: TaskSet,
    results: Sequence[Mapping[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and the chart for a finished run; return the summary.

    Raises:
        BenchError: Some sample has no verdict (the run did not finish).
    """
    if len(results) < config.n * len(tasks):
        raise BenchError(
            f"{out}: {config.n * len(tasks) - len(results)} samples have no verdict yet; "
            "rerun the same command to finish the run"
        )
    info = {
        "agent": config.agent,
        "task_source": config.tasks if not config.data else f"{config.tasks} ({config.data})",
        "target": config.target or "default",
        "fit": config.fit,
        "sampling": {**asdict(config.params), "stop": list(config.params.stop)},
        "seconds_this_invocation": round(seconds, 2),
    }
    difficulties = {task_id: task.difficulty for task_id, task in tasks.items()}
    summary = report.build_summary(results, difficulties, config.n, config.ks, info)
    report.write_json(summary, os.path.join(out, SUMMARY_FILE))
    with open(os.path.join(out, REPORT_FILE), "w", encoding="utf-8") as file:
        file.write(report.render_markdown(summary))
    report.write_chart(summary, os.path.join(out, CHART_FILE))
    return summary
