"""A small progress line for long benchmark runs: counts, running pass rate, elapsed time, ETA.

On a terminal the line is redrawn in place (at most a few times a second); into a file or pipe a
full line is written every tenth of the way, so logs stay readable. It writes to stderr only, so
stdout carries nothing but the final summary. It never raises on a closed or broken stream.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    """``75`` → ``"01:15"``, ``3725`` → ``"1:02:05"``.

    Example:
        >>> format_seconds(75), format_seconds(3725)
        ('01:15', '1:02:05')
    """
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Counts verified samples (and passes) against a total; thread-safe.

    Args:
        total: Samples the run verifies in all.
        done: Already verified before this process started (a resumed run).
        passed: Passes among ``done``.
        made: Samples already generated (default ``done``).
        stream: Where to draw (default stderr); ``enabled=False`` draws nothing.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> bar = Progress(4, stream=out, interactive=False)
        >>> bar.generated(4); bar.verified(True); bar.verified(False); bar.close()
        >>> "2/4 verified" in out.getvalue() and "pass 50.0%" in out.getvalue()
        True
    """

    WIDTH = 24

    def __init__(
        self,
        total: int,
        *,
        done: int = 0,
        passed: int = 0,
        made: int | None = None,
        stream: TextIO | None = None,
        enabled: bool = True,
        interactive: bool | None = None,
        label: str = "bench",
    ) -> None:
        self.total, self.done, self.passed, self.label = total, done, passed, label
        self.made = done if made is None else made
        self._resumed = done
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._interactive = _is_tty(self._stream) if interactive is None else interactive
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._next_tenth = 1
        self._first: float | None = None
        self._last_text = ""
        self._lock = threading.Lock()
        self._draw(force=True)

    def generated(self, count: int) -> None:
        """``count`` more samples were generated (and wait for their verdicts)."""
        with self._lock:
            self.made += count
            self._draw()

    def verified(self, passed: bool) -> None:
        """One more sample has its verdict."""
        with self._lock:
            if self._first is None:
                self._first = time.monotonic()
            self.done += 1
            self.passed += bool(passed)
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line."""
        with self._lock:
            self._draw(force=True)
            if self._enabled and self._interactive:
                self._write("\n")
            self._enabled = False

    def line(self) -> str:
        """The current progress text."""
        total = max(1, self.total)
        filled = round(self.WIDTH * self.done / total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        rate = f"{100 * self.passed / self.done:.1f}%" if self.done else "-"
        elapsed = time.monotonic() - self._started
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} verified, {self.made} generated | "
            f"pass {rate} | {format_seconds(elapsed)}<{self._eta(elapsed)}"
        )

    def _eta(self, elapsed: float) -> str:
        # Measured from the first verdict: sandbox and model start-up are not a rate.
        new = self.done - self._resumed - 1
        if self._first is None or new <= 0:
            return "?"
        rate = (time.monotonic() - self._first) / new
        return format_seconds(rate * (self.total - self.done))

    def _draw(self, force: bool = False) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        if self._interactive:
            if force or now - self._last_draw >= 0.2:
                self._last_draw = now
                self._write("\r" + self.line() + "\x1b[K")
            return
        tenth = 10 * self.done // max(1, self.total)
        if force or tenth >= self._next_tenth:
            self._next_tenth = tenth + 1
            text = self.line()
            if text != self._last_text:
                self._last_text = text
                self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):  # closed or broken stream: progress is not worth a crash
            self._enabled = False


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
