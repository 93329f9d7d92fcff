"""The sampling flags of the commands that generate (``qsandbox bench``, ``qsandbox distill``),
and the `SamplingParams` they make: one set of names and checks for both."""

from __future__ import annotations

import argparse

from agents.policy import SamplingParams
from qsandbox_env.cli.verifying import positive_int

__all__ = ["add_sampling_options", "sampling_params"]


def add_sampling_options(
    parser: argparse.ArgumentParser, defaults: SamplingParams, max_new_tokens_help: str = ""
) -> None:
    """Add ``--temperature``, ``--top-p``, ``--max-new-tokens``, ``--seed`` and ``--stop``."""
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument(
        "--temperature",
        type=float,
        default=defaults.temperature,
        help=f"0 is greedy (default: {defaults.temperature})",
    )
    sampling.add_argument(
        "--top-p", type=float, default=defaults.top_p, help=f"(default: {defaults.top_p})"
    )
    sampling.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=defaults.max_new_tokens,
        help=f"{max_new_tokens_help}(default: {defaults.max_new_tokens})",
    )
    sampling.add_argument("--seed", type=int, default=None, help="sampling seed (default: none)")
    sampling.add_argument(
        "--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)"
    )


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    """The `SamplingParams` of parsed sampling flags (``ValueError`` names a bad value)."""
    return SamplingParams(
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        stop=tuple(args.stop),
    )
