"""The registry of ``qsandbox`` subcommands: `Command`, `register`, `COMMANDS` and `CLIError`.

A command module builds a `Command` and registers it when imported (``register(Command(...))``);
:func:`qsandbox_env.cli.build_parser` turns every registered command into a subparser.

Every command module imports this one, so it sits below them all: it must never import a command
module, the Verifier, or anything else that does work.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COMMANDS", "PROG", "CLIError", "Command", "register"]

PROG = "qsandbox"


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


def register(command: Command) -> Command:
    """Add a subcommand to the ``qsandbox`` command line.

    Raises:
        ValueError: A command of that name is already registered.
    """
    if command.name in COMMANDS:
        raise ValueError(f"subcommand {command.name!r} is already registered")
    COMMANDS[command.name] = command
    return command
