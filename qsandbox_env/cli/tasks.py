"""``qsandbox tasks list|show|check|fetch SOURCE``: look at a task source from a shell.

SOURCE is anything `qsandbox_env.sources.load_tasks` takes: ``bundled``, ``procedural``,
``qiskit-humaneval``, ``qiskit-humaneval-hard``, a task file, or a hub id. Source options
(``--n``, ``--seed``, ``--family``, ``--difficulty`` for ``procedural``; ``--path`` for the
Qiskit-HumanEval sources; ``--split`` for hub datasets) are passed to the loader only when given,
so a source that does not take one says so.

- ``list`` prints one line per task: id, difficulty, format and a one-line summary (the first line
  of the entry point's docstring when the prompt has one, else the prompt's first line);
  ``--jsonl`` prints the tasks as task-file records instead, to save a generated set.
- ``show SOURCE ID`` prints one task whole: its fields, prompt, test and canonical solution.
- ``fetch qiskit-humaneval[-hard]`` downloads the data set's file from its official repository
  at the commit this project measured, checked (see `qsandbox_env.fetch`).
- ``check`` runs every canonical solution through the Verifier and reports the ones that do not
  pass (exit code 1 if any). ``qsandbox check-tasks FILE``, its older spelling, still works: it
  warns on stderr that it is deprecated, then does the same.

This module only loads and prints tasks. It must never run a task's code itself (``check`` goes
through the Verifier, via `check_canonical_solutions`), nor start a sandbox before the source has
loaded.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from qsandbox_env.cli.registry import PROG, CLIError, Command, register
from qsandbox_env.cli.verifying import (
    add_verifier_options,
    load_task_file,
    open_output,
    outcome_counts,
    positive_int,
    result_record,
    verify_in_chunks,
)
from qsandbox_env.fetch import BASE_URL, DATASETS, MEASURED_REF, FetchError, fetch
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Verdict

__all__ = ["check_canonical_solutions", "task_record", "task_summary"]

SUMMARY_WIDTH = 72  # characters of summary per line of ``list``
_DOCSTRING_START = re.compile(r"^[ \t]+[rRuU]?(?:\"\"\"|''')[ \t]*(.*)$", re.MULTILINE)


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="one line per task: id, difficulty, format, summary")
    _add_source(listing)
    listing.add_argument(
        "--jsonl", action="store_true", help="print task-file records (JSON Lines) instead"
    )
    listing.set_defaults(action=_run_list)

    show = actions.add_parser("show", help="print one task whole: prompt, test, canonical solution")
    _add_source(show)
    show.add_argument("task_id", metavar="ID", help="the task's id")
    show.set_defaults(action=_run_show)

    check = actions.add_parser(
        "check", help="run every canonical solution through the Verifier and report failures"
    )
    _add_source(check)
    check.add_argument(
        "--json", metavar="PATH", help="also write a JSON report (per-task verdicts) to PATH"
    )
    add_verifier_options(check)
    check.epilog = "exit code: 0 if every canonical solution passed, 1 otherwise"
    check.set_defaults(action=_run_check)

    fetch = actions.add_parser(
        "fetch",
        help="download qiskit-humaneval[-hard] from its official repository, checked",
    )
    fetch.add_argument("source", metavar="SOURCE", choices=sorted(DATASETS), help="which set")
    fetch.add_argument("--out", metavar="FILE", help="where to write it (default: its file name)")
    fetch.add_argument(
        "--ref",
        default=MEASURED_REF,
        help=f"the repository commit, tag or branch (default: {MEASURED_REF}, the measured one)",
    )
    fetch.add_argument("--base-url", default=BASE_URL, help=argparse.SUPPRESS)
    fetch.set_defaults(action=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    try:
        got = fetch(args.source, args.out, ref=args.ref, base_url=args.base_url)
    except FetchError as error:
        raise CLIError(f"tasks fetch: {error}") from None
    where = "already there" if got.already_there else "wrote"
    print(f"{where} {got.path}: {got.tasks} tasks, SHA-256 {got.sha256}")
    if got.verified:
        print(f"matches the version this project's results were measured on ({args.ref})")
    else:
        print(f"no checksum is pinned for {args.source} at {args.ref}: keep this one to compare")
    print(f"use it with: --path {got.path} (qsandbox tasks, load_tasks(..., path=...))")
    return 0


def _add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="bundled, procedural, qiskit-humaneval[-hard], a task file or a hub id (owner/name)",
    )
    options = parser.add_argument_group("source options (passed to the loader when given)")
    options.add_argument("--n", type=positive_int, metavar="N", help="procedural: task count")
    options.add_argument("--seed", type=int, metavar="S", help="procedural: generator seed")
    options.add_argument(
        "--family",
        action="append",
        dest="families",
        metavar="NAME",
        help="procedural: a task family (repeat for several; default: all)",
    )
    options.add_argument(
        "--difficulty", metavar="LEVEL", help="procedural: basic, intermediate or difficult"
    )
    options.add_argument("--path", metavar="FILE", help="qiskit-humaneval[-hard]: a local copy")
    options.add_argument("--split", metavar="NAME", help="hub datasets: the split to read")


def _run(args: argparse.Namespace) -> int:
    action: Callable[[argparse.Namespace], int] = args.action
    try:
        return action(args)
    except BrokenPipeError:
        # The reader stopped early (`qsandbox tasks list ... | head`): not an error. Point stdout
        # at /dev/null so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _load(args: argparse.Namespace) -> TaskSet:
    names = ("n", "seed", "families", "difficulty", "path", "split")
    options = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        return load_tasks(args.source, **options)
    except TypeError as error:
        # A loader refusing a keyword: an option this source does not take.
        raise CLIError(f"{args.source}: {error}") from None
    except (ValueError, OSError, ImportError) as error:
        raise CLIError(str(error)) from None


# -- list -------------------------------------------------------------------------------------


def _run_list(args: argparse.Namespace) -> int:
    tasks = _load(args)
    if args.jsonl:
        for task in tasks.values():
            print(json.dumps(task_record(task), ensure_ascii=False))
        return 0
    tasks_list = list(tasks.values())
    if tasks_list:
        id_width = max(len(task.task_id) for task in tasks_list)
        difficulty_width = max(len(task.difficulty) for task in tasks_list)
        for task in tasks_list:
            print(
                f"{task.task_id:<{id_width}}  {task.difficulty:<{difficulty_width}}  "
                f"{task.format:<10}  {task_summary(task)}"
            )
    print(f"{len(tasks_list)} task{'s' * (len(tasks_list) != 1)} from {tasks.source}")
    return 0


def task_summary(task: Task, width: int = SUMMARY_WIDTH) -> str:
    """One line saying what ``task`` asks: its docstring's first line, else its prompt's.

    Example:
        >>> quotes = '"' * 3
        >>> prompt = f"import x\\ndef f():\\n    {quotes}Add one.{quotes}\\n"
        >>> task_summary(Task("t/0", prompt, "def check(c):\\n    pass\\n", "f"))
        'Add one.'
    """
    docstring = _DOCSTRING_START.search(task.prompt)
    first = docstring.group(1) if docstring else ""
    if first.endswith(('"""', "'''")):
        first = first[:-3]
    if not first.strip():
        first = next((line for line in task.prompt.splitlines() if line.strip()), "")
    first = first.strip()
    return first if len(first) <= width else first[: width - 1] + "…"


