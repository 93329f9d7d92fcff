"""The run directory: its files, the append-only logs, what a resumed run finds there, the outputs.

A run lives in one directory:

- ``config.json``: what the run is (`agents.bench.config.BenchConfig.identity`). A rerun into the
  same directory must match it, else `BenchError` says which fields differ.
- ``samples.jsonl``: one line per generation (``task_id``, ``sample``, ``completion``), every one
  kept, appended and flushed line by line.
- ``results.jsonl``: one line per verdict (``task_id``, ``sample``, ``outcome``, ``category``, ...).
- ``summary.json``, ``report.md``, ``passk.png``: written by `write_outputs` (through
  `agents.bench.report`) at the end.

Resuming reads both logs and drops a torn last line (a kill mid-write). This module never rewrites
or deletes a line of a log except a torn, unterminated last one.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agents.bench import charts, report
from agents.bench.config import BenchConfig, BenchError
from qsandbox_env.tasks import TaskSet

__all__ = [
    "CHART_FILE",
    "CONFIG_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SAMPLES_FILE",
    "SUMMARY_FILE",
    "JsonlLog",
    "RunState",
    "check_config",
    "load_state",
    "missing_samples",
    "result_record",
    "write_config",
    "write_outputs",
]

DETAIL_LIMIT = 2000  # characters of a verdict's detail kept per result line (the tail)
CONFIG_FILE, SAMPLES_FILE, RESULTS_FILE = "config.json", "samples.jsonl", "results.jsonl"
SUMMARY_FILE, REPORT_FILE, CHART_FILE = "summary.json", "report.md", "passk.png"


class JsonlLog:
    """An append-only JSON Lines file, one flushed line per record, safe across threads.

    `load` repairs a torn last line (a process killed mid-write) by cutting it off; any other
    malformed line is an error, because it means the file was edited.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: Any = None

    def load(self) -> list[dict[str, Any]]:
        """Every complete record, in file order."""
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as file:
                file.truncate(end)  # the torn tail of an interrupted write
        records = []
        for number, line in enumerate(data[:end].split(b"\n")[:-1], start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise BenchError(
                    f"{self.path} line {number} is not valid JSON ({error}); the file was edited "
                    "or corrupted: fix or delete that line, or start a new --out directory"
                ) from None
            if not isinstance(record, dict):
                raise BenchError(f"{self.path} line {number}: expected a JSON object")
            records.append(record)
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


@dataclass
class RunState:
    """What the run directory already holds."""

    samples: dict[tuple[str, int], str]
    results: dict[tuple[str, int], dict[str, Any]]


def write_config(identity: dict[str, Any], out: str) -> None:
    """Create the run directory and its ``config.json`` (``identity`` and when it was created)."""
    os.makedirs(out, exist_ok=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    report.write_json({**identity, "created": created}, os.path.join(out, CONFIG_FILE))


def check_config(identity: dict[str, Any], path: str) -> bool:
    """True when ``path`` holds this run's configuration; False when there is none yet.

    Raises:
        BenchError: It holds another configuration, or cannot be read.
    """
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except FileNotFoundError:
        return False
    except (OSError, json.JSONDecodeError) as error:
        raise BenchError(f"cannot read {path}: {error}; delete it only if the run is empty")
    saved.pop("created", None)
    differences = config_differences(saved, identity)
    if differences:
        raise BenchError(
            f"{os.path.dirname(path) or '.'} holds a run with another configuration:\n  "
            + "\n  ".join(differences)
            + "\nresume it with the same options, or pass a new --out directory"
        )
    return True


def config_differences(saved: Mapping[str, Any], identity: Mapping[str, Any]) -> list[str]:
    """Each key whose value in a saved run's configuration differs from this run's, worded."""
    return [
        f"{key}: {saved.get(key)!r} in the saved run, {value!r} now"
        for key, value in identity.items()
        if saved.get(key) != value
    ]


def load_state(samples_log: JsonlLog, results_log: JsonlLog, tasks: TaskSet, n: int) -> RunState:
    samples: dict[tuple[str, int], str] = {}
    for record in samples_log.load():
        key = _key(record, tasks, n, samples_log.path)
        samples.setdefault(key, str(record.get("completion", "")))
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for record in results_log.load():
        key = _key(record, tasks, n, results_log.path)
        if key in samples:  # a verdict whose sample line was torn off is made again
            results.setdefault(key, record)
    return RunState(samples, results)


def _key(record: Mapping[str, Any], tasks: TaskSet, n: int, path: str) -> tuple[str, int]:
    task_id, sample = record.get("task_id"), record.get("sample")
    if (
        not isinstance(task_id, str)
        or task_id not in tasks
        or not isinstance(sample, int)
        or not 0 <= sample < n
    ):
        raise BenchError(
            f"{path}: record for task {task_id!r} sample {sample!r} does not belong to this run "
            f"({len(tasks)} tasks, n={n}); use a new --out directory"
        )
    return task_id, sample


def missing_samples(tasks: TaskSet, state: RunState, n: int) -> dict[str, list[int]]:
    missing: dict[str, list[int]] = {}
    for task_id in tasks:
        indexes = [j for j in range(n) if (task_id, j) not in state.samples]
        if indexes:
            missing[task_id] = indexes
    return missing


def result_record(task_id: str, index: int, verdict: Any) -> dict[str, Any]:
    """The results line for a `Verdict`, a verdict dict, or a rollout trajectory."""
    if hasattr(verdict, "to_dict"):
        data = verdict.to_dict()
    elif isinstance(verdict, Mapping):
        data = dict(verdict)
    else:
        data = {name: getattr(verdict, name) for name in ("outcome", "detail", "error_type")}
        data["seconds"] = verdict.seconds
    detail = str(data.get("detail", ""))
    record = {
        "task_id": task_id,
        "sample": index,
        "outcome": str(data["outcome"]),
        "passed": str(data["outcome"]) == "passed",
        "error_type": str(data.get("error_type", "")),
        "detail": detail[-DETAIL_LIMIT:],
        "seconds": round(float(data.get("seconds", 0.0)), 4),
    }
    record["category"] = report.categorize(record)
    return record


def write_outputs(
    config: BenchConfig,
    out: str,
    tasks: TaskSet,
    results: Sequence[Mapping[str, Any]],
    seconds: float,
) -> dict[str, Any]:
    """Write ``summary.json``, ``report.md`` and the chart for a finished run; return the summary.

    Raises:
        BenchError: Some sample has no verdict (the run did not finish).
    """
    if len(results) < config.n * len(tasks):
        raise BenchError(
            f"{out}: {config.n * len(tasks) - len(results)} samples have no verdict yet; "
            "rerun the same command to finish the run"
        )
    info = {
        "agent": config.agent,
        "task_source": config.tasks if not config.data else f"{config.tasks} ({config.data})",
        "target": config.target or "default",
        "fit": config.fit,
        "timeout": config.timeout,
        "versions": report.library_versions(),
        "sampling": {**asdict(config.params), "stop": list(config.params.stop)},
        "seconds_this_invocation": round(seconds, 2),
    }
    difficulties = {task_id: task.difficulty for task_id, task in tasks.items()}
    summary = report.build_summary(results, difficulties, config.n, config.ks, info)
    report.write_json(summary, os.path.join(out, SUMMARY_FILE))
    with open(os.path.join(out, REPORT_FILE), "w", encoding="utf-8") as file:
        file.write(report.render_markdown(summary))
    charts.write_chart(summary, os.path.join(out, CHART_FILE))
    return summary
