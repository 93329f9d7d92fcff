"""VerificationPipeline: a step's completions verified chunk by chunk, while the next chunk
generates.

The trainer hands each generation chunk's ``(task, completion)`` pairs to `submit` as soon as
they are decoded. A thread of this pipeline passes them to ``verifier.verify_many``, so the
programs run on the verifier's workers (a `Verifier`'s sandboxes, a Ray verifier's actors) while
the trainer's thread goes on generating; `finish` then waits only for what is still running and
returns every verdict in submission order. The same object, built with ``background=False``,
verifies each submission on the caller's thread: the sequential mode, kept for comparison.

With a verdict cache (``GRPOConfig.reuse_verdicts``) each distinct ``(task id, completion)`` is
verified once: a pair already cached, or already submitted by an earlier chunk of this step, is
not sent again. Verdicts that came back stay in the cache even when the step fails.

Nothing here outlives the ``with`` block: leaving it, on success or on an error, waits for every
submitted call to return and stops the threads. This module never runs a completion itself.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from agents.verifying import VerifierLike
from qsandbox_env.tasks import Task
from qsandbox_env.verifier import Verdict

__all__ = ["VerdictCache", "VerificationPipeline", "busy_seconds"]

VerdictCache = dict[tuple[str, str], Verdict]  # (task id, completion text) -> verdict
# Verification calls of one step in flight at once. Chunk calls queue on the verifier's own
# workers (a Verifier's pool, a Ray verifier's lock), so more threads would only wait there.
MAX_CALLS_IN_FLIGHT = 64


class VerificationPipeline:
    """Verifies submitted chunks in the background; `finish` returns all verdicts in order.

    Args:
        verifier: Anything with ``verify_many`` (`agents.verifying.VerifierLike`).
        cache: The run's verdict cache, or None to verify every pair (no reuse).
        background: False verifies each submission on the caller's thread, at once.

    Example (``pairs_1`` and ``pairs_2`` are lists of ``(task, completion)``)::

        with VerificationPipeline(verifier, None) as pipeline:
            pipeline.submit(pairs_1)  # returns at once; verification runs meanwhile
            pipeline.submit(pairs_2)
            verdicts = pipeline.finish()  # len(pairs_1) + len(pairs_2), in order
    """

    def __init__(
        self, verifier: VerifierLike, cache: VerdictCache | None, *, background: bool = True
    ) -> None:
        self.verifier = verifier
        self.cache = cache
        self.intervals: list[tuple[float, float]] = []  # (start, end) of each verify_many call
        self._keys: list[tuple[str, str]] = []  # every submitted pair, in order
        self._calls: list[tuple[list[tuple[str, str]], Future[list[Verdict]]]] = []
        self._in_flight: set[tuple[str, str]] = set()
        self._executor = (
            ThreadPoolExecutor(MAX_CALLS_IN_FLIGHT, thread_name_prefix="grpo-verify")
            if background
            else None
        )

    def __enter__(self) -> VerificationPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, pairs: Sequence[tuple[Task, str]]) -> None:
        """Start verifying ``pairs`` (one chunk); their verdicts follow the earlier chunks'.

        Raises:
            Exception: What an earlier chunk's ``verify_many`` raised, so that generation stops
                as soon as verification has failed.
        """
        self._raise_failed_call()
        keys = [(task.task_id, text) for task, text in pairs]
        self._keys.extend(keys)
        if self.cache is None:
            self._start(keys, list(pairs))
            return
        by_key = {(task.task_id, text): (task, text) for task, text in pairs}
        missing = [
            key
            for key in dict.fromkeys(keys)
            if key not in self.cache and key not in self._in_flight
        ]
        if missing:
            self._in_flight.update(missing)
            self._start(missing, [by_key[key] for key in missing])

    def finish(self) -> list[Verdict]:
        """Wait for every call still running; the verdicts of all submitted pairs, in order.

        Raises:
            Exception: The first error a ``verify_many`` call raised (the others are waited for,
                and their verdicts cached).
        """
        self.close()
        self._raise_failed_call()
        if self.cache is None:
            return [verdict for _, call in self._calls for verdict in call.result()]
        return [self.cache[key] for key in self._keys]

    def close(self) -> None:
        """Wait for the calls in flight and stop the threads; cache what came back. Idempotent."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self.cache is None:
            return
        for keys, call in self._calls:
            if call.exception() is None:
                self.cache.update(zip(keys, call.result(), strict=True))

    def busy_seconds(self, start: float | None = None, end: float | None = None) -> float:
        """Seconds (``time.perf_counter``) during which some verification ran, counted once
        however many calls overlapped; only within ``[start, end]`` when given."""
        return busy_seconds(self.intervals, start, end)

    # -- internals --------------------------------------------------------------------------

    def _start(self, keys: list[tuple[str, str]], pairs: list[tuple[Task, str]]) -> None:
        if self._executor is None:
            call: Future[list[Verdict]] = Future()
            try:
                call.set_result(self._timed_verify(pairs))
            except Exception as error:  # noqa: BLE001 - raised by finish, after the rest
                call.set_exception(error)
        else:
            call = self._executor.submit(self._timed_verify, pairs)
        self._calls.append((keys, call))

    def _timed_verify(self, pairs: list[tuple[Task, str]]) -> list[Verdict]:
        started = time.perf_counter()
        try:
            verdicts = list(self.verifier.verify_many(pairs))
        finally:
            self.intervals.append((started, time.perf_counter()))
        if len(verdicts) != len(pairs):
            raise RuntimeError(f"verify_many: expected {len(pairs)} verdicts, got {len(verdicts)}")
        return verdicts

    def _raise_failed_call(self) -> None:
        for _, call in self._calls:
            if call.done() and call.exception() is not None:
                raise call.exception()  # type: ignore[misc]


def busy_seconds(
    intervals: Sequence[tuple[float, float]], start: float | None = None, end: float | None = None
) -> float:
    """Length of the union of ``intervals``, clipped to ``[start, end]`` when given.

    Example:
        >>> busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)])
        4.0
        >>> busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)], 2.5, 5.5)
        1.0
    """
    low = float("-inf") if start is None else start
    high = float("inf") if end is None else end
    total, reached = 0.0, low
    for begin, finish in sorted(intervals):
        begin, finish = max(begin, reached), min(finish, high)
        if finish > begin:
            total += finish - begin
            reached = finish
    return total
