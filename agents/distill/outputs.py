"""What a distillation run leaves: the training set, its statistics and a readable report.

`write_outputs` rebuilds all three from the attempt log:

- ``train.jsonl``: one kept example per line: ``messages`` (the environment's system prompt and
  task, then the assistant's reasoning and one fenced code block), ``task_id``, ``source``,
  ``teacher``, ``difficulty``, ``sample``, ``turn`` (0 unless a repair fixed it), ``outcome``,
  ``passed``, ``seconds``, ``target``, ``reasoning_chars``. It loads with
  ``datasets.load_dataset("json", data_files=...)`` and TRL's ``SFTTrainer`` takes it as it is.
- ``stats.json`` and ``report.md``: kept rates per task and per difficulty, outcome counts,
  tokens, reasoning lengths, duplicates dropped, and the benchmark similarity check.

Exact duplicates (the same code) and near duplicates (the same code once normalised,
`agents.distill.prompting.normalized_code`) of an answer already kept for the task are dropped;
so are passing answers beyond ``keep`` per task.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from agents.bench.report import write_json
from agents.distill.config import DistillConfig
from agents.distill.leakage import similarity_report
from agents.distill.prompting import Answer, normalized_code, training_messages
from agents.distill.rundir import REPORT_FILE, STATS_FILE, TRAIN_FILE
from qsandbox_env.tasks import TaskSet

__all__ = ["kept_examples", "render_report", "write_outputs"]


def kept_examples(
    config: DistillConfig, tasks: TaskSet, attempts: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The training records, in task then sample order, and the counts of what was dropped
    (``exact``, ``near``, ``over_keep``)."""
    passing = sorted(
        (r for r in attempts if r.get("passed")),
        key=lambda r: (_order(tasks)[r["task_id"]], r["sample"], r["turn"]),
    )
    seen_code: dict[str, set[str]] = {}
    seen_normal: dict[str, set[str]] = {}
    dropped: Counter[str] = Counter()
    kept: list[dict[str, Any]] = []
    for record in passing:
        task_id, code = record["task_id"], record["code"]
        codes = seen_code.setdefault(task_id, set())
        normals = seen_normal.setdefault(task_id, set())
        normal = normalized_code(code)
        if code in codes:
            dropped["exact"] += 1
        elif normal in normals:
            dropped["near"] += 1
        elif config.keep is not None and len(codes) >= config.keep:
            dropped["over_keep"] += 1
        else:
            codes.add(code)
            normals.add(normal)
            kept.append(_example(config, tasks, record))
    return kept, dropped


def _order(tasks: TaskSet) -> dict[str, int]:
    return {task_id: i for i, task_id in enumerate(tasks)}


def _example(config: DistillConfig, tasks: TaskSet, record: Mapping[str, Any]) -> dict[str, Any]:
    task = tasks[record["task_id"]]
    answer = Answer(record["reasoning"], record["code"], True)
    return {
        "messages": training_messages(task, answer),
        "task_id": task.task_id,
        "source": str(tasks.source),
        "teacher": config.teacher,
        "difficulty": task.difficulty,
        "sample": record["sample"],
        "turn": record["turn"],
        "outcome": record["outcome"],
        "passed": True,
        "seconds": record.get("seconds", 0.0),
        "target": config.target or "aer",
        "reasoning_chars": len(record["reasoning"]),
    }


def write_outputs(
    config: DistillConfig,
    out: str,
    tasks: TaskSet,
    attempts: Sequence[Mapping[str, Any]],
    stopped: str = "",
    seconds: float = 0.0,
) -> dict[str, Any]:
    """Write ``train.jsonl``, ``stats.json`` and ``report.md`` into ``out``; return the stats."""
    kept, dropped = kept_examples(config, tasks, attempts)
    partial = os.path.join(out, TRAIN_FILE + ".partial")
    with open(partial, "w", encoding="utf-8") as file:
        for example in kept:
            file.write(json.dumps(example, ensure_ascii=False) + "\n")
    os.replace(partial, os.path.join(out, TRAIN_FILE))
    stats = build_stats(config, tasks, attempts, kept, dropped)
    stats["stopped"] = stopped
    stats["seconds_this_invocation"] = seconds
    write_json(stats, os.path.join(out, STATS_FILE))
    with open(os.path.join(out, REPORT_FILE), "w", encoding="utf-8") as file:
        file.write(render_report(stats))
    return stats


