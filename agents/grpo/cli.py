"""``qsandbox train grpo``: GRPO training from the command line, and the learning demo.

::

    qsandbox train grpo --model Qwen/Qwen2.5-Coder-1.5B-Instruct --tasks bundled --out runs/grpo \\
        --lora --steps 200
    qsandbox train grpo --demo            # a tiny model learns one- and two-line tasks on a CPU

Every `GRPOConfig` field is an option (``--group-size``, ``--loss-type``, ...), its help text
taken from the field's documentation. This module parses arguments and reports; it imports torch,
transformers and peft only inside the run function, so ``qsandbox --help`` stays fast, and it
validates every option (the config, the task sources) before a model or a sandbox starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
from typing import Any

from agents.grpo.config import ADVANTAGE_SCALES, LOSS_TYPES, LR_SCHEDULES, PRECISIONS, GRPOConfig
from agents.policy import PolicyError
from qsandbox_env.cli import CLIError, Command, register
from qsandbox_env.progress import Progress

__all__ = ["configure_grpo", "run_grpo"]

TORCH_INSTALL = 'pip install "qsandbox[grpo]"'
CHOICES = {
    "advantage_scale": ADVANTAGE_SCALES,
    "loss_type": LOSS_TYPES,
    "lr_schedule": LR_SCHEDULES,
    "precision": PRECISIONS,
}


def _field_docs() -> dict[str, str]:
    """``name -> description`` from the Attributes section of `GRPOConfig`'s docstring."""
    doc = inspect.getdoc(GRPOConfig) or ""
    section = doc.split("Attributes:", 1)[-1].split("Example:", 1)[0]
    docs: dict[str, str] = {}
    for match in re.finditer(r"^    (\w+): (.*?)(?=^    \w+: |\Z)", section, re.M | re.S):
        docs[match.group(1)] = " ".join(match.group(2).split())
    return docs


def _config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("GRPO hyper-parameters (GRPOConfig fields)")
    docs = _field_docs()
    for field in dataclasses.fields(GRPOConfig):
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        help_text = docs.get(field.name, "").replace("%", "%%")
        if isinstance(default, bool):
            group.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif isinstance(default, tuple):
            group.add_argument(
                flag, type=_names, default=None, metavar="A,B", help=f"{help_text} (comma list)"
            )
        else:
            group.add_argument(
                flag,
                type=type(default),
                choices=CHOICES.get(field.name),
                default=None,
                metavar=None if field.name in CHOICES else "X",
                help=f"{help_text} (default: {default})",
            )


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def configure_grpo(parser: argparse.ArgumentParser) -> None:
    """The options of ``qsandbox train grpo``."""
    run = parser.add_argument_group("what to train")
    run.add_argument("--demo", action="store_true", help="train the tiny demo model (CPU, ~1 min)")
    run.add_argument("--model", metavar="PATH", help="Hugging Face model path or hub id")
    run.add_argument(
        "--tasks", metavar="SOURCE", help="bundled | procedural | a task file | hub id"
    )
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option for a named task source, e.g. n=200 (repeatable)",
    )
    run.add_argument(
        "--eval-tasks", metavar="SOURCE", help="held-out tasks for the periodic pass@1"
    )
    run.add_argument("--out", metavar="DIR", help="metrics, checkpoints and the final model")
    run.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="CHECKPOINT",
        help="continue from a checkpoint directory (no value: the latest under --out)",
    )
    run.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    run.add_argument(
        "--generator",
        default="hf",
        help="hf (default: the trained model's generate), or openai:<model>@<url>: sample from "
        "a vLLM server started with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, "
        "which loads the trained LoRA adapter before each step (needs --lora)",
    )
    run.add_argument(
        "--served-adapter-dir",
        metavar="DIR",
        help="where adapters for the server are written, a path it must read "
        "(default: <out>/served-adapters)",
    )
    verify = parser.add_argument_group("verification")
    verify.add_argument("--workers", type=int, metavar="N", help="sandboxes (default: CPU count)")
    verify.add_argument("--timeout", type=float, default=60.0, metavar="S", help="s per program")
    verify.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=None,
        metavar="ADDRESS",
        help="verify on Ray actors (agents.ray.RayVerifier); no value: a local Ray",
    )
    _config_options(parser)


def run_grpo(args: argparse.Namespace) -> int:
    """Run ``qsandbox train grpo``; returns the exit code."""
    if args.demo:
        return _run_demo(args)
    config = _config_from_args(args, GRPOConfig())
    _require(args, "model", "tasks", "out")
    generator = _generator(args, config)
    tasks = _load(args.tasks, _task_options(args.task_option))
    eval_tasks = _load(args.eval_tasks, {}) if args.eval_tasks else None
    torch, transformers = _import_torch()
    from agents.grpo import checkpoint
    from agents.grpo.trainer import GRPOTrainer
    from agents.verifying import VerifierError, build_verifier

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tokenizer = _load_model(transformers, torch, args.model, config, device)
    torch.manual_seed(config.seed)
    try:
        verifier = build_verifier(args.workers, args.timeout, None, args.ray)
    except VerifierError as error:  # --ray: no Ray, a cluster too small, actors that did not start
        raise CLIError(str(error)) from None
    with _closing(verifier) as verifier:
        trainer = GRPOTrainer(
            config,
            model,
            tokenizer,
            tasks,
            verifier,
            eval_tasks=eval_tasks,
            out_dir=args.out,
            generator=generator,
        )
        if args.resume:
            where = checkpoint.latest(args.out) if args.resume == "latest" else args.resume
            if where is None:
                raise CLIError(f"--resume: no checkpoint under {args.out}/checkpoints")
            trainer.resume(where)
            print(f"resumed from {where} at step {trainer.step}")
        bar = _StepProgress(config.steps, done=trainer.step, made=None, label="train grpo")
        trainer.echo = bar.write  # the step lines print above the bar
        try:
            trainer.train(on_step=bar.step)
        except PolicyError as error:  # the server's failure, worded with its fix
            if not isinstance(error.__cause__ or error, PolicyError):
                raise  # a generator's bug (GenerationError around it): keep the traceback
            raise CLIError(str(error)) from None
        finally:
            bar.close()
            if generator is not None:
                generator.close()
    print(f"final model: {os.path.join(args.out, 'final')}")
    return 0


