"""The charts of a benchmark run: ``passk.png`` and ``bench compare --chart``.

Every bar carries its value, a 0% bar is drawn as a line of its colour, the legend sits clear of
the bars, and the run's target, timeout, answer fitting and library versions are written under
the title. matplotlib comes with ``qiskit[visualization]``; it is imported when a chart is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from agents.bench.report import difficulty_order

__all__ = ["chart_figure", "compare_figure", "write_chart", "write_compare_chart"]


def write_chart(summary: Mapping[str, Any], path: str) -> None:
    """A PNG with pass@k per difficulty (left) and outcome categories (right).

    Every bar carries its value (a 0% bar shows "0%" on the axis, so an all-failing run does
    not look like an empty panel); the legend sits under the axes, clear of the bars; the run's
    target, timeout, answer fitting and library versions are written under the title.

    Raises:
        ImportError: matplotlib is missing (it comes with ``qiskit[visualization]``).
    """
    plt = _pyplot()
    figure = chart_figure(summary)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def chart_figure(summary: Mapping[str, Any]) -> Any:
    """The matplotlib figure `write_chart` saves (for a notebook, or to draw further on)."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5.0))
    groups = {"all": summary["pass_at_k"]}
    groups.update({d: g["pass_at_k"] for d, g in summary["by_difficulty"].items()})
    ks = list(summary["pass_at_k"])
    width = 0.8 / max(1, len(ks))
    for index, k in enumerate(ks):
        xs = [i + index * width for i in range(len(groups))]
        values = [100 * g[k] if k in g else math.nan for g in groups.values()]
        _label(left, left.bar(xs, values, width, label=f"pass@{k}"), values, 8)
    left.set_xticks([i + width * (len(ks) - 1) / 2 for i in range(len(groups))], list(groups))
    left.set_ylim(0, 112)  # room above a 100% bar for its label
    left.set_yticks(range(0, 101, 20))
    left.set_ylabel("%")
    left.set_title("pass@k by difficulty")
    if ks:
        left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(ks), frameon=False)
    else:
        why = "; ".join(summary.get("not_reported", {}).values()) or "no k requested"
        left.text(0.5, 0.5, f"pass@k not reported:\n{why}", ha="center", transform=left.transAxes)
    shown = {c: v for c, v in summary["categories"].items() if v}
    if shown:
        bars = right.barh(list(shown)[::-1], list(shown.values())[::-1], color="tab:gray")
        right.bar_label(bars, padding=3, fontsize=8)
        right.set_xlim(0, max(shown.values()) * 1.18)
    else:
        right.text(0.5, 0.5, "no samples", ha="center", transform=right.transAxes)
    right.set_title("outcomes (samples)")
    figure.suptitle(f"{summary.get('agent', '?')} on {summary.get('task_source', '?')}")
    figure.text(0.5, 0.9, _run_line(summary), ha="center", fontsize=8, color="dimgray")
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def write_compare_chart(summaries: Mapping[str, Mapping[str, Any]], path: str) -> None:
    """A PNG of several runs side by side: pass@k overall and per difficulty, one bar per run."""
    plt = _pyplot()
    figure = compare_figure(summaries)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def compare_figure(summaries: Mapping[str, Mapping[str, Any]]) -> Any:
    """The matplotlib figure `write_compare_chart` saves: a panel per k, a bar per run."""
    plt = _pyplot()
    ks = sorted({k for s in summaries.values() for k in s["pass_at_k"]}, key=int)
    names_seen = {d: None for s in summaries.values() for d in s["by_difficulty"]}
    groups = ["all"] + [d for d, _ in sorted(names_seen.items(), key=difficulty_order)]
    panels = max(1, len(ks))
    figure, axes = plt.subplots(1, panels, figsize=(max(6.0, 4.5 * panels), 4.8), squeeze=False)
    width = 0.8 / max(1, len(summaries))
    for axis, k in zip(axes[0], ks or ["1"], strict=False):
        for index, (name, summary) in enumerate(summaries.items()):
            values = [
                100 * _group_pass(summary, group, k)
                if _group_pass(summary, group, k) is not None
                else math.nan
                for group in groups
            ]
            xs = [i + index * width for i in range(len(groups))]
            _label(axis, axis.bar(xs, values, width, label=name), values, 7)
        axis.set_xticks([i + width * (len(summaries) - 1) / 2 for i in range(len(groups))], groups)
        axis.set_ylim(0, 112)
        axis.set_yticks(range(0, 101, 20))
        axis.set_title(f"pass@{k}")
        axis.set_ylabel("%")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), frameon=False)
    figure.suptitle("runs compared")
    figure.tight_layout(rect=(0, 0.1, 1, 0.95))
    return figure


def _group_pass(summary: Mapping[str, Any], group: str, k: str) -> float | None:
    values = (
        summary["pass_at_k"]
        if group == "all"
        else (summary["by_difficulty"].get(group, {}).get("pass_at_k", {}))
    )
    return values.get(k)


def _label(axis: Any, bars: Any, values: Sequence[float], fontsize: int) -> None:
    """Write each bar's value over it; a 0% bar is drawn as a line of its colour on the axis."""
    axis.bar_label(bars, labels=[_bar_text(v) for v in values], padding=2, fontsize=fontsize)
    for bar, value in zip(bars, values, strict=True):
        if value == 0:
            bar.set_edgecolor(bar.get_facecolor())
            bar.set_linewidth(2.5)


def _bar_text(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.0f}%" if value in (0, 100) or value >= 10 else f"{value:.1f}%"


def _run_line(summary: Mapping[str, Any]) -> str:
    parts = [f"target {summary.get('target', 'default')}"]
    if summary.get("timeout") is not None:
        parts.append(f"timeout {summary['timeout']:g} s")
    parts.append(f"fit {summary.get('fit', 'fitted')}")
    parts += [f"{name} {version}" for name, version in summary.get("versions", {}).items()]
    return " · ".join(parts)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window, whatever the user's backend
    import matplotlib.pyplot as plt

    return plt