def build_stats(
    config: DistillConfig,
    tasks: TaskSet,
    attempts: Sequence[Mapping[str, Any]],
    kept: Sequence[Mapping[str, Any]],
    dropped: Counter[str],
) -> dict[str, Any]:
    """The numbers ``stats.json`` holds (see the module docstring)."""
    samples = {(r["task_id"], r["sample"]) for r in attempts}
    per_task: dict[str, dict[str, Any]] = {
        task_id: {"difficulty": task.difficulty, "samples": 0, "passed": 0, "kept": 0}
        for task_id, task in tasks.items()
    }
    for task_id, _ in samples:
        per_task[task_id]["samples"] += 1
    for task_id, _ in {(r["task_id"], r["sample"]) for r in attempts if r.get("passed")}:
        per_task[task_id]["passed"] += 1
    for example in kept:
        per_task[example["task_id"]]["kept"] += 1
    for row in per_task.values():
        row["kept_rate"] = _rate(row["kept"], row["samples"])
    lengths = [example["reasoning_chars"] for example in kept]
    return {
        "teacher": config.teacher,
        "tasks_source": config.tasks,
        "target": config.target or "aer",
        "tasks": len(tasks),
        "samples": len(samples),
        "turns": len(attempts),
        "turns_with_code": sum(1 for r in attempts if r.get("code")),
        "passed_samples": sum(row["passed"] for row in per_task.values()),
        "kept": len(kept),
        "kept_after_repair": sum(1 for example in kept if example["turn"] > 0),
        "kept_rate": _rate(len(kept), len(samples)),
        "duplicates_dropped": {"exact": dropped["exact"], "near": dropped["near"]},
        "over_keep_dropped": dropped["over_keep"],
        "outcomes": dict(Counter(str(r["outcome"]) for r in attempts).most_common()),
        "tokens": {
            "requests": len(attempts),
            "prompt": sum(int(r.get("prompt_tokens", 0)) for r in attempts),
            "completion": sum(int(r.get("completion_tokens", 0)) for r in attempts),
        },
        "reasoning_chars": {
            "mean": round(statistics.fmean(lengths), 1) if lengths else 0,
            "median": statistics.median(lengths) if lengths else 0,
            "min": min(lengths, default=0),
            "max": max(lengths, default=0),
            "without_reasoning": sum(1 for length in lengths if length == 0),
        },
        "by_difficulty": _by_difficulty(per_task),
        "by_task": per_task,
        "benchmark_similarity": similarity_report(kept, config.benchmark_files),
    }


def _by_difficulty(per_task: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    groups: dict[str, dict[str, Any]] = {}
    for row in per_task.values():
        group = groups.setdefault(row["difficulty"], {"tasks": 0, "samples": 0, "kept": 0})
        group["tasks"] += 1
        group["samples"] += row["samples"]
        group["kept"] += row["kept"]
    for group in groups.values():
        group["kept_rate"] = _rate(group["kept"], group["samples"])
    return dict(sorted(groups.items()))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def render_report(stats: Mapping[str, Any]) -> str:
    """``report.md``: the statistics as a short Markdown page."""
    tokens, reasoning = stats["tokens"], stats["reasoning_chars"]
    lines = [
        "# Distillation report",
        "",
        f"Teacher `{stats['teacher']}` on `{stats['tasks_source']}` ({stats['tasks']} tasks), "
        f"verified on `{stats['target']}`.",
        "",
        f"- kept **{stats['kept']}** of {stats['samples']} samples "
        f"({100 * stats['kept_rate']:.1f}%), {stats['kept_after_repair']} after a repair turn",
        f"- duplicates dropped: {stats['duplicates_dropped']['exact']} exact, "
        f"{stats['duplicates_dropped']['near']} near; beyond the per-task limit: "
        f"{stats['over_keep_dropped']}",
        f"- teacher: {tokens['requests']} requests, {tokens['prompt']} prompt + "
        f"{tokens['completion']} completion tokens",
        f"- reasoning length of kept examples (characters): mean {reasoning['mean']}, "
        f"median {reasoning['median']}, {reasoning['without_reasoning']} without reasoning",
    ]
    if stats.get("stopped"):
        lines.append(f"- stopped early: {stats['stopped']} (raise the cap and rerun to continue)")
    lines += ["", "## Outcomes of every turn", "", "| outcome | turns |", "|---|---:|"]
    lines += [f"| {name} | {count} |" for name, count in stats["outcomes"].items()]
    lines += ["", "## By difficulty", "", "| difficulty | tasks | samples | kept | rate |"]
    lines.append("|---|---:|---:|---:|---:|")
    for name, group in stats["by_difficulty"].items():
        lines.append(
            f"| {name} | {group['tasks']} | {group['samples']} | {group['kept']} | "
            f"{100 * group['kept_rate']:.1f}% |"
        )
    lines += ["", "## By task", "", "| task | difficulty | samples | passed | kept |"]
    lines.append("|---|---|---:|---:|---:|")
    for task_id, row in stats["by_task"].items():
        lines.append(
            f"| {task_id} | {row['difficulty']} | {row['samples']} | {row['passed']} | "
            f"{row['kept']} |"
        )
    lines += ["", *_similarity_lines(stats["benchmark_similarity"]), ""]
    return "\n".join(lines)


def _similarity_lines(similarity: Mapping[str, Any]) -> list[str]:
    lines = ["## Benchmark leakage check", ""]
    if not similarity["files"]:
        return [
            *lines,
            "No benchmark file found locally: pass `--benchmark-file PATH` (or set "
            "`QSANDBOX_HUMANEVAL`) to compare the kept prompts with Qiskit-HumanEval's.",
        ]
    lines.append(
        f"Highest word 3-shingle Jaccard similarity of a kept example's prompt to any of "
        f"{similarity['benchmark_prompts']} benchmark prompts ({', '.join(similarity['files'])}): "
        f"**{similarity['max_jaccard']}**."
    )
    if similarity["top"]:
        lines += ["", "| kept task | benchmark task | Jaccard |", "|---|---|---:|"]
        lines += [
            f"| {row['task_id']} | {row['benchmark_id']} | {row['jaccard']} |"
            for row in similarity["top"]
        ]
    return lines
