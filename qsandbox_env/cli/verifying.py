"""What the commands that run a Verifier share: its options, building it, running in chunks.

``verify``, ``tasks check`` and ``bench`` take the same verifier options (``--workers``,
``--timeout``, ``--target``, ``--profile``, ``--fit`` and the ``--qpu-*`` budget); this module adds
them to a parser, checks them while arguments are parsed, builds the `Verifier` they describe,
runs (task, completion) pairs through it chunk by chunk, and turns a verdict into a result record.

It must never start a Verifier while arguments are still being checked: every option is validated
by its argparse type (or by `qpu_budget`) first, so a bad option fails before a sandbox starts.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from qsandbox_env.cli.registry import CLIError
from qsandbox_env.program import FIT_POLICIES
from qsandbox_env.progress import Progress
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Verdict, Verifier

if TYPE_CHECKING:
    from qsandbox_env.budget import Budget

__all__ = [
    "CHUNK",
    "OUTPUT_LIMIT",
    "add_budget_options",
    "add_fit_option",
    "add_verifier_options",
    "load_task_file",
    "non_negative_int",
    "open_output",
    "outcome_counts",
    "positive_int",
    "qpu_budget",
    "result_record",
    "verifier_from_args",
    "verify_in_chunks",
]

CHUNK = 64  # samples per verify_many call; results are written after each chunk
OUTPUT_LIMIT = 2000  # characters of a program's output kept in a result line


def key_value_options(pairs: Sequence[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` arguments of a repeatable ``flag`` as a dict; values are JSON or words.

    Example:
        >>> key_value_options(["n=20", "families=['x']", "device=cuda"], "--opt")
        {'n': 20, 'families': "['x']", 'device': 'cuda'}
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"{flag}: expected KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text  # plain words are strings: device=cuda
    return options


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative(kind: type, what: str) -> Callable[[str], Any]:
    """An argparse type: a finite ``kind`` (int or float) of at least 0."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if not 0 <= value < float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what} >= 0, got {text!r}")
        return value

    return parse


non_negative_int = _non_negative(int, "a whole number")
_non_negative_float = _non_negative(float, "a number")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def add_verifier_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="programs run at once (default: the CPU count)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="wall-clock limit per program in seconds, unless a task sets its own (default: 60)",
    )
    parser.add_argument(
        "--target",
        type=_target,
        default=None,
        metavar="TARGET",
        help="where primitives run: aer (default), fake:<device> or ibm:<backend>",
    )
    parser.add_argument(
        "--profile",
        type=_profile,
        default=None,
        metavar="NAME",
        help="run programs in an execution profile (see `qsandbox profile create`)",
    )
    add_fit_option(parser)
    add_budget_options(parser)


def add_fit_option(parser: argparse.ArgumentParser) -> None:
    """``--fit {fitted,strict}``: how completions become programs (see program.join)."""
    parser.add_argument(
        "--fit",
        choices=FIT_POLICIES,
        default="fitted",
        help=(
            "how completions become programs: fitted (default; code taken out of the reply and "
            "fitted to the prompt, whitespace only) or strict (plain HumanEval: prompt + "
            "completion + test, to compare with numbers produced that way)"
        ),
    )


def add_budget_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--qpu-jobs``, ``--qpu-shots``, ``--qpu-seconds``: the run's QPU budget (ibm: targets)."""
    for flag, kind, what in (
        ("--qpu-jobs", non_negative_int, "jobs"),
        ("--qpu-shots", non_negative_int, "shots"),
        ("--qpu-seconds", _non_negative_float, "QPU seconds"),
    ):
        parser.add_argument(
            flag,
            type=kind,
            default=None,
            metavar="N",
            help=f"ibm: targets: the most {what} the whole run may spend (default: no limit)",
        )


