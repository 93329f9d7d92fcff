"""The ``qsandbox bench`` subcommand: pass@k of any agent on any task source, resumable.

::

    qsandbox bench --agent oracle --tasks bundled -n 1 -k 1 --out runs/oracle-bundled
    qsandbox bench --agent hf:Qwen/Qwen2.5-Coder-1.5B-Instruct --tasks qiskit-humaneval \\
        --data dataset_qiskit_test_human_eval.json -n 10 -k 1,5,10 --out runs/qwen
    qsandbox bench compare runs/oracle-bundled runs/qwen

Rerunning the same command into the same ``--out`` resumes an interrupted run. This module parses
arguments and prints; the work is `agents.bench.runner`'s, and torch, transformers and ray are
imported only by the agent or verifier that needs them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from agents.bench import charts, report
from agents.bench.runner import (
    SUMMARY_FILE,
    BenchConfig,
    BenchError,
    build_rollout,
    build_verifier,
)
from agents.policy import PolicyError, SamplingParams
from agents.sampling import add_sampling_options, sampling_params
from qsandbox_env.cli import (
    CLIError,
    Command,
    add_budget_options,
    add_fit_option,
    qpu_budget,
    register,
)
from qsandbox_env.cli.verifying import key_value_options, positive_int

__all__ = ["main_bench"]

# Flags that fill agent options (hf: device/dtype/batch_size; openai: the rest).
_AGENT_FLAGS = {
    "device": "device",
    "dtype": "dtype",
    "batch_size": "batch_size",
    "api_key_env": "api_key_env",
    "concurrency": "concurrency",
    "request_timeout": "timeout",
}


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "compare",
        nargs="*",
        metavar="compare DIR",
        help="`qsandbox bench compare DIR...`: print finished runs side by side",
    )
    parser.add_argument(
        "--chart",
        metavar="PNG",
        help="bench compare: also draw the runs' pass@k side by side into this PNG",
    )
    run = parser.add_argument_group("what to run")
    run.add_argument(
        "--agent", help="oracle | stale-api | hf:<path-or-hub-id> | openai:<model>@<base-url>"
    )
    run.add_argument(
        "--tasks",
        help="bundled | procedural | qiskit-humaneval | qiskit-humaneval-hard | a task file",
    )
    run.add_argument("--data", metavar="PATH", help="the task file for qiskit-humaneval(-hard)")
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for a named task source, e.g. n=50 (repeatable)",
    )
    run.add_argument("--limit", type=positive_int, metavar="N", help="only the first N tasks")
    run.add_argument("-n", type=positive_int, default=1, help="samples per task (default: 1)")
    run.add_argument(
        "-k",
        type=_ks,
        default=(1,),
        metavar="K[,K...]",
        help="pass@k budgets to report, e.g. 1,5,10; those above n are not reported",
    )
    run.add_argument("--out", metavar="DIR", help="run directory (rerun to resume)")
    add_sampling_options(parser, SamplingParams())
    agent = parser.add_argument_group("agent options")
    agent.add_argument("--device", help="hf: cuda, cuda:1, mps or cpu (default: best available)")
    agent.add_argument("--dtype", help="hf: bfloat16, float16 or float32 (default: by device)")
    agent.add_argument("--batch-size", type=positive_int, help="hf: prompts per forward pass")
    agent.add_argument("--api-key-env", help="openai: env var holding the key (OPENAI_API_KEY)")
    agent.add_argument("--concurrency", type=positive_int, help="openai: requests at once")
    agent.add_argument("--request-timeout", type=float, help="openai: seconds per request")
    agent.add_argument(
        "--agent-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other option of the agent's factory (repeatable)",
    )
    verify = parser.add_argument_group("verification")
    verify.add_argument("--workers", type=positive_int, help="programs run at once (CPU count)")
    verify.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per program (default: 60)"
    )
    verify.add_argument("--target", help="Verifier target, e.g. aer or fake:<device>")
    add_fit_option(verify)
    add_budget_options(verify)
    verify.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=None,
        metavar="ADDRESS",
        help=(
            "run on a Ray cluster (a new local one, or ADDRESS): verification, and generation "
            "too for agents each worker can build (openai:, oracle, stale-api); an hf: model "
            "generates on the driver unless --gpus-per-worker is given"
        ),
    )
    verify.add_argument(
        "--gpus-per-worker",
        type=_gpus,
        metavar="G",
        help=(
            "with --ray and an hf: agent: each Ray worker loads its own replica of the model on "
            "G GPUs (0: on CPU) and generates and verifies its share; the driver loads nothing"
        ),
    )
    parser.add_argument("--chunk", type=positive_int, default=32, help="queries per generate call")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def main_bench(args: argparse.Namespace) -> int:
    """Run ``qsandbox bench`` (or ``bench compare``) for parsed ``args``; return the exit code."""
    if args.compare:
        return _compare(args)
    if args.chart:
        raise CLIError(
            "bench: --chart draws compared runs: `qsandbox bench compare DIR... --chart PNG`"
        )
    for flag in ("agent", "tasks", "out"):
        if getattr(args, flag) is None:
            raise CLIError(f"bench: --{flag} is required (or use `qsandbox bench compare DIR...`)")
    from agents.bench.runner import run_benchmark  # keeps `qsandbox --help` light

    config = _config(args)
    ray = args.ray
    replicate = args.gpus_per_worker is not None
    if replicate and not ray:
        raise CLIError("bench: --gpus-per-worker places model replicas on Ray workers: add --ray")
    if replicate and not config.agent.startswith("hf:"):
        raise CLIError(
            f"bench: --gpus-per-worker is for an hf: agent (a model each worker loads); "
            f"--agent {config.agent} needs no GPU"
        )
    budget = qpu_budget(args, config.target)
    try:
        summary = run_benchmark(
            config,
            args.out,
            verifier=lambda: build_verifier(
                args.workers, config.timeout, config.target, ray, budget, config.fit
            ),
            rollout=(
                build_rollout(config, args.workers, ray, budget, args.gpus_per_worker or 0.0)
                if ray
                else None
            ),
            replicate=replicate,
            workers=args.workers,
            lanes=1 if ray else None,
            batch=64 if ray else 1,
            chunk=args.chunk,
            progress=not args.no_progress,
        )
    except (BenchError, PolicyError) as error:
        raise CLIError(str(error)) from None
    print(_summary_text(summary, args.out))
    return 0


def _gpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a number of GPUs >= 0 (0.5 shares one), got {text!r}"
        )
    return value


def _config(args: argparse.Namespace) -> BenchConfig:
    try:
        params = sampling_params(args)
        agent_options = key_value_options(args.agent_option, "--agent-option")
        for flag, option in _AGENT_FLAGS.items():
            if getattr(args, flag) is not None:
                agent_options[option] = getattr(args, flag)
        return BenchConfig(
            agent=args.agent,
            tasks=args.tasks,
            n=args.n,
            ks=args.k,
            params=params,
            data=args.data,
            task_options=key_value_options(args.task_option, "--task-option"),
            limit=args.limit,
            timeout=args.timeout,
            target=args.target,
            agent_options=agent_options,
            fit=args.fit,
        )
    except (ValueError, TypeError) as error:
        raise CLIError(str(error)) from None


def _summary_text(summary: dict[str, Any], out: str) -> str:
    lines = [
        f"{summary['agent']} on {summary['task_source']}: {summary['tasks']} tasks, "
        f"n={summary['n']}, {summary['passed_samples']}/{summary['samples']} samples passed"
    ]
    for k, value in summary["pass_at_k"].items():
        groups = ", ".join(
            f"{name} {100 * group['pass_at_k'][k]:.2f}%"
            for name, group in summary["by_difficulty"].items()
            if k in group["pass_at_k"]
        )
        lines.append(f"  pass@{k:<3} {100 * value:6.2f}%   ({groups})")
    for k, why in summary["not_reported"].items():
        lines.append(f"  pass@{k:<3} not reported: {why}")
    counts = ", ".join(f"{c} {v}" for c, v in summary["categories"].items() if v)
    lines.append(f"  outcomes: {counts}")
    if summary["deprecated_api"]:
        top = list(summary["deprecated_api"].items())[:5]
        lines.append("  removed Qiskit APIs hit: " + ", ".join(f"{n} {c}" for n, c in top))
    lines.append(f"  wrote {os.path.join(out, '')}{{summary.json, report.md, passk.png}}")
    return "\n".join(lines)


def _compare(args: argparse.Namespace) -> int:
    word, *directories = args.compare
    if word != "compare":
        raise CLIError(
            f"bench: unexpected argument {word!r}; run `qsandbox bench --agent ... --tasks ... "
            "--out DIR`, or `qsandbox bench compare DIR...`"
        )
    if not directories:
        raise CLIError("bench compare: expected one or more run directories, got none")
    if args.agent is not None:
        raise CLIError("bench compare: takes run directories only, not --agent")
    summaries: dict[str, dict[str, Any]] = {}
    for directory in directories:
        path = os.path.join(directory, SUMMARY_FILE)
        try:
            with open(path, encoding="utf-8") as file:
                summaries[_label(directory, summaries)] = json.load(file)
        except FileNotFoundError:
            raise CLIError(
                f"bench compare: {path} not found; finish that run first (rerun its command)"
            ) from None
        except (OSError, json.JSONDecodeError) as error:
            raise CLIError(f"bench compare: cannot read {path}: {error}") from None
    print(report.compare_table(summaries))
    if args.chart:
        try:
            charts.write_compare_chart(summaries, args.chart)
        except OSError as error:
            raise CLIError(f"bench compare: cannot write {args.chart}: {error}") from None
        print(f"wrote {args.chart}")
    return 0


def _label(directory: str, taken: dict[str, Any]) -> str:
    label = os.path.basename(os.path.normpath(directory)) or directory
    return label if label not in taken else os.path.normpath(directory)


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected budgets like 1,5,10, got {text!r}")
    if any(k <= 0 for k in ks):
        raise argparse.ArgumentTypeError(f"expected positive budgets like 1,5,10, got {text!r}")
    return ks


register(
    Command(
        "bench",
        "pass@k of an agent on a task set (resumable); `bench compare DIR...` compares runs",
        _configure,
        main_bench,
    )
)

if __name__ == "__main__":  # pragma: no cover - `python -m agents.bench.cli` for debugging
    from qsandbox_env.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
