"""``qsandbox verify``: run sample completions against their tasks, one result line per sample.

::

    qsandbox verify --tasks tasks.jsonl --samples samples.jsonl --out results.jsonl

A samples file is JSON Lines of ``{"task_id": ..., "completion": ...}``; the answer may also be
under another harness's name (`COMPLETION_FIELDS`), as text or chat messages. Every line is read
and checked before a sandbox starts; results are written chunk by chunk, in input order, each the
sample's own fields plus its verdict. The exit code is 0 whatever the pass rate.

This module only reads, checks and writes files; completions run only through the Verifier.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from qsandbox_env.cli.registry import PROG, CLIError, Command, register
from qsandbox_env.cli.verifying import (
    add_verifier_options,
    load_task_file,
    open_output,
    outcome_counts,
    result_record,
    verify_in_chunks,
)
from qsandbox_env.extract import completion_text
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Verdict

__all__ = ["COMPLETION_FIELDS", "Sample", "read_samples"]


# Where evaluation harnesses put a sample's answer, in the order they are looked for: HumanEval's
# `completion`, then the names other harnesses use. Each holds text or a list of chat messages.
COMPLETION_FIELDS = ("completion", "solution", "generation", "response", "messages")


@dataclass(frozen=True)
class Sample:
    """One line of a samples file: its fields (kept in the result line), its task, and the text
    of its answer (a chat reply's last assistant message)."""

    fields: dict[str, Any]
    task: Task
    completion: str


def _configure_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", required=True, metavar="FILE", help="task file (JSON/JSONL)")
    parser.add_argument(
        "--samples",
        required=True,
        metavar="SAMPLES.jsonl",
        help=(
            'JSON Lines of {"task_id": ..., "completion": ...}; the answer may also be in '
            "solution, generation, response or messages, as text or chat messages; other "
            "fields are copied over"
        ),
    )
    parser.add_argument(
        "--out", metavar="RESULTS.jsonl", help="where result lines go (default: stdout)"
    )
    add_verifier_options(parser)


def _run_verify(args: argparse.Namespace) -> int:
    tasks = load_task_file(args.tasks)
    samples = read_samples(args.samples, tasks)
    started = time.monotonic()
    out = open_output(args.out) if args.out else sys.stdout
    try:
        verdicts = _write_results(args, samples, out)
    finally:
        if out is not sys.stdout:
            out.close()
    _print_verify_summary(verdicts, time.monotonic() - started)
    return 0


def read_samples(path: str, tasks: TaskSet) -> list[Sample]:
    """Read and validate a whole samples file; raise `CLIError` naming the first bad line."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            lines = file.read().split("\n")
    except FileNotFoundError:
        raise CLIError(f"samples file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CLIError(f"cannot read samples file {path}: {error}") from None
    samples = [
        _parse_sample(line, tasks, f"{path} line {number}")
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]
    if not samples:
        raise CLIError(f"{path}: no samples; expected JSON Lines of task_id and completion")
    return samples


def _parse_sample(line: str, tasks: TaskSet, where: str) -> Sample:
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as error:
        raise CLIError(f"{where}: invalid JSON at column {error.colno}: {error.msg}") from None
    if not isinstance(fields, dict):
        raise CLIError(f"{where}: expected a JSON object with task_id and completion")
    if "task_id" not in fields:
        raise CLIError(f"{where}: field 'task_id' is missing")
    if not isinstance(fields["task_id"], str):
        kind = type(fields["task_id"]).__name__
        raise CLIError(f"{where}: field 'task_id' must be a string, got {kind}")
    try:
        task = tasks.get_task(fields["task_id"])
    except ValueError as error:
        raise CLIError(f"{where}: {error}") from None
    return Sample(fields, task, _completion_of(fields, where))


def _completion_of(fields: dict[str, Any], where: str) -> str:
    """The answer's text: the first of `COMPLETION_FIELDS` present, text or chat messages."""
    name = next((name for name in COMPLETION_FIELDS if name in fields), None)
    if name is None:
        raise CLIError(
            f"{where}: no answer found; expected a field among "
            f"{', '.join(COMPLETION_FIELDS)} (text or a list of chat messages), got fields "
            f"{', '.join(sorted(fields))}"
        )
    value = fields[name]
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        try:
            return completion_text(value)
        except (TypeError, ValueError) as error:
            raise CLIError(f"{where}: field {name!r}: {error}") from None
    raise CLIError(
        f"{where}: field {name!r} must be a string or a list of chat messages, "
        f"got {type(value).__name__}"
    )


def _write_results(
    args: argparse.Namespace, samples: Sequence[Sample], out: IO[str]
) -> list[Verdict]:
    pairs = [(sample.task, sample.completion) for sample in samples]
    verdicts: list[Verdict] = []
    for chunk in verify_in_chunks(args, pairs):
        done = len(verdicts)
        for sample, verdict in zip(samples[done : done + len(chunk)], chunk, strict=True):
            record = {**sample.fields, **result_record(verdict)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
        verdicts.extend(chunk)
    return verdicts


def _print_verify_summary(verdicts: Sequence[Verdict], seconds: float) -> None:
    total = len(verdicts)
    passed = sum(verdict.passed for verdict in verdicts)
    print(
        f"{PROG}: verified {total} sample{'s' * (total != 1)} in {seconds:.1f} s: "
        f"{passed} passed ({passed / total:.1%})",
        file=sys.stderr,
    )
    print(f"{PROG}: outcomes: {outcome_counts(verdicts)}", file=sys.stderr)


register(
    Command(
        "verify",
        "run sample completions against their tasks and write one result line per sample",
        _configure_verify,
        _run_verify,
    )
)
