"""Rejection sampling from a teacher, with the Verifier as the filter: `run_distill`.

For each task, up to ``n`` samples; each sample is one teacher reply, and with ``repair`` up to
that many further turns, each shown the execution feedback the multi-turn environment gives
(`qsandbox_env.prompts.feedback`). A sample ends when a turn passes (its reasoning and code are
the kept example) or its turns run out. A task stops being sampled once ``keep`` distinct
passing answers are in; the run stops asking the teacher once ``max_requests`` or
``max_tokens_total`` is reached (checked before each request: requests already in flight may
pass the token cap by their own length).

Requests run ``concurrency`` at a time (the teacher's option, as ``bench``), each turn verified
as soon as it arrives. Every turn is logged before the next begins; the training set, statistics
and report are rebuilt from the log whatever ends the run (`agents.distill.outputs`). This module
never runs an answer itself: verdicts come from the Verifier.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agents.bench.config import BenchError, resolve_tasks
from agents.bench.rundir import JsonlLog
from agents.distill import outputs
from agents.distill.config import DistillConfig, DistillError
from agents.distill.leakage import LeakageError, check_source
from agents.distill.prompting import normalized_code, split_answer
from agents.distill.rundir import (
    ATTEMPTS_FILE,
    SampleState,
    check_config,
    sample_states,
    write_config,
)
from agents.distill.teacher import Reply, Teacher, make_teacher
from agents.policy import PolicyError
from qsandbox_env.progress import Progress
from qsandbox_env.prompts import feedback
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Outcome, Verdict

__all__ = ["NO_CODE", "NO_CODE_FEEDBACK", "run_distill"]

NO_CODE = "no_code"  # the outcome of a reply with nothing to run
NO_CODE_FEEDBACK = (
    "Your answer held no code. Answer again: the reasoning, then the complete solution in one "
    "```python fenced block."
)
DETAIL_LIMIT = 2000  # characters of a verdict's detail logged (the tail), as bench does


def run_distill(
    config: DistillConfig,
    out: str,
    *,
    teacher: Teacher | None = None,
    verifier: Any = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or continue) distillation into ``out``; return the statistics (``stats.json``).

    Args:
        config: The run.
        out: The run directory; rerunning the same configuration into it continues the run.
        teacher: A `Teacher` (default: built from ``config.teacher`` and
            ``config.teacher_options``); one given is not closed.
        verifier: Anything with ``verify_many`` (default: a `qsandbox_env.Verifier` with
            ``workers`` sandboxes on ``config.target``); one given is not closed.
        workers: Sandboxes of the default verifier (default: the CPU count).
        progress: Draw a progress line on stderr.

    Raises:
        DistillError: Bad tasks, a benchmark source without ``allow_benchmark_tasks``, another
            run in ``out``, an unreachable teacher, or a teacher that never returned code. The
            outputs are written first: nothing already kept is lost.
    """
    tasks = _tasks(config)
    identity = config.identity(list(tasks))
    if not check_config(identity, out):
        write_config(identity, out)
    log = JsonlLog(os.path.join(out, ATTEMPTS_FILE))
    try:
        states = sample_states(log.load(), tasks, config.n, log.path)
    except BenchError as error:  # a malformed line in the middle of the log
        raise DistillError(str(error)) from None
    own_teacher, own_verifier = teacher is None, verifier is None
    started = time.perf_counter()
    run = None
    try:
        teacher = teacher or _teacher(config)
        verifier = verifier or _verifier(config, workers)
        run = _Run(config, tasks, states, log, teacher, verifier, progress)
        run.start()
    finally:
        log.close()
        stopped = run.stopped if run else ""
        stats = outputs.write_outputs(config, out, tasks, log.load(), stopped, _elapsed(started))
        if own_teacher and teacher is not None:
            teacher.close()
        if own_verifier and verifier is not None:
            verifier.close()
    if run.error is not None:
        raise DistillError(f"{run.error}\n(kept so far: {stats['kept']}, in {out})")
    if stats["turns"] and not stats["turns_with_code"]:
        raise DistillError(
            f"the teacher returned no code in {stats['turns']} replies; check the model and the "
            f"prompt template (see {os.path.join(out, ATTEMPTS_FILE)})"
        )
    return stats


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 2)


def _tasks(config: DistillConfig) -> TaskSet:
    try:
        check_source(config.tasks, allow=config.allow_benchmark_tasks)
        tasks = resolve_tasks(config.tasks, config.data, config.task_options, config.limit)
        check_source(config.tasks, tasks, config.allow_benchmark_tasks)
    except (BenchError, LeakageError) as error:
        raise DistillError(str(error)) from None
    return tasks


def _teacher(config: DistillConfig) -> Teacher:
    try:
        return make_teacher(config.teacher, **config.teacher_options)
    except (ValueError, TypeError, PolicyError) as error:
        raise DistillError(str(error)) from None


def _verifier(config: DistillConfig, workers: int | None) -> Any:
    from qsandbox_env.verifier import Verifier

    options: dict[str, Any] = {"timeout": config.timeout, "fit": config.fit}
    if config.target:
        options["target"] = config.target
    try:
        return Verifier(workers=workers, **options)
    except (TypeError, ValueError) as error:
        raise DistillError(str(error)) from None


