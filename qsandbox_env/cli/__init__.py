"""The ``qsandbox`` command line: verify samples, look at task sources, manage profiles.

Each subcommand is a `Command` (its arguments plus a function that returns an exit code) kept in
`COMMANDS`, and lives in a module of its own that registers it on import:

- :mod:`~qsandbox_env.cli.verify`: ``verify``;
- :mod:`~qsandbox_env.cli.tasks`: ``tasks list|show|check`` (and ``check-tasks``, its deprecated
  spelling);
- :mod:`~qsandbox_env.cli.profile`: ``profile create|list|remove``.

They share :mod:`~qsandbox_env.cli.registry` (`Command`, `register`) and
:mod:`~qsandbox_env.cli.verifying` (the verifier options and the Verifier they build). Commands
from other distributions (``bench`` and ``train`` from ``agents``, or a third party's) register
through the ``qsandbox.commands`` entry-point group, loaded by :mod:`~qsandbox_env.cli.plugins`
when the parser is built.

Exit codes: 0 success (``verify`` exits 0 whatever the pass rate); 1 ``tasks check`` found a
canonical solution that does not pass; 2 bad input (a missing or malformed task or samples file,
bad arguments), a sandbox that would not start or a command that could not be loaded, reported on
stderr as ``qsandbox: error: ...`` without a traceback; 130 interrupted.

This package must never import ``agents`` or any other distribution that adds commands: they find
it through the entry-point group, never the other way round. It only parses arguments, reads and
writes files and reports; it must never run, import or ``exec`` a task's code or a completion
itself (all untrusted code goes through the `Verifier` and its sandbox), nor start the sandbox
before every input has been validated, so that a bad file fails fast and nothing half-runs.
"""

from __future__ import annotations

import argparse
import sys

from qsandbox_env import __version__
from qsandbox_env.cli import profile, tasks, verify  # noqa: F401 - each registers its command
from qsandbox_env.cli.plugins import ANY_ARGUMENTS, load_plugins
from qsandbox_env.cli.registry import COMMANDS, PROG, CLIError, Command, register
from qsandbox_env.cli.verifying import add_budget_options, add_fit_option, qpu_budget
from qsandbox_env.verifier import SandboxError

__all__ = [
    "COMMANDS",
    "CLIError",
    "Command",
    "add_budget_options",
    "add_fit_option",
    "build_parser",
    "main",
    "qpu_budget",
    "register",
]


def main(argv: list[str] | None = None) -> int:
    """Run ``qsandbox`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown and not getattr(args, ANY_ARGUMENTS, False):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # as parse_args does
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
    """The argument parser with every registered subcommand, those of entry points included."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Sandboxed verification of Qiskit code completions."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    load_plugins()
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        subparser = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(subparser)
        subparser.set_defaults(run=command.run)
    return parser


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    return code if isinstance(code, int) else 2


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)
