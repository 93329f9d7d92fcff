"""Rollouts: `RolloutWorker` runs episodes of `QiskitCodeEnv` with a policy and returns
`Trajectory` records (prompt, completion, reward, verdict fields, token log-probs when the policy
gives them).

A worker is usable directly in one process, and as a Ray actor in an `agents.ray.pool.RolloutPool`.
It never runs a completion itself: every step goes through the environment's `Verifier`, in the
worker's own sandbox.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agents.policy import Policy, Query, SamplingParams, make_policy
from agents.ray.actors import describe_actor, verify_items
from agents.ray.options import checked_verifier_options, positive_int
from agents.ray.wire import task_from_wire
from qsandbox_env.env import QiskitCodeEnv
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import TaskSet
from qsandbox_env.verifier import Outcome, Verifier

__all__ = ["PolicyLike", "RolloutWorker", "Trajectory", "check_policy_like", "task_set"]


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
    share this worker's one `Verifier` (``sandboxes_per_worker`` sandboxes); completions of one
    batch are checked in parallel.

    Args:
        tasks: A `TaskSet`, a task source for `load_tasks`, or a sequence of tasks as plain data
            (`task_to_wire`).
        policy: A spec for `make_policy` (``"openai:model@url"``, ``"hf:path"``, ...), a `Policy`,
            or a function returning one.
        max_attempts: Attempts per episode; above 1 the policy sees the execution feedback of a
            failed attempt and answers again (the environment's repair mode).
        policy_options: Keyword options for `make_policy` when ``policy`` is a spec.
        **verifier_kwargs: Options of the worker's `Verifier` (its ``workers`` is the pool's
            ``sandboxes_per_worker``).

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
        self.tasks = task_set(tasks)
        self.max_attempts = positive_int(max_attempts, "max_attempts")
        workers = verifier_kwargs.pop("workers", None)  # its Verifier's, from the pool
        options = checked_verifier_options(verifier_kwargs, "RolloutWorker", workers)
        self.policy = _build_policy(policy, policy_options or {})
        self.verifier = Verifier(**options)
        self._free_envs: queue.SimpleQueue[QiskitCodeEnv] = queue.SimpleQueue()
        self._steps = ThreadPoolExecutor(options["workers"], thread_name_prefix="rollout")

    def ready(self) -> dict[str, Any]:
        return {**describe_actor(self.verifier.isolation), "policy": self.policy.name}

    def run(
        self, task_ids: Sequence[str], n: int = 1, params: SamplingParams | None = None
    ) -> list[Trajectory]:
        """``n`` episodes per task; trajectories ordered by task, then sample, then attempt."""
        positive_int(n, "n")
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
        return verify_items(self.verifier, request["items"], request.get("timeout"))

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


def task_set(tasks: TaskSet | str | Sequence[dict[str, Any]]) -> TaskSet:
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


def check_policy_like(policy: object) -> None:
    if not (isinstance(policy, (str, Policy)) or callable(policy)):
        raise TypeError(
            "policy: expected a spec such as 'openai:model@url' or 'hf:path', a Policy, or a "
            f"function returning one, got {policy!r:.80}"
        )


def _build_policy(policy: PolicyLike, options: dict[str, Any]) -> Policy:
    check_policy_like(policy)
    if isinstance(policy, str):
        return make_policy(policy, **options)
    if isinstance(policy, Policy):
        return policy
    built = policy()
    if not isinstance(built, Policy):
        raise TypeError(f"policy factory: expected it to return a Policy, got {built!r:.80}")
    return built
