"""Progress on long work (benchmarks, verification, distillation, training), drawn by tqdm.

A bar on stderr with the counts that matter (verified of total, generated, running pass rate),
elapsed time and tqdm's estimate of what is left. It draws only on a terminal: into a file or a
pipe it writes nothing, so logs and ``2> log`` stay clean, and stdout carries only results. It
never raises on a closed or broken stream.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Counts verified items (and passes) against a total; thread-safe.

    Args:
        total: Items the run verifies in all.
        done: Already verified before this process started (a resumed run): the estimate of
            what is left is measured on new work only.
        passed: Passes among ``done``.
        made: Items already generated (default ``done``); ``None`` hides the count, for work
            with no generation step.
        stream: Where to draw (default stderr).
        enabled: ``False`` draws nothing.
        interactive: Draw even though ``stream`` is not a terminal (default: only on one).
        label: The bar's name.
        unit: What is counted.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = Progress(4, stream=out, interactive=True, label="verify")
        >>> bar.generated(4); bar.verified(True); bar.verified(False); bar.close()
        >>> drawn = out.getvalue()
        >>> "verify" in drawn and "2/4" in drawn and "pass 50.0%" in drawn
        True
        >>> quiet = io.StringIO()
        >>> Progress(4, stream=quiet).close(); quiet.getvalue()   # not a terminal: nothing
        ''
    """

    def __init__(
        self,
        total: int,
        *,
        done: int = 0,
        passed: int = 0,
        made: int | None = 0,
        stream: TextIO | None = None,
        enabled: bool = True,
        interactive: bool | None = None,
        label: str = "bench",
        unit: str = "sample",
    ) -> None:
        self.total, self.done, self.passed, self.label = total, done, passed, label
        self.made = None if made is None else max(made, done)
        stream = stream if stream is not None else sys.stderr
        shown = enabled and (_is_tty(stream) if interactive is None else interactive)
        self._lock = threading.Lock()
        options = {
            "total": total,
            "initial": done,
            "desc": label,
            "unit": unit,
            "file": stream,
            "dynamic_ncols": True,
            "mininterval": 0.2,
            "smoothing": 0.1,
            "leave": True,
        }
        try:
            self._bar = _tqdm(disable=not shown, **options)
        except (OSError, ValueError):  # the stream broke at the first draw
            self._bar = _tqdm(disable=True, **options)
        self._refresh()

    def generated(self, count: int) -> None:
        """``count`` more items were generated (and wait for their verdicts)."""
        with self._lock:
            self.made = (self.made or 0) + count
            self._refresh()

    def verified(self, passed: bool) -> None:
        """One more item has its verdict."""
        with self._lock:
            self.done += 1
            self.passed += bool(passed)
            self._refresh()
            self._safely(self._bar.update, 1)

    def write(self, text: str) -> None:
        """Print a line of results to stdout without breaking the bar (drawn again below it)."""
        with self._lock:
            if self._bar.disable:
                print(text)
            else:
                self._safely(self._bar.write, text, file=sys.stdout)

    def close(self) -> None:
        """Draw the final state and end the line."""
        with self._lock:
            self._safely(self._bar.close)

    def postfix(self) -> str:
        """The counts after the bar: generated, and the running pass rate."""
        rate = f"{100 * self.passed / self.done:.1f}%" if self.done else "-"
        made = f"{self.made} generated, " if self.made is not None else ""
        return f"{made}pass {rate}"

    def _refresh(self) -> None:
        self._safely(self._bar.set_postfix_str, self.postfix(), refresh=False)

    def _safely(self, call: Any, *args: Any, **kwargs: Any) -> None:
        try:
            call(*args, **kwargs)
        except (OSError, ValueError):  # closed or broken stream: progress is not worth a crash
            self._bar.disable = True


def _tqdm(**options: Any) -> Any:
    from tqdm.std import tqdm

    return tqdm(**options)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
