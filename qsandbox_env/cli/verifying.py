"""The ``qsandbox`` command line: verify model samples and check task files from a shell.

Each subcommand is a small `Command` (its arguments plus a function that returns an exit code)
kept in `COMMANDS`; later subcommands (``bench``, ``train``, ``profile``) register the same way.

Exit codes: 0 success (``verify`` exits 0 whatever the pass rate); 1 ``check-tasks`` found a
canonical solution that does not pass; 2 bad input (a missing or malformed task or samples file,
bad arguments) or a sandbox that would not start, reported on stderr as ``qsandbox: error: ...``
without a traceback; 130 interrupted.

This module only parses arguments, reads and writes files and reports. It must never run,
import or ``exec`` a task's code or a completion itself: all untrusted code goes through the
`Verifier` and its sandbox. It must never start the sandbox before every input has been
validated, so that a bad file fails fast and nothing half-runs.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from qsandbox_env import __version__
from qsandbox_env.extract import completion_text
from qsandbox_env.program import FIT_POLICIES
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import SandboxError, Verdict, Verifier

if TYPE_CHECKING:
    from qsandbox_env.budget import Budget

__all__ = ["COMMANDS", "Command", "main"]

PROG = "qsandbox"
CHUNK = 64  # samples per verify_many call; results are written after each chunk
OUTPUT_LIMIT = 2000  # characters of a program's output kept in a result line


class CLIError(Exception):
    """A problem with the user's input: printed as ``qsandbox: error: ...``, exit code 2."""


@dataclass(frozen=True)
class Command:
    """One subcommand: ``configure`` adds its arguments, ``run`` does the work and returns the
    exit code."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}

# Modules whose subcommands register themselves on import. They are imported only when the parser
# is built, and each keeps heavy imports (torch, ray, transformers) inside its run function, so
# ``qsandbox verify`` never pays for them. A module not present in this installation is skipped.
SUBCOMMAND_MODULES = (
    "qsandbox_env.cli_tasks",
    "qsandbox_env.cli_profile",
    "agents.bench.cli",
    "agents.grpo.cli",
)


def register(command: Command) -> Command:
    """Add a subcommand to the ``qsandbox`` command line."""
    if command.name in COMMANDS:
        raise ValueError(f"subcommand {command.name!r} is already registered")
    COMMANDS[command.name] = command
    return command


def main(argv: list[str] | None = None) -> int:
    """Run ``qsandbox`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argparse's own usage errors
        return _exit_code(exit_.code)
    try:
        return args.run(args)
    except (CLIError, SandboxError) as error:
        _error(str(error))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Sandboxed verification of Qiskit code completions."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _import_subcommands()
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def _import_subcommands() -> None:
    for name in SUBCOMMAND_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # its parent package is absent
            found = False
        if found:
            importlib.import_module(name)


# -- shared helpers ---------------------------------------------------------------------------


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _positive_int(text: str) -> int:
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


_non_negative_int = _non_negative(int, "a whole number")
_non_negative_float = _non_negative(float, "a number")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _add_verifier_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=_positive_int,
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
        ("--qpu-jobs", _non_negative_int, "jobs"),
        ("--qpu-shots", _non_negative_int, "shots"),
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


def _verifier(args: argparse.Namespace, workers: int) -> Verifier:
    """The Verifier the shared options ask for."""
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
    return Verifier(parallelism=workers, **options)


def _load_tasks(path: str) -> TaskSet:
    try:
        return load_tasks(path)
    except (ValueError, TypeError, OSError) as error:
        raise CLIError(str(error)) from None


def _open_output(path: str) -> IO[str]:
    try:
        return open(path, "w", encoding="utf-8")  # the caller closes it
    except OSError as error:
        raise CLIError(f"cannot write {path}: {error.strerror or error}") from None


def _verify_in_chunks(
    args: argparse.Namespace, pairs: Sequence[tuple[Task, str]]
) -> Iterator[list[Verdict]]:
    """Run ``pairs`` through one Verifier, yielding the verdicts chunk by chunk, in input order."""
    workers = args.workers or os.cpu_count() or 1
    size = max(CHUNK, workers)  # a chunk smaller than the pool would leave workers idle
    with _verifier(args, workers) as verifier:
        for start in range(0, len(pairs), size):
            yield verifier.verify_many(pairs[start : start + size])


def _outcome_counts(verdicts: Sequence[Verdict]) -> str:
    counts = collections.Counter(verdict.outcome.value for verdict in verdicts)
    return ", ".join(f"{outcome} {count}" for outcome, count in counts.most_common())


def _result_dict(verdict: Verdict) -> dict[str, Any]:
    """``verdict.to_dict()`` without the bulky ``code`` and with ``output`` trimmed."""
    data = verdict.to_dict()
    data.pop("code", None)
    output = data.get("output", "")
    if len(output) > OUTPUT_LIMIT:
        marker = f"\n[... {len(output) - OUTPUT_LIMIT} more characters trimmed]"
        data["output"] = output[: OUTPUT_LIMIT - len(marker)] + marker
    return data


# -- verify -----------------------------------------------------------------------------------


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
    _add_verifier_options(parser)


def _run_verify(args: argparse.Namespace) -> int:
    tasks = _load_tasks(args.tasks)
    samples = read_samples(args.samples, tasks)
    started = time.monotonic()
    out = _open_output(args.out) if args.out else sys.stdout
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
    for chunk in _verify_in_chunks(args, pairs):
        done = len(verdicts)
        for sample, verdict in zip(samples[done : done + len(chunk)], chunk, strict=True):
            record = {**sample.fields, **_result_dict(verdict)}
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
    print(f"{PROG}: outcomes: {_outcome_counts(verdicts)}", file=sys.stderr)


register(
    Command(
        "verify",
        "run sample completions against their tasks and write one result line per sample",
        _configure_verify,
        _run_verify,
    )
)


# -- check-tasks ------------------------------------------------------------------------------


def _configure_check_tasks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="task file (JSON/JSONL)")
    parser.add_argument(
        "--json", metavar="PATH", help="also write a JSON report (per-task verdicts) to PATH"
    )
    _add_verifier_options(parser)
    parser.epilog = "exit code: 0 if every canonical solution passed, 1 otherwise"


def _run_check_tasks(args: argparse.Namespace) -> int:
    return check_canonical_solutions(args, _load_tasks(args.file), args.file)


def check_canonical_solutions(args: argparse.Namespace, tasks: TaskSet, source: str) -> int:
    """Run every canonical solution of ``tasks`` through one Verifier and print the report.

    ``args`` carries the verifier options (``workers``, ``timeout``) and ``json`` (a report path
    or None); ``source`` names the tasks in the JSON report. Returns the exit code: 0 when every
    solution passed, else 1.
    """
    checked = [task for task in tasks.values() if task.canonical_solution.strip()]
    skipped = [task.task_id for task in tasks.values() if not task.canonical_solution.strip()]
    report = _open_output(args.json) if args.json else None
    started = time.monotonic()
    try:
        pairs = [(task, task.canonical_solution) for task in checked]
        verdicts = [v for chunk in _verify_in_chunks(args, pairs) for v in chunk] if pairs else []
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
        print(f"outcomes: {_outcome_counts(verdicts)}")
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
        "results": [_result_dict(verdict) for verdict in verdicts],
    }
    json.dump(data, report, indent=2, ensure_ascii=False)
    report.write("\n")


register(
    Command(
        "check-tasks",
        "run every task's canonical solution and report the ones that do not pass",
        _configure_check_tasks,
        _run_check_tasks,
    )
)
