"""Subcommands from other distributions, found through the ``qsandbox.commands`` entry points.

A distribution adds a ``qsandbox`` subcommand the way a pytest plugin adds itself: it declares an
entry point in the group `GROUP`, named after the command, in its ``pyproject.toml``::

    [project.entry-points."qsandbox.commands"]
    hello = "hello_pkg.cli:COMMAND"

where ``hello_pkg.cli.COMMAND`` is a :class:`~qsandbox_env.cli.Command` named ``hello``. An entry
point may instead name a module that registers its command when imported (``bench =
"agents.bench.cli"``, whose last statement is ``register(Command("bench", ...))``). Entry points
are loaded when the parser is built, so a command module keeps its heavy imports (torch, ray,
transformers) inside its run function, and ``qsandbox verify`` never pays for them.

A command that fails to load (its import raises, its value is not a `Command`, its name is not the
entry point's) does not take the other commands down: a stand-in of that name takes its place,
listed as unavailable in ``--help``, and running it, with any arguments, prints the reason as
``qsandbox: error: ...`` with exit code 2. An entry point whose name is already a command is
skipped with a one-line warning.

This module must never name a distribution or a module that provides commands: it knows them only
through the entry-point group.
"""

from __future__ import annotations

import argparse
import sys
import types
from importlib.metadata import EntryPoint, entry_points

from qsandbox_env.cli.registry import COMMANDS, PROG, CLIError, Command, register

__all__ = ["ANY_ARGUMENTS", "GROUP", "load_plugins"]

GROUP = "qsandbox.commands"
# Set on a stand-in's arguments: it takes any arguments, so that running it reaches its message.
ANY_ARGUMENTS = "takes_any_arguments"
_handled: set[tuple[str, str]] = set()  # (name, value) of the entry points already loaded


class _PluginError(Exception):
    """An entry point that loaded but does not give a usable command."""


def load_plugins() -> None:
    """Register the command of every ``qsandbox.commands`` entry point not loaded yet."""
    for entry in entry_points(group=GROUP):
        if (entry.name, entry.value) in _handled:
            continue
        _handled.add((entry.name, entry.value))
        try:
            _register(entry)
        except _PluginError as error:
            _unavailable(entry, str(error))
        except Exception as error:  # noqa: BLE001 - a broken plugin is reported, never raised
            _unavailable(entry, f"{type(error).__name__}: {error}")


def _register(entry: EntryPoint) -> None:
    value = entry.load()
    if isinstance(value, types.ModuleType):
        if entry.name not in COMMANDS:
            raise _PluginError(f"importing {entry.value} registered no command {entry.name!r}")
        return
    if not isinstance(value, Command):
        raise _PluginError(
            f"expected a qsandbox_env.cli.Command or a module, got {type(value).__name__}"
        )
    if value.name != entry.name:
        raise _PluginError(
            f"its command is named {value.name!r}; name the entry point after its command"
        )
    if COMMANDS.get(value.name) is value:  # its module registered it on import as well
        return
    if value.name in COMMANDS:
        raise _PluginError(f"a command named {value.name!r} is already registered")
    register(value)


def _unavailable(entry: EntryPoint, reason: str) -> None:
    """Report ``entry`` as broken: a stand-in command of its name, or a warning if it has none."""
    lines = reason.strip().splitlines()
    reason = lines[0] if lines else "no reason given"
    where = f"entry point {entry.name} = {entry.value}{_distribution(entry)}"
    if entry.name in COMMANDS:
        print(f"{PROG}: warning: skipped {where}: {reason}", file=sys.stderr)
        return
    message = f"command {entry.name!r} could not be loaded ({where}): {reason}"

    def configure(parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(**{ANY_ARGUMENTS: True})

    def run(args: argparse.Namespace) -> int:
        raise CLIError(message)

    # argparse %-formats help text.
    register(Command(entry.name, f"unavailable: {reason}".replace("%", "%%"), configure, run))


def _distribution(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return f" in {dist.name} {dist.version}" if dist is not None else ""
