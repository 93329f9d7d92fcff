"""MetricsLogger: one row of namespaced metrics per training step, to CSV and TensorBoard.

Names are namespaced like ``train/reward_mean``, ``losses/clip_fraction``, ``time/generation_s``.
The CSV has a fixed header (the columns given at construction), so every row lines up; a metric
not measured at a step (``eval/pass@1`` between evaluations) is an empty cell. Resuming appends to
the same file; when the file's header lacks some of the columns (a run started by an older
version, before a metric existed), the file is rewritten once with them added at the end, its
earlier rows keeping every value and an empty cell for each new column, so rows always line up.
This module must never compute metrics itself; it only writes what it is given.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MetricsLogger"]

TENSORBOARD_INSTALL = 'pip install "qsandbox[grpo]"  # or: pip install tensorboard'


class MetricsLogger:
    """Appends metric rows to ``<directory>/metrics.csv`` and, optionally, TensorBoard events.

    Args:
        directory: Where ``metrics.csv`` and ``tensorboard/`` go; created when missing.
        columns: Metric names, in CSV column order (``step`` comes first, added here).
        tensorboard: Also write TensorBoard event files under ``<directory>/tensorboard``.

    Raises:
        ImportError: ``tensorboard=True`` without the tensorboard package; the message holds the
            ``pip install`` command.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     with MetricsLogger(folder, ["train/reward_mean"], tensorboard=False) as log:
        ...         log.write(1, {"train/reward_mean": 0.5})
        ...     open(os.path.join(folder, "metrics.csv")).read().split()
        ['step,train/reward_mean', '1,0.5']
    """

    def __init__(self, directory: str, columns: Sequence[str], *, tensorboard: bool = True):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, "metrics.csv")
        self.columns = ["step", *columns]
        self._writer = _tensorboard_writer(os.path.join(directory, "tensorboard"), tensorboard)
        fresh = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        if not fresh:
            self.columns = _widen(self.path, self.columns)
        self._file = open(self.path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        if fresh:
            self._csv.writerow(self.columns)
            self._file.flush()

    def write(self, step: int, metrics: Mapping[str, float | None]) -> None:
        """Record ``metrics`` for ``step``; a value of None (not measured) leaves the cell empty.

        Raises:
            ValueError: A metric name that is not one of the columns.
        """
        unknown = sorted(set(metrics) - set(self.columns))
        if unknown:
            raise ValueError(f"metrics: expected names among the logger's columns, got {unknown}")
        self._csv.writerow([step, *(_cell(metrics.get(name)) for name in self.columns[1:])])
        self._file.flush()
        if self._writer is not None:
            for name, value in metrics.items():
                if value is not None and math.isfinite(value):
                    self._writer.add_scalar(name, value, step)
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the files."""
        if not self._file.closed:
            self._file.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _widen(path: str, columns: list[str]) -> list[str]:
    """The columns of the existing file at ``path`` with ``columns`` it lacks added at the end;
    the file is rewritten (atomically) when any were added."""
    with open(path, newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file))
    header = rows[0] if rows else []
    added = [name for name in columns if name not in header]
    if not added:
        return header
    merged = header + added
    temporary = path + ".tmp"
    with open(temporary, "w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        out.writerow(merged)
        for row in rows[1:]:
            out.writerow(row + [""] * (len(merged) - len(row)))
    os.replace(temporary, path)
    return merged


def _cell(value: float | None) -> Any:
    if value is None:
        return ""
    return round(value, 6) if isinstance(value, float) else value


def _tensorboard_writer(directory: str, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(
            f"TensorBoard logging needs tensorboard: {TENSORBOARD_INSTALL} "
            "(or turn it off with tensorboard=False / --no-tensorboard)"
        ) from error
    return SummaryWriter(log_dir=directory)
