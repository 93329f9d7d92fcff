"""The ``qsandbox distill`` subcommand: a teacher's verified answers as a training set.

::

    qsandbox distill --teacher openai:deepseek-chat@https://api.deepseek.com/v1 \\
        --tasks procedural --task-option n=500 -n 8 --keep 2 --repair 1 --out runs/distill

Rerunning the same command into the same ``--out`` continues the run (a raised
``--max-requests`` or ``--max-tokens-total`` included). This module parses arguments and prints;
the work is `agents.distill.runner.run_distill`'s.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from agents.distill.config import DEFAULT_PARAMS, DistillConfig, DistillError
from agents.distill.prompting import DEFAULT_TEMPLATE, PromptTemplate
from agents.distill.rundir import REPORT_FILE, STATS_FILE, TRAIN_FILE
from agents.sampling import add_sampling_options, sampling_params
from qsandbox_env.cli import CLIError, Command, add_fit_option, register
from qsandbox_env.cli.verifying import key_value_options, non_negative_int, positive_int

__all__ = ["configure_distill", "main_distill"]

# Flags that fill the teacher's OpenAIPolicy options.
_TEACHER_FLAGS = {
    "api_key_env": "api_key_env",
    "concurrency": "concurrency",
    "request_timeout": "timeout",
    "max_retries": "max_retries",
}


def configure_distill(parser: argparse.ArgumentParser) -> None:
    """The options of ``qsandbox distill``."""
    run = parser.add_argument_group("what to run")
    run.add_argument(
        "--teacher", required=True, help="openai:<model>@<base-url> (vLLM, DeepSeek's API, ...)"
    )
    run.add_argument("--tasks", required=True, help="procedural | bundled | a task file | hub id")
    run.add_argument(
        "--data", metavar="PATH", help="the task file of a named source that needs one"
    )
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for a named task source, e.g. n=500 (repeatable)",
    )
    run.add_argument("--limit", type=positive_int, metavar="N", help="only the first N tasks")
    run.add_argument("-n", type=positive_int, default=4, help="samples per task, at most (4)")
    run.add_argument(
        "--keep", type=positive_int, metavar="M", help="stop a task after M distinct kept answers"
    )
    run.add_argument(
        "--repair",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="turns a failed answer gets to fix itself from its execution feedback (0)",
    )
    run.add_argument("--out", required=True, metavar="DIR", help="run directory (rerun to resume)")
    _sampling_options(parser)
    teacher = parser.add_argument_group("teacher")
    teacher.add_argument("--api-key-env", help="env var holding the key (OPENAI_API_KEY)")
    teacher.add_argument("--concurrency", type=positive_int, help="requests at once (8)")
    teacher.add_argument("--request-timeout", type=float, help="seconds per request (120)")
    teacher.add_argument("--max-retries", type=non_negative_int, help="retries per request (5)")
    teacher.add_argument(
        "--max-requests", type=positive_int, metavar="N", help="stop after N requests in all"
    )
    teacher.add_argument(
        "--max-tokens-total",
        type=positive_int,
        metavar="N",
        help="stop once the teacher's prompt + completion tokens reach N",
    )
    teacher.add_argument(
        "--system-prompt", metavar="FILE", help="the teacher's system message (default: built in)"
    )
    teacher.add_argument(
        "--prompt-template",
        metavar="FILE",
        help="the teacher's user message, with {task} or {prompt} (and {entry_point}, {target})",
    )
    verify = parser.add_argument_group("verification")
    verify.add_argument("--target", help="Verifier target, e.g. aer or fake:<device>")
    verify.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per program (default: 60)"
    )
    verify.add_argument("--workers", type=positive_int, help="programs run at once (CPU count)")
    add_fit_option(verify)  # type: ignore[arg-type]  # a group takes arguments as a parser does
    leakage = parser.add_argument_group("benchmark leakage")
    leakage.add_argument(
        "--allow-benchmark-tasks",
        action="store_true",
        help="distil on Qiskit-HumanEval anyway (its pass@k then means nothing)",
    )
    leakage.add_argument(
        "--benchmark-file",
        action="append",
        default=[],
        metavar="PATH",
        help="benchmark task file the report compares kept prompts with (repeatable; "
        "$QSANDBOX_HUMANEVAL is added)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _sampling_options(parser: argparse.ArgumentParser) -> None:
    add_sampling_options(parser, DEFAULT_PARAMS, "per reply, reasoning included ")


def main_distill(args: argparse.Namespace) -> int:
    """Run ``qsandbox distill`` for parsed ``args``; return the exit code."""
    from agents.distill.runner import run_distill

    config = _config(args)
    try:
        stats = run_distill(config, args.out, workers=args.workers, progress=not args.no_progress)
    except DistillError as error:
        raise CLIError(str(error)) from None
    print(_summary(stats, args.out))
    return 0


def _config(args: argparse.Namespace) -> DistillConfig:
    try:
        params = sampling_params(args)
        teacher_options = {
            option: getattr(args, flag)
            for flag, option in _TEACHER_FLAGS.items()
            if getattr(args, flag) is not None
        }
        return DistillConfig(
            teacher=args.teacher,
            tasks=args.tasks,
            n=args.n,
            keep=args.keep,
            repair=args.repair,
            params=params,
            data=args.data,
            task_options=key_value_options(args.task_option, "--task-option"),
            limit=args.limit,
            target=args.target,
            timeout=args.timeout,
            fit=args.fit,
            template=_template(args),
            allow_benchmark_tasks=args.allow_benchmark_tasks,
            max_requests=args.max_requests,
            max_tokens_total=args.max_tokens_total,
            teacher_options=teacher_options,
            benchmark_files=tuple(args.benchmark_file),
        )
    except (ValueError, TypeError) as error:
        raise CLIError(str(error)) from None


def _template(args: argparse.Namespace) -> PromptTemplate:
    system = _read(args.system_prompt, "--system-prompt") if args.system_prompt else None
    user = _read(args.prompt_template, "--prompt-template") if args.prompt_template else None
    return PromptTemplate(
        DEFAULT_TEMPLATE.system if system is None else system,
        DEFAULT_TEMPLATE.user if user is None else user,
    )


def _read(path: str, flag: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as error:
        raise CLIError(f"{flag} {path}: {error.strerror or error}") from None


def _summary(stats: dict[str, Any], out: str) -> str:
    tokens = stats["tokens"]
    lines = [
        f"{stats['teacher']} on {stats['tasks_source']}: kept {stats['kept']} of "
        f"{stats['samples']} samples ({100 * stats['kept_rate']:.1f}%), "
        f"{stats['kept_after_repair']} after repair; {tokens['requests']} requests, "
        f"{tokens['prompt'] + tokens['completion']} tokens",
        "  outcomes: " + ", ".join(f"{k} {v}" for k, v in stats["outcomes"].items()),
    ]
    if stats["stopped"]:
        lines.append(f"  stopped early: {stats['stopped']}; raise the cap and rerun to continue")
    similarity = stats["benchmark_similarity"]
    if similarity["files"]:
        lines.append(
            f"  highest 3-shingle similarity to a benchmark prompt: {similarity['max_jaccard']}"
        )
    lines.append(f"  wrote {os.path.join(out, '')}{{{TRAIN_FILE}, {STATS_FILE}, {REPORT_FILE}}}")
    return "\n".join(lines)


register(
    Command(
        "distill",
        "a teacher's reasoning and code, kept only when verified: a training set for train sft",
        configure_distill,
        main_distill,
    )
)
