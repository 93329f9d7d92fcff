"""Keeping the benchmark out of the training set.

`check_source` refuses Qiskit-HumanEval (normal or hard, by name, hub id, or a file whose task ids
are the benchmark's) as a distillation source unless the caller allows it explicitly: training on
the benchmark's prompts makes its pass@k meaningless. `similarity_report` measures what got in
anyway: for each kept example, the highest Jaccard similarity of word 3-shingles to any
benchmark prompt found locally (files named by the caller and ``$QSANDBOX_HUMANEVAL``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BENCHMARK_SOURCES",
    "LeakageError",
    "Similarity",
    "benchmark_files",
    "check_source",
    "shingles",
    "similarity_report",
]

BENCHMARK_SOURCES = ("qiskit-humaneval", "qiskit-humaneval-hard")
BENCHMARK_ID_PREFIXES = ("qiskitHumanEval/", "qiskitHumanEvalHard/")
ENV_VAR = "QSANDBOX_HUMANEVAL"
TOP = 5  # most similar pairs listed in the report
_WORD = re.compile(r"\w+")


class LeakageError(ValueError):
    """A benchmark was given as a training source without ``--allow-benchmark-tasks``."""


def check_source(source: str, task_ids: Iterable[str] = (), allow: bool = False) -> None:
    """Refuse a benchmark as a training source: call it with the source's name before loading
    it (no download of a refused set), then with its task ids.

    Raises:
        LeakageError: ``source`` names Qiskit-HumanEval (a named source, a hub id or file whose
            name says humaneval) or ``task_ids`` holds the benchmark's, and ``allow`` is False.
    """
    if allow:
        return
    named = source in BENCHMARK_SOURCES or "humaneval" in os.path.basename(source).lower()
    ids = [task_id for task_id in task_ids if task_id.startswith(BENCHMARK_ID_PREFIXES)]
    if named or ids:
        why = f"{source!r} is" if named else f"task {ids[0]!r} is from"
        raise LeakageError(
            f"--tasks: {why} Qiskit-HumanEval, the benchmark; distilling on it leaks the test "
            "set into training and makes its pass@k meaningless. Use procedural or bundled tasks "
            "or your own task file, or pass --allow-benchmark-tasks if that is really what you "
            "want"
        )


def shingles(text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    """The set of ``size`` consecutive lower-cased words of ``text``.

    Example:
        >>> sorted(shingles("Prepare the Bell state"))
        [('prepare', 'the', 'bell'), ('the', 'bell', 'state')]
    """
    words = _WORD.findall(text.lower())
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass(frozen=True)
class Similarity:
    """One kept example and the benchmark prompt most like it."""

    task_id: str
    benchmark_id: str
    jaccard: float


def benchmark_files(paths: Sequence[str] = ()) -> list[str]:
    """The benchmark files to compare with: ``paths`` and ``$QSANDBOX_HUMANEVAL``, those that
    exist."""
    candidates = [*paths, os.environ.get(ENV_VAR, "")]
    return list(dict.fromkeys(p for p in candidates if p and os.path.isfile(p)))


def similarity_report(
    examples: Iterable[Mapping[str, Any]], paths: Sequence[str] = ()
) -> dict[str, Any]:
    """How close the kept examples come to a benchmark prompt found locally.

    Args:
        examples: Kept records (``task_id`` and chat ``messages``).
        paths: Benchmark task files (HumanEval schema); ``$QSANDBOX_HUMANEVAL`` is added.

    Returns:
        ``{"files": [...], "benchmark_prompts": N, "max_jaccard": x | None, "top": [...]}``.
    """
    from qsandbox_env import load_tasks

    files = benchmark_files(paths)
    prompts: dict[str, frozenset] = {}
    for path in files:
        for task in load_tasks(path).values():
            prompts[task.task_id] = shingles(task.prompt)
    best: list[Similarity] = []
    for record in examples:
        mine = shingles(_user_text(record))
        scores = ((_jaccard(mine, theirs), bench_id) for bench_id, theirs in prompts.items())
        score, bench_id = max(scores, default=(0.0, ""))
        if bench_id:
            best.append(Similarity(str(record.get("task_id")), bench_id, round(score, 4)))
    best.sort(key=lambda item: -item.jaccard)
    return {
        "files": files,
        "benchmark_prompts": len(prompts),
        "max_jaccard": best[0].jaccard if best else None,
        "top": [vars(item) for item in best[:TOP]],
    }


def _user_text(record: Mapping[str, Any]) -> str:
    messages = record.get("messages") or []
    return "\n".join(m.get("content", "") for m in messages if m.get("role") == "user")


def _jaccard(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)