def _generator(args: argparse.Namespace, config: GRPOConfig) -> Any:
    """None for ``hf``; a `ServedGenerator` for ``openai:<model>@<url>`` (LoRA runs only)."""
    if args.generator == "hf":
        return None
    from agents.grpo.served import ServedGenerator

    adapter_dir = args.served_adapter_dir or os.path.join(args.out, "served-adapters")
    try:
        return ServedGenerator.from_spec(args.generator, config, adapter_dir)
    except ValueError as error:  # names the option: "generator: ..." or "lora: ..."
        raise CLIError(f"--{error}") from None


def _run_demo(args: argparse.Namespace) -> int:
    if args.ray:
        raise CLIError(
            "--ray: the demo verifies in its own local sandboxes; use --ray with --model, "
            "--tasks and --out"
        )
    from agents.grpo.demo import DEMO_CONFIG, run_demo

    config = _config_from_args(args, DEMO_CONFIG)  # overrides such as --steps, validated
    _import_torch()
    run_demo(config, out_dir=args.out, workers=args.workers or 2)
    return 0


def _config_from_args(args: argparse.Namespace, base: GRPOConfig) -> GRPOConfig:
    changes = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(GRPOConfig)
        if getattr(args, field.name, None) is not None
    }
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as error:
        raise CLIError(str(error)) from None


def _require(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{name}" for name in names if not getattr(args, name)]
    if missing:
        raise CLIError(f"expected {', '.join(missing)} (or --demo), got none")


def _task_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CLIError(f"--task-option: expected KEY=VALUE, got {pair!r}")
        options[key] = int(value) if value.lstrip("-").isdigit() else value
    return options


def _load(source: str, options: dict[str, Any]) -> Any:
    from qsandbox_env.sources import load_tasks

    try:
        return load_tasks(source, **options)
    except (ValueError, TypeError, OSError) as error:
        raise CLIError(str(error)) from None


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as error:
        raise CLIError(f"GRPO training needs torch and transformers: {TORCH_INSTALL}") from error
    return torch, transformers


def _load_model(
    transformers: Any, torch: Any, path: str, config: GRPOConfig, device: str
) -> tuple[Any, Any]:
    # LoRA keeps the frozen base in bf16; full training keeps fp32 weights under bf16 autocast.
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and device.startswith("cuda") and torch.cuda.is_bf16_supported()
    )
    dtype = torch.bfloat16 if bf16 and config.lora else torch.float32
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as error:
        raise CLIError(f"--model {path}: {error}") from None
    return model.to(device), tokenizer


class _closing:
    """Close the verifier (a `Verifier` or a Ray verifier) however the run ends."""

    def __init__(self, verifier: Any) -> None:
        self.verifier = verifier

    def __enter__(self) -> Any:
        return self.verifier

    def __exit__(self, *exc: object) -> None:
        self.verifier.close()


def _configure_train(parser: argparse.ArgumentParser) -> None:
    algorithms = parser.add_subparsers(title="algorithms", metavar="ALGORITHM", required=True)
    grpo = algorithms.add_parser(
        "grpo",
        help="GRPO on the Verifier's reward",
        description="Train a causal LM with GRPO; rewards come from running its code.",
    )
    configure_grpo(grpo)
    grpo.set_defaults(train_run=run_grpo)
    from agents.sft import configure_sft, main_sft  # no torch until it runs

    sft = algorithms.add_parser(
        "sft",
        help="supervised fine-tuning on verified demonstrations (qsandbox distill's train.jsonl)",
        description="Fine-tune a causal LM with TRL's SFTTrainer, loss on the assistant turn.",
    )
    configure_sft(sft)
    sft.set_defaults(train_run=main_sft)


def _run_train(args: argparse.Namespace) -> int:
    return args.train_run(args)


register(
    Command(
        "train",
        "post-train a model: grpo on task rewards, sft on verified demonstrations",
        _configure_train,
        _run_train,
    )
)


class _StepProgress(Progress):
    """The progress bar of ``train grpo``: steps done, with the last step's pass rate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.last: dict[str, float | None] = {}
        super().__init__(*args, unit="step", **kwargs)

    def step(self, metrics: dict[str, float | None]) -> None:
        self.last = metrics
        self.verified(False)

    def postfix(self) -> str:
        rate = self.last.get("train/pass_rate")
        return "" if rate is None else f"pass rate {rate:.2f}"