def task_record(task: Task) -> dict[str, Any]:
    """``task`` as a task-file record: `qsandbox_env.taskfile.load_file` reads it back unchanged.

    Example:
        >>> task = Task("t/0", "def f():\\n", "def check(c):\\n    pass\\n", "f")
        >>> sorted(task_record(task))
        ['canonical_solution', 'difficulty', 'entry_point', 'format', 'prompt', 'task_id', 'test']
    """
    record: dict[str, Any] = {
        "task_id": task.task_id,
        "prompt": task.prompt,
        "canonical_solution": task.canonical_solution,
        "test": task.test,
        "entry_point": task.entry_point,
        "difficulty": task.difficulty,
        "format": task.format,
    }
    if task.timeout is not None:
        record["timeout"] = task.timeout
    # Metadata fields go back beside the others, where the loader found them.
    return {**dict(task.metadata), **record}


# -- show -------------------------------------------------------------------------------------


def _run_show(args: argparse.Namespace) -> int:
    tasks = _load(args)
    try:
        task = tasks.get_task(args.task_id)
    except ValueError as error:
        raise CLIError(str(error)) from None
    timeout = f"{task.timeout:g} s" if task.timeout is not None else "the Verifier's default"
    fields = [
        ("task_id", task.task_id),
        ("difficulty", task.difficulty),
        ("format", task.format),
        ("entry_point", task.entry_point),
        ("timeout", timeout),
    ]
    if task.metadata:
        fields.append(("metadata", json.dumps(dict(task.metadata), ensure_ascii=False)))
    for name, value in fields:
        print(f"{name + ':':<13}{value}")
    canonical = task.canonical_solution or "(none)\n"
    for title, text in (("prompt", task.prompt), ("test", task.test), ("canonical", canonical)):
        print(f"\n--- {title} ---")
        print(text, end="" if text.endswith("\n") else "\n")
    return 0


