"""The distillation run directory: its files, the attempt log, and what a continued run finds.

- ``config.json``: `agents.distill.config.DistillConfig.identity`; a rerun must match it.
- ``attempts.jsonl``: one line per teacher turn (``task_id``, ``sample``, ``turn``, the reply,
  its reasoning, the code, the verdict), appended and flushed line by line
  (`agents.bench.rundir.JsonlLog`, torn last lines repaired as ``bench`` does).
- ``train.jsonl``, ``stats.json``, ``report.md``: rebuilt from the attempts at the end of every
  invocation (`agents.distill.outputs`), so an interrupted run loses no kept example.

A sample is finished when one of its turns passed or it used its last repair turn; a continued
run resumes an unfinished sample at its next turn, with the conversation rebuilt from the log.
This module never rewrites or deletes a line of the log except a torn last one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.bench.report import write_json
from agents.bench.rundir import config_differences
from agents.distill.config import DistillError

__all__ = [
    "ATTEMPTS_FILE",
    "CONFIG_FILE",
    "REPORT_FILE",
    "STATS_FILE",
    "TRAIN_FILE",
    "SampleState",
    "check_config",
    "sample_states",
    "write_config",
]

CONFIG_FILE, ATTEMPTS_FILE = "config.json", "attempts.jsonl"
TRAIN_FILE, STATS_FILE, REPORT_FILE = "train.jsonl", "stats.json", "report.md"


@dataclass
class SampleState:
    """One sample's turns so far, in order."""

    turns: list[dict[str, Any]] = field(default_factory=list)

    def finished(self, repair: int) -> bool:
        return any(t.get("passed") for t in self.turns) or len(self.turns) > repair


def write_config(identity: Mapping[str, Any], out: str) -> None:
    """Create the run directory and its ``config.json``."""
    os.makedirs(out, exist_ok=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json({**identity, "created": created}, os.path.join(out, CONFIG_FILE))


def check_config(identity: Mapping[str, Any], out: str) -> bool:
    """True when ``out`` holds this run; False when it holds none yet.

    Raises:
        DistillError: It holds a run with another configuration (the message lists the fields).
    """
    path = os.path.join(out, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
    except FileNotFoundError:
        return False
    except (OSError, json.JSONDecodeError) as error:
        raise DistillError(f"cannot read {path}: {error}; use a new --out directory") from None
    differences = config_differences(saved, identity)
    if differences:
        raise DistillError(
            f"{out} holds a distillation run with another configuration:\n  "
            + "\n  ".join(differences)
            + "\ncontinue it with the same options, or pass a new --out directory"
        )
    return True


def sample_states(
    records: Iterable[Mapping[str, Any]], task_ids: Iterable[str], n: int, path: str
) -> dict[tuple[str, int], SampleState]:
    """Each logged sample's turns, checked against the run's tasks and ``n``.

    Raises:
        DistillError: A line that does not belong to this run, or turns out of order.
    """
    known = set(task_ids)
    states: dict[tuple[str, int], SampleState] = {}
    for record in records:
        task_id, sample, turn = record.get("task_id"), record.get("sample"), record.get("turn")
        if task_id not in known or not isinstance(sample, int) or not 0 <= sample < n:
            raise DistillError(
                f"{path}: a line for task {task_id!r} sample {sample!r} does not belong to this "
                f"run ({len(known)} tasks, n={n}); use a new --out directory"
            )
        state = states.setdefault((str(task_id), sample), SampleState())
        if turn != len(state.turns):
            raise DistillError(
                f"{path}: task {task_id!r} sample {sample} has turn {turn!r} where turn "
                f"{len(state.turns)} was expected; the file was edited: use a new --out directory"
            )
        state.turns.append(dict(record))
    return states
