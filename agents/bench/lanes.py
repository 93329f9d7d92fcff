"""The verification lanes of a run: threads that take samples off a queue, verify them in batches
and record each verdict as it comes.

Generation (the runner's thread) and verification (``lanes`` threads calling ``verify_many``)
overlap this way. The lanes never run a completion themselves: verdicts come from the verifier.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from qsandbox_env.progress import Progress
from qsandbox_env.tasks import Task

__all__ = ["VerifyLanes"]


class Recorder(Protocol):
    """Where the lanes read samples and record verdicts (the runner's state of the run)."""

    def pairs(self, keys: Sequence[tuple[str, int]]) -> list[tuple[Task, str]]: ...

    def record_result(self, key: tuple[str, int], verdict: Any, bar: Progress) -> None: ...


class VerifyLanes:
    """``lanes`` threads that take samples off a queue, verify them in batches and log verdicts."""

    def __init__(
        self, verifier: Any, work: Recorder, bar: Progress, lanes: int, batch: int
    ) -> None:
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