def qpu_budget(args: argparse.Namespace, target: str | None) -> Budget | None:
    """The ``--qpu-*`` budget for ``target``, or None when no limit was given.

    Raises:
        CLIError: A limit for a target that spends no QPU time.
    """
    limits = {name: getattr(args, f"qpu_{name}", None) for name in ("jobs", "shots", "seconds")}
    is_qpu = bool(target) and str(target).startswith("ibm:")
    if all(value is None for value in limits.values()):
        if is_qpu:
            print(
                f"qsandbox: --target {target} has no QPU budget: programs may submit any number "
                "of jobs; cap them with --qpu-jobs, --qpu-shots or --qpu-seconds",
                file=sys.stderr,
            )
        return None
    if not is_qpu:
        raise CLIError(
            f"--qpu-jobs/--qpu-shots/--qpu-seconds limit QPU spending, and --target "
            f"{target or 'aer'} spends none; use them with an ibm:<backend> target"
        )
    from qsandbox_env.budget import Budget

    return Budget(**limits)


def _target(text: str) -> str:
    from qsandbox_env.targets import parse_target

    try:
        return parse_target(text).spec
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error))


def _profile(text: str) -> str:
    from qsandbox_env.profiles import load_profile

    try:
        load_profile(text)
    except (ValueError, OSError) as error:
        raise argparse.ArgumentTypeError(str(error))
    return text


def verifier_from_args(args: argparse.Namespace, workers: int) -> Verifier:
    """The Verifier the shared options in ``args`` ask for, running ``workers`` programs at once."""
    options: dict[str, Any] = {
        "timeout": args.timeout,
        "profile": args.profile,
        "fit": getattr(args, "fit", "fitted"),
    }
    if args.target is not None:
        options["target"] = args.target
    budget = qpu_budget(args, args.target)
    if budget is not None:
        options["budget"] = budget
    return Verifier(workers=workers, **options)


def load_task_file(path: str) -> TaskSet:
    """The tasks of ``path``; a file that will not load is a `CLIError`."""
    try:
        return load_tasks(path)
    except (ValueError, TypeError, OSError) as error:
        raise CLIError(str(error)) from None


def open_output(path: str) -> IO[str]:
    """``path`` opened for writing; the caller closes it."""
    try:
        return open(path, "w", encoding="utf-8")  # the caller closes it
    except OSError as error:
        raise CLIError(f"cannot write {path}: {error.strerror or error}") from None


def verify_in_chunks(
    args: argparse.Namespace, pairs: Sequence[tuple[Task, str]], label: str = "verify"
) -> Iterator[list[Verdict]]:
    """Run ``pairs`` through one Verifier, yielding the verdicts chunk by chunk, in input order.

    A progress bar counts them on stderr when it is a terminal.
    """
    workers = args.workers or os.cpu_count() or 1
    size = max(CHUNK, workers)  # a chunk smaller than the pool would leave workers idle
    bar = Progress(len(pairs), made=None, label=label, unit="program")
    try:
        with verifier_from_args(args, workers) as verifier:
            for start in range(0, len(pairs), size):
                verdicts = verifier.verify_many(pairs[start : start + size])
                for verdict in verdicts:
                    bar.verified(verdict.passed)
                yield verdicts
    finally:
        bar.close()


def outcome_counts(verdicts: Sequence[Verdict]) -> str:
    """``passed 3, failed 1``: how many verdicts had each outcome, most first."""
    counts = collections.Counter(verdict.outcome.value for verdict in verdicts)
    return ", ".join(f"{outcome} {count}" for outcome, count in counts.most_common())


def result_record(verdict: Verdict) -> dict[str, Any]:
    """``verdict.to_dict()`` without the bulky ``code`` and with ``output`` trimmed."""
    data = verdict.to_dict()
    data.pop("code", None)
    output = data.get("output", "")
    if len(output) > OUTPUT_LIMIT:
        marker = f"\n[... {len(output) - OUTPUT_LIMIT} more characters trimmed]"
        data["output"] = output[: OUTPUT_LIMIT - len(marker)] + marker
    return data