# -- check ------------------------------------------------------------------------------------


def _run_check(args: argparse.Namespace) -> int:
    return check_canonical_solutions(args, _load(args), args.source)


def check_canonical_solutions(args: argparse.Namespace, tasks: TaskSet, source: str) -> int:
    """Run every canonical solution of ``tasks`` through one Verifier and print the report.

    ``args`` carries the verifier options (``workers``, ``timeout``) and ``json`` (a report path
    or None); ``source`` names the tasks in the JSON report. Returns the exit code: 0 when every
    solution passed, else 1.
    """
    checked = [task for task in tasks.values() if task.canonical_solution.strip()]
    skipped = [task.task_id for task in tasks.values() if not task.canonical_solution.strip()]
    report = open_output(args.json) if args.json else None
    started = time.monotonic()
    try:
        pairs = [(task, task.canonical_solution) for task in checked]
        verdicts = (
            [v for chunk in verify_in_chunks(args, pairs, "check") for v in chunk] if pairs else []
        )
        seconds = time.monotonic() - started
        if report is not None:
            _write_report(report, source, verdicts, skipped, seconds)
    finally:
        if report is not None:
            report.close()
    _print_check_report(verdicts, skipped, seconds)
    return 0 if all(verdict.passed for verdict in verdicts) else 1


def _reason(verdict: Verdict) -> str:
    """``error_type: last line of detail``, without repeating the type when the line has it."""
    lines = [line.strip() for line in verdict.detail.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if not verdict.error_type or last.startswith(verdict.error_type):
        return last or "-"
    return f"{verdict.error_type}: {last}" if last else verdict.error_type


def _print_check_report(
    verdicts: Sequence[Verdict], skipped: Sequence[str], seconds: float
) -> None:
    passed = sum(verdict.passed for verdict in verdicts)
    print(f"checked {len(verdicts)} canonical solutions: {passed} passed")
    if verdicts:
        print(f"outcomes: {outcome_counts(verdicts)}")
    failing = [verdict for verdict in verdicts if not verdict.passed]
    if failing:
        print(f"{len(failing)} did not pass:")
        width = max(len(verdict.task_id) for verdict in failing)
        for verdict in failing:
            print(f"  {verdict.task_id:<{width}}  {verdict.outcome.value:<8}  {_reason(verdict)}")
    if skipped:
        print(f"skipped {len(skipped)} without a canonical solution: {', '.join(skipped)}")
    print(f"wall time: {seconds:.1f} s")


def _write_report(
    report: IO[str],
    source: str,
    verdicts: Sequence[Verdict],
    skipped: Sequence[str],
    seconds: float,
) -> None:
    counts = collections.Counter(verdict.outcome.value for verdict in verdicts)
    data = {
        "tasks_file": source,
        "checked": len(verdicts),
        "passed": sum(verdict.passed for verdict in verdicts),
        "outcomes": dict(counts.most_common()),
        "skipped": list(skipped),
        "seconds": round(seconds, 3),
        "results": [result_record(verdict) for verdict in verdicts],
    }
    json.dump(data, report, indent=2, ensure_ascii=False)
    report.write("\n")


# -- check-tasks: the deprecated spelling of ``tasks check FILE`` --------------------------------


def _configure_check_tasks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="task file (JSON/JSONL)")
    parser.add_argument(
        "--json", metavar="PATH", help="also write a JSON report (per-task verdicts) to PATH"
    )
    add_verifier_options(parser)
    parser.epilog = "exit code: 0 if every canonical solution passed, 1 otherwise"


def _run_check_tasks(args: argparse.Namespace) -> int:
    print(
        f"{PROG}: warning: check-tasks is deprecated; use `{PROG} tasks check FILE`, which does "
        "the same",
        file=sys.stderr,
    )
    return check_canonical_solutions(args, load_task_file(args.file), args.file)


register(Command("tasks", "list, show or check the tasks of a source", _configure, _run))
register(
    Command(
        "check-tasks",
        "deprecated: use `tasks check FILE` (runs every task's canonical solution)",
        _configure_check_tasks,
        _run_check_tasks,
    )
)