class _Run:
    """The samples left to make, the spending so far, and the threads that make them."""

    def __init__(
        self,
        config: DistillConfig,
        tasks: TaskSet,
        states: dict[tuple[str, int], SampleState],
        log: JsonlLog,
        teacher: Teacher,
        verifier: Any,
        progress: bool,
    ) -> None:
        self.config, self.tasks, self.states, self.log = config, tasks, states, log
        self.teacher, self.verifier = teacher, verifier
        self.lock = threading.Lock()
        self.stopped = ""
        self.error: BaseException | None = None
        turns = [turn for state in states.values() for turn in state.turns]
        self.requests = len(turns)
        self.tokens = sum(int(t["prompt_tokens"]) + int(t["completion_tokens"]) for t in turns)
        self.kept: dict[str, set[str]] = {task_id: set() for task_id in tasks}
        for (task_id, _), state in states.items():
            for turn in state.turns:
                if turn.get("passed"):
                    self.kept[task_id].add(normalized_code(turn.get("code", "")))
        finished = [s for s in states.values() if s.finished(config.repair)]
        self.bar = _KeptProgress(
            config.n * len(tasks),
            done=len(finished),
            passed=sum(any(t.get("passed") for t in s.turns) for s in finished),
            made=None,
            enabled=progress,
            label="distill",
        )

    def start(self) -> None:
        pending = [
            (task, sample)
            for task in self.tasks.values()
            for sample in range(self.config.n)
            if not self.states.get((task.task_id, sample), SampleState()).finished(
                self.config.repair
            )
        ]
        concurrency = int(self.config.teacher_options.get("concurrency", 8))
        try:
            with ThreadPoolExecutor(concurrency, thread_name_prefix="distill") as pool:
                futures = [pool.submit(self._sample, *item) for item in pending]
                try:
                    for future in futures:
                        future.result()
                except BaseException:  # Ctrl-C, a sandbox that failed: stop asking, then end
                    with self.lock:
                        self.stopped = self.stopped or "interrupted"
                    for future in futures:
                        future.cancel()
                    raise
        finally:
            self.bar.close()

    def _sample(self, task: Task, sample: int) -> None:
        state = self.states.setdefault((task.task_id, sample), SampleState())
        while not state.finished(self.config.repair):
            if not self._may_ask(task, sample, state):
                return
            try:
                messages = self._messages(task, state)
                reply = self.teacher.chat(task, messages, 1, self.config.params)[0]
            except PolicyError as error:
                with self.lock:
                    self.error = self.error or error
                    self.stopped = self.stopped or "teacher error"
                return
            record = self._turn(task, sample, len(state.turns), reply)
            self.log.append(record)
            state.turns.append(record)
            with self.lock:
                self.tokens += reply.tokens
                if record["passed"]:
                    self.kept[task.task_id].add(normalized_code(record["code"]))
        self.bar.verified(any(t.get("passed") for t in state.turns))

    def _may_ask(self, task: Task, sample: int, state: SampleState) -> bool:
        """Reserve one request, unless the run stopped or the task has enough answers."""
        with self.lock:
            if self.error is not None or self.stopped:
                return False
            if self.config.keep is not None and len(self.kept[task.task_id]) >= self.config.keep:
                self.bar.total -= 1  # not needed: the task has its answers
                return False
            caps = self.config
            if caps.max_requests is not None and self.requests >= caps.max_requests:
                self.stopped = f"max_requests ({caps.max_requests}) reached"
                return False
            if caps.max_tokens_total is not None and self.tokens >= caps.max_tokens_total:
                self.stopped = f"max_tokens_total ({caps.max_tokens_total}) reached"
                return False
            self.requests += 1
            if not state.turns:
                self.bar.generated(1)
            return True

    def _messages(self, task: Task, state: SampleState) -> list[dict[str, str]]:
        messages = self.config.template.messages(task, self.config.target)
        for turn in state.turns:
            messages.append({"role": "assistant", "content": turn["content"]})
            messages.append({"role": "user", "content": repair_feedback(turn)})
        return messages

    def _turn(self, task: Task, sample: int, turn: int, reply: Reply) -> dict[str, Any]:
        answer = split_answer(reply.content, reply.reasoning, task)
        if answer.has_code:
            verdict = self.verifier.verify_many([(task, answer.code)])[0]
            outcome, detail = str(verdict.outcome), verdict.detail
            error_type, seconds = verdict.error_type, verdict.seconds
        else:
            outcome, detail, error_type, seconds = NO_CODE, "", "", 0.0
        return {
            "task_id": task.task_id,
            "sample": sample,
            "turn": turn,
            "content": reply.content,
            "reasoning_content": reply.reasoning,
            "reasoning": answer.reasoning,
            "code": answer.code,
            "outcome": outcome,
            "passed": outcome == Outcome.PASSED.value,
            "error_type": error_type,
            "detail": detail[-DETAIL_LIMIT:],
            "seconds": round(float(seconds), 4),
            "finish_reason": reply.finish_reason,
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
        }


class _KeptProgress(Progress):
    """``bench``'s progress bar, worded for distillation: samples tried and answers kept."""

    def postfix(self) -> str:
        rate = f"{100 * self.passed / self.done:.1f}%" if self.done else "-"
        return f"{self.passed} kept ({rate})"


def repair_feedback(turn: dict[str, Any]) -> str:
    """What a failed turn is told before the next: the environment's feedback for its verdict."""
    if turn["outcome"] == NO_CODE:
        return NO_CODE_FEEDBACK
    verdict = Verdict(turn["task_id"], Outcome(turn["outcome"]), turn.get("detail", ""))
    return feedback(verdict)
