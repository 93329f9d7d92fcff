"""``qsandbox profile``: create, list and remove execution profiles (pinned virtual environments).

::

    qsandbox profile create qiskit24 --qiskit 2.4.* --package qiskit-aer \\
        --package "qiskit-ibm-runtime<0.47"
    qsandbox profile list
    qsandbox profile remove qiskit24

Programs then run there with ``Verifier(profile="qiskit24")``. This module only parses arguments
and reports; the work is in :mod:`qsandbox_env.profiles`. It never runs task code.
"""

from __future__ import annotations

import argparse
import sys

from qsandbox_env import profiles
from qsandbox_env.cli.registry import CLIError, Command, register


def _configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="build a profile's virtual environment")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--qiskit", required=True, metavar="VERSION", help="e.g. 2.4.* or '<2.5'")
    create.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="SPEC",
        help="another pinned requirement (repeatable), e.g. 'qiskit-ibm-runtime<0.47'",
    )
    create.add_argument("--python", metavar="PATH", help="base interpreter (default: this one)")
    create.set_defaults(action=_create)
    listing = actions.add_parser("list", help="list profiles")
    listing.set_defaults(action=_list)
    remove = actions.add_parser("remove", help="delete a profile")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(action=_remove)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.action(args)
    except (ValueError, TypeError, profiles.ProfileError) as error:
        raise CLIError(str(error)) from None


def _create(args: argparse.Namespace) -> int:
    print(f"building profile {args.name!r} in {profiles.profiles_root()} ...", file=sys.stderr)
    profile = profiles.create_profile(args.name, args.qiskit, args.package, python=args.python)
    print(
        f"profile {profile.name}: qiskit {profile.qiskit_version}, python "
        f"{profile.python_version}, built in {profile.seconds:.0f} s at {profile.path}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    found = profiles.list_profiles()
    if not found:
        print(f"no profiles in {profiles.profiles_root()}")
    for profile in found:
        print(f"{profile.name}\tqiskit {profile.qiskit_version}\t{' '.join(profile.requirements)}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    path = profiles.remove_profile(args.name)
    print(f"removed profile {args.name} ({path})")
    return 0


register(Command("profile", "create, list and remove execution profiles", _configure, _run))
