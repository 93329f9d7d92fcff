"""GRPOConfig: every knob of a GRPO run, one documented field each, validated when built.

This module is pure Python (no torch): the command line builds and validates a config before any
heavy import, so a bad option fails in milliseconds. It must never hold state that changes during
training; the trainer keeps that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["ADVANTAGE_SCALES", "LOSS_TYPES", "LR_SCHEDULES", "PRECISIONS", "GRPOConfig"]

ADVANTAGE_SCALES = ("group", "batch", "none")
LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
PRECISIONS = ("auto", "bf16", "fp32")
LR_SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class GRPOConfig:
    """Hyper-parameters of a GRPO run.

    Attributes:
        steps: Training steps; each samples a batch of prompts, generates, verifies and updates.
        prompts_per_step: Tasks sampled per step (B).
        group_size: Completions generated per task (G); advantages compare completions of a group.
        iterations: Optimisation passes over each batch (μ); the log-probs of the sampling policy
            stay frozen, so passes after the first are off-policy and the clipping matters.
        micro_batch_size: Completions per forward/backward pass (bounds activation memory).
        gradient_accumulation_steps: Micro-batches per optimizer step.
        learning_rate: AdamW learning rate (the peak, with a schedule).
        lr_schedule: ``"constant"``, or ``"linear"``: decays to 0 at the last step, which keeps
            the late steps of a run from undoing what it learned (Adam's steps keep their size
            while the useful signal fades).
        weight_decay: AdamW weight decay.
        max_grad_norm: Gradient-norm clipping threshold; 0 disables clipping.
        epsilon_low: Lower clip range: the ratio is kept above ``1 - epsilon_low``.
        epsilon_high: Upper clip range: the ratio is kept below ``1 + epsilon_high`` (DAPO raises
            it above ``epsilon_low`` to let unlikely good tokens grow; "clip-higher").
        beta: Weight of the k3 KL penalty to the reference (initial) model; 0 turns it off and
            no reference model is kept.
        advantage_scale: What rewards minus the group mean are divided by: ``"group"`` (the
            group's std, GRPO), ``"batch"`` (the whole batch's std) or ``"none"`` (Dr. GRPO).
        loss_type: How per-token losses become one number: ``"grpo"`` (mean over each sequence,
            then over sequences), ``"dapo"`` (mean over all tokens of the batch) or ``"dr_grpo"``
            (sum over tokens divided by sequences times ``max_new_tokens``, a constant).
        temperature: Sampling temperature during training (0 is not allowed: groups need spread).
        top_p: Nucleus-sampling mass during training.
        max_new_tokens: Upper bound on generated tokens per completion.
        generation_batch_size: Prompts per generation call (each yields ``group_size`` samples).
            Each call's completions are one chunk of the step's verification (see ``pipeline``).
        pipeline: Verify each generation chunk on the verifier's workers while the next chunk
            generates, so the update waits only for what is still running; False verifies the
            whole step after generation ends (sequential; same rewards in the same order).
        use_chat_template: Wrap prompts in the tokenizer's chat template (system prompt plus
            instruction, as `QiskitCodeEnv` shows them) when the tokenizer has one; else the raw
            prompt is continued.
        reuse_verdicts: Verify each distinct (task, completion) pair once per run and reuse its
            verdict. Only for tasks whose tests are deterministic.
        lora: Train LoRA adapters (peft) instead of all weights.
        lora_rank: LoRA rank r.
        lora_alpha: LoRA scaling numerator (the update is scaled by alpha / r).
        lora_dropout: Dropout on the LoRA input.
        lora_target_modules: Module names to adapt, or ``("all-linear",)``.
        precision: ``"bf16"``, ``"fp32"`` or ``"auto"`` (bf16 where the device supports it).
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        seed: Seed of task sampling, generation and initialisation; runs with the same seed on
            the same machine repeat exactly.
        eval_every: Steps between pass@1 evaluations on the held-out tasks; 0 evaluates only at
            the end (and never when there are no held-out tasks).
        eval_samples: Completions per held-out task at evaluation (greedy when 1).
        save_every: Steps between checkpoints; 0 saves only the final one.
        log_every: Steps between printed log lines (every step is written to the logs).
        tensorboard: Also write TensorBoard event files next to the CSV log.

    Example:
        >>> GRPOConfig(group_size=4).optimizer_batch
        16
        >>> GRPOConfig(epsilon_low=-1)
        Traceback (most recent call last):
        ...
        ValueError: epsilon_low: expected a number in [0, 1), got -1
    """

    steps: int = 100
    prompts_per_step: int = 8
    group_size: int = 8
    iterations: int = 1
    micro_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-6
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    beta: float = 0.0
    advantage_scale: str = "group"
    loss_type: str = "grpo"
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    generation_batch_size: int = 8
    pipeline: bool = True
    use_chat_template: bool = True
    reuse_verdicts: bool = False
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: tuple[str, ...] = ("all-linear",)
    precision: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 0
    eval_every: int = 0
    eval_samples: int = 1
    save_every: int = 0
    log_every: int = 1
    tensorboard: bool = True

    def __post_init__(self) -> None:
        for check in _CHECKS:
            check(self)
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))

    @property
    def batch_size(self) -> int:
        """Completions per step: ``prompts_per_step * group_size``."""
        return self.prompts_per_step * self.group_size

    @property
    def optimizer_batch(self) -> int:
        """Completions per optimizer step: ``micro_batch_size * gradient_accumulation_steps``."""
        return self.micro_batch_size * self.gradient_accumulation_steps

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-ready values."""
        data = asdict(self)
        data["lora_target_modules"] = list(self.lora_target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GRPOConfig:
        """Rebuild a config from `to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"GRPOConfig: expected fields among {sorted(known)}, got unknown {unknown}"
            )
        values = dict(data)
        if "lora_target_modules" in values:
            values["lora_target_modules"] = tuple(values["lora_target_modules"])
        return cls(**values)


def _int_at_least(name: str, minimum: int):
    def check(config: GRPOConfig) -> None:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
            raise ValueError(f"{name}: expected {kind}, got {value!r}")

    return check


def _number_in(name: str, low: float, high: float, *, low_open: bool, high_open: bool):
    def check(config: GRPOConfig) -> None:
        value = getattr(config, name)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        above = is_number and (value > low if low_open else value >= low)
        below = is_number and (value < high if high_open else value <= high)
        if not (is_number and math.isfinite(value) and above and below):
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            high_text = "inf" if math.isinf(high) else f"{high:g}"
            interval = f"{left}{low:g}, {high_text}{right}"
            raise ValueError(f"{name}: expected a number in {interval}, got {value!r}")

    return check


def _one_of(name: str, choices: tuple[str, ...]):
    def check(config: GRPOConfig) -> None:
        value = getattr(config, name)
        if value not in choices:
            raise ValueError(f"{name}: expected one of {', '.join(choices)}, got {value!r}")

    return check


def _flag(name: str):
    def check(config: GRPOConfig) -> None:
        value = getattr(config, name)
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected True or False, got {value!r}")

    return check


def _target_modules(config: GRPOConfig) -> None:
    value = config.lora_target_modules
    if (
        isinstance(value, str)
        or not isinstance(value, tuple | list)
        or not value
        or not all(isinstance(name, str) and name for name in value)
    ):
        raise ValueError(
            "lora_target_modules: expected a non-empty sequence of module names such as "
            f"('q_proj', 'v_proj') or ('all-linear',), got {value!r}"
        )


def _whole_optimizer_steps(config: GRPOConfig) -> None:
    # A partial last optimizer step would weigh its completions differently from the others.
    if config.batch_size % config.optimizer_batch:
        raise ValueError(
            "batch: expected prompts_per_step * group_size to be a multiple of "
            "micro_batch_size * gradient_accumulation_steps, got "
            f"{config.prompts_per_step} * {config.group_size} = {config.batch_size} and "
            f"{config.micro_batch_size} * {config.gradient_accumulation_steps} = "
            f"{config.optimizer_batch}"
        )


def _group_has_spread(config: GRPOConfig) -> None:
    if config.group_size < 2:
        raise ValueError(
            f"group_size: expected an int >= 2 (advantages compare completions of a group), "
            f"got {config.group_size!r}"
        )


_INF = float("inf")
_CHECKS = (
    _int_at_least("steps", 1),
    _int_at_least("prompts_per_step", 1),
    _int_at_least("group_size", 1),
    _group_has_spread,
    _int_at_least("iterations", 1),
    _int_at_least("micro_batch_size", 1),
    _int_at_least("gradient_accumulation_steps", 1),
    _whole_optimizer_steps,
    _number_in("learning_rate", 0, _INF, low_open=True, high_open=True),
    _one_of("lr_schedule", LR_SCHEDULES),
    _number_in("weight_decay", 0, _INF, low_open=False, high_open=True),
    _number_in("max_grad_norm", 0, _INF, low_open=False, high_open=True),
    _number_in("epsilon_low", 0, 1, low_open=False, high_open=True),
    _number_in("epsilon_high", 0, _INF, low_open=False, high_open=True),
    _number_in("beta", 0, _INF, low_open=False, high_open=True),
    _one_of("advantage_scale", ADVANTAGE_SCALES),
    _one_of("loss_type", LOSS_TYPES),
    _number_in("temperature", 0, _INF, low_open=True, high_open=True),
    _number_in("top_p", 0, 1, low_open=True, high_open=False),
    _int_at_least("max_new_tokens", 1),
    _int_at_least("generation_batch_size", 1),
    _flag("pipeline"),
    _flag("use_chat_template"),
    _flag("reuse_verdicts"),
    _flag("lora"),
    _int_at_least("lora_rank", 1),
    _int_at_least("lora_alpha", 1),
    _number_in("lora_dropout", 0, 1, low_open=False, high_open=True),
    _target_modules,
    _one_of("precision", PRECISIONS),
    _flag("gradient_checkpointing"),
    _int_at_least("seed", 0),
    _int_at_least("eval_every", 0),
    _int_at_least("eval_samples", 1),
    _int_at_least("save_every", 0),
    _int_at_least("log_every", 1),
    _flag("tensorboard"),
)
