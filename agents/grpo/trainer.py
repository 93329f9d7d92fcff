"""GRPOTrainer: the GRPO training loop over the Verifier's reward, in the order it runs.

One step: sample tasks → generate ``group_size`` completions per task, ``generation_batch_size``
prompts a chunk (a `Generator`: Hugging Face ``generate``, or an OpenAI-compatible server through
`agents.grpo.served`; chat template when the tokenizer has one) → score them through the Verifier
in parallel, each chunk as soon as it is decoded while the next one generates
(`agents.grpo.pipeline`; ``pipeline=False``: all of them after generation) → compute
group-relative advantages → freeze the sampling policy's log-probs → ``iterations`` passes of
clipped policy-gradient updates with gradient accumulation → log → checkpoint → evaluate.

The math lives in `agents.grpo.losses`; this module only wires it to a model. It must never run a
completion itself: every reward comes from ``verifier.verify_many`` (a `Verifier`, or any object
with that method, such as a Ray verifier; see `agents.verifying.VerifierLike`).

It is longer than the project's other modules (about 740 lines) on purpose: it is the one loop,
read top to bottom in the order a step runs, as CleanRL's ``ppo.py`` is; what is not the loop
already lives elsewhere (the math in `agents.grpo.losses`, verification beside generation in
`agents.grpo.pipeline`, the metrics file in `agents.grpo.metrics`, checkpoints in
`agents.grpo.checkpoint`, prompts in `qsandbox_env.prompts`).
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from agents.grpo import checkpoint
from agents.grpo.config import GRPOConfig
from agents.grpo.losses import (
    LOSS_REDUCTIONS,
    clipped_surrogate,
    group_advantages,
    kl_k3,
    token_entropy,
    token_log_probs,
)
from agents.grpo.metrics import MetricsLogger
from agents.grpo.pipeline import VerificationPipeline
from agents.policy import PolicyError
from agents.verifying import VerifierLike
from qsandbox_env.prompts import task_messages
from qsandbox_env.tasks import Task
from qsandbox_env.verifier import Outcome, Verdict

__all__ = [
    "METRICS",
    "EvalResult",
    "GRPOTrainer",
    "GenerationError",
    "Generator",
    "HFGenerator",
    "Rollouts",
    "VerifierLike",
]

PEFT_INSTALL = 'pip install "qsandbox[grpo]"  # or: pip install peft'

# Every metric a step logs, in CSV column order.
METRICS = (
    "train/reward_mean",
    "train/pass_rate",
    "train/zero_spread_groups",
    "train/completion_length",
    "train/truncated_fraction",
    *(f"outcomes/{outcome.value}" for outcome in Outcome),
    "losses/loss",
    "losses/clip_fraction",
    "losses/approx_kl",
    "losses/kl_ref",
    "losses/entropy",
    "losses/grad_norm",
    "time/generation_s",
    "time/verification_s",
    "time/verification_hidden_s",
    "time/optimization_s",
    "time/step_s",
    "time/generated_tokens_per_s",
    "time/programs_per_s",
    "eval/pass@1",
)


class Generator(Protocol):
    """Where the trainer's completions come from: `HFGenerator` (default) or
    `agents.grpo.served.ServedGenerator` (an OpenAI-compatible server such as vLLM)."""

    def sample(
        self, trainer: GRPOTrainer, prompts: list[list[int]], n: int, temperature: float
    ) -> list[list[int]]:
        """``n`` completions per prompt as token ids of ``trainer.tokenizer``, prompt-major
        (row ``i * n + j`` is sample ``j`` of prompt ``i``), sampled from ``trainer.model``'s
        current weights (greedy when ``temperature`` is 0). A completion ends with EOS when the
        model chose it; tokens after an EOS are ignored."""
        ...


@dataclass
class Rollouts:
    """One step's samples: ``len(tasks)`` groups of ``group_size`` completions, flattened.

    Row ``i`` of every list belongs to completion ``i``; completions ``g * G ... g * G + G - 1``
    form group ``g``.
    """

    tasks: list[Task]  # [B]
    prompt_ids: list[list[int]]  # [B][P_i]
    completion_ids: list[list[int]]  # [B][T_i], ending with EOS when the model stopped
    texts: list[str]  # [B] decoded completions, what the Verifier receives
    truncated: list[bool]  # [B] hit max_new_tokens without EOS
    verdicts: list[Verdict] = field(default_factory=list)  # [B]

    @property
    def rewards(self) -> list[float]:
        return [verdict.reward for verdict in self.verdicts]


class GenerationError(PolicyError):
    """The generator raised while producing a chunk of a step; the message names the step and
    the chunk, and the generator's own error is the ``__cause__``.

    Verification already started for earlier chunks has finished when this is raised (no thread
    is left running), and with ``reuse_verdicts`` their verdicts are in the trainer's cache.
    """


@dataclass(frozen=True)
class EvalResult:
    """Pass rate of sampled (or greedy) completions on a task set, with the outcome counts."""

    pass_rate: float
    samples: int
    outcomes: dict[str, int]


@dataclass
class _Timer:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started


class GRPOTrainer:
    """Trains a causal LM with GRPO on tasks whose reward is the Verifier's verdict.

    Args:
        config: The hyper-parameters.
        model: A Hugging Face causal LM (``PreTrainedModel``), already on its device. With
            ``config.lora`` it is wrapped in LoRA adapters here.
        tokenizer: Its tokenizer; needs an EOS token.
        tasks: Training tasks (a `TaskSet` or any sequence of `Task`).
        verifier: A `Verifier` or any object with its ``verify_many`` (a Ray verifier).
        eval_tasks: Held-out tasks for the periodic pass@1; None for no evaluation.
        out_dir: Where metrics, checkpoints and the final model go; None writes nothing.
        echo: Where progress lines go (``print`` by default; a no-op to silence).
        generator: Where completions come from; None is `HFGenerator` (the model's own
            ``generate``).

    Example (``model``, ``tokenizer`` and ``verifier`` built beforehand)::

        trainer = GRPOTrainer(GRPOConfig(steps=50), model, tokenizer, load_tasks("bundled"),
                              verifier, out_dir="runs/grpo")
        trainer.train()
    """

    def __init__(
        self,
        config: GRPOConfig,
        model: Any,
        tokenizer: Any,
        tasks: Sequence[Task] | Any,
        verifier: VerifierLike,
        *,
        eval_tasks: Sequence[Task] | Any | None = None,
        out_dir: str | None = None,
        echo: Callable[[str], None] = print,
        generator: Generator | None = None,
    ) -> None:
        if not isinstance(config, GRPOConfig):
            raise TypeError(f"config: expected GRPOConfig, got {type(config).__name__}")
        self.config = config
        self.tasks = _task_list(tasks, "tasks")
        self.eval_tasks = _task_list(eval_tasks, "eval_tasks") if eval_tasks is not None else []
        if not callable(getattr(verifier, "verify_many", None)):
            raise TypeError(
                f"verifier: expected a Verifier or an object with verify_many, "
                f"got {type(verifier).__name__}"
            )
        self.verifier = verifier
        self.tokenizer = _checked_tokenizer(tokenizer)
        self.model = _prepare_model(model, config)
        self.device = next(self.model.parameters()).device
        self.bf16 = _use_bf16(config.precision, self.device)
        self.reference = _reference_model(self.model, config)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        self.reduce = LOSS_REDUCTIONS[config.loss_type]
        self.out_dir = out_dir
        self.echo = echo
        self.generator: Generator = generator if generator is not None else HFGenerator()
        self.step = 0
        self._verdict_cache: dict[tuple[str, str], Verdict] = {}
        self._logger: MetricsLogger | None = None

    # -- the loop ---------------------------------------------------------------------------

    def train(
        self, on_step: Callable[[dict[str, float | None]], None] | None = None
    ) -> dict[str, float | None]:
        """Run steps until ``config.steps``; return the last step's metrics.

        Args:
            on_step: Called with each step's metrics after they are logged.
        """
        metrics: dict[str, float | None] = {}
        try:
            while self.step < self.config.steps:
                metrics = self.train_step()
                self._after_step(metrics)
                if on_step is not None:
                    on_step(metrics)
            if self.out_dir is not None:
                self.save_model(os.path.join(self.out_dir, "final"))
        finally:
            if self._logger is not None:
                self._logger.close()
                self._logger = None
        return metrics

    def train_step(self) -> dict[str, float | None]:
        """One GRPO step: sample, generate, verify, update. Returns its metrics."""
        timer = _Timer()
        started = time.perf_counter()
        tasks = self.sample_tasks(self.step)
        rollouts = self.generate_and_verify(tasks, self.config.group_size, seconds=timer.seconds)
        with timer("optimization"):
            losses = self.optimize(rollouts)
        self.step += 1
        return self._step_metrics(rollouts, losses, timer.seconds, time.perf_counter() - started)

    def _after_step(self, metrics: dict[str, float | None]) -> None:
        config = self.config
        last = self.step == config.steps
        if self.eval_tasks and (last or (config.eval_every and self.step % config.eval_every == 0)):
            metrics["eval/pass@1"] = self.evaluate(self.eval_tasks, config.eval_samples).pass_rate
        if self.step % config.log_every == 0 or last:
            self.echo(_progress_line(self.step, config.steps, metrics))
        if self.out_dir is None:
            return
        self._metrics_logger().write(self.step, metrics)
        if last or (config.save_every and self.step % config.save_every == 0):
            self.save_checkpoint(checkpoint.step_directory(self.out_dir, self.step))

    # -- sampling ---------------------------------------------------------------------------

    def sample_tasks(self, step: int) -> list[Task]:
        """The tasks of ``step``: a pure function of the seed and the step (resumes repeat it)."""
        rng = random.Random(f"{self.config.seed}:{step}")
        count = self.config.prompts_per_step
        if count <= len(self.tasks):
            return rng.sample(self.tasks, count)
        return [rng.choice(self.tasks) for _ in range(count)]

    def prompt_text(self, task: Task) -> str:
        """What the model sees: the chat template over system + instruction + prompt when the
        tokenizer has one (and ``use_chat_template``), else the raw prompt to continue."""
        if not self._uses_chat_template():
            return task.prompt
        return self.tokenizer.apply_chat_template(
            task_messages(task), tokenize=False, add_generation_prompt=True
        )

    def _uses_chat_template(self) -> bool:
        return self.config.use_chat_template and bool(
            getattr(self.tokenizer, "chat_template", None)
        )

    def generate_and_verify(
        self,
        tasks: Sequence[Task],
        n: int,
        *,
        temperature: float | None = None,
        seconds: dict[str, float] | None = None,
    ) -> Rollouts:
        """``n`` completions per task and their verdicts (``rollouts.verdicts``), in order.

        With ``config.pipeline`` each generation chunk goes to the verifier as soon as it is
        decoded, and the verifier's workers run it while the next chunk generates; this returns
        when the last verdict is in. Without, everything is verified after generation ends.

        Args:
            seconds: Where the timings go, added to what is there: ``generation`` (the
                generation loop), ``verification`` (wall time during which any verification
                ran) and ``verification_hidden`` (the part of it that overlapped generation).
        """
        pipelined = self.config.pipeline
        cache = self._verdict_cache if self.config.reuse_verdicts else None
        with VerificationPipeline(self.verifier, cache, background=pipelined) as pipeline:
            started = time.perf_counter()
            on_chunk = pipeline.submit if pipelined else None
            rollouts = self.generate(tasks, n, temperature=temperature, on_chunk=on_chunk)
            generated = time.perf_counter()
            if not pipelined:
                pipeline.submit(list(zip(rollouts.tasks, rollouts.texts, strict=True)))
            rollouts.verdicts = pipeline.finish()
        if seconds is not None:
            seconds["generation"] += generated - started
            seconds["verification"] += pipeline.busy_seconds()
            seconds["verification_hidden"] += pipeline.busy_seconds(started, generated)
        return rollouts

    @torch.no_grad()
    def generate(
        self,
        tasks: Sequence[Task],
        n: int,
        *,
        temperature: float | None = None,
        on_chunk: Callable[[list[tuple[Task, str]]], None] | None = None,
    ) -> Rollouts:
        """``n`` completions per task from the current policy (greedy when temperature is 0).

        Args:
            on_chunk: Called with each chunk's ``(task, completion text)`` pairs as soon as the
                chunk is decoded, before the next one generates.

        Raises:
            GenerationError: The generator raised; the message names the step and the chunk.
        """
        temperature = self.config.temperature if temperature is None else temperature
        rollouts = Rollouts([], [], [], [], [])
        self.model.eval()
        size = self.config.generation_batch_size
        chunks = -(-len(tasks) // size)
        for index, start in enumerate(range(0, len(tasks), size)):
            chunk, first = list(tasks[start : start + size]), len(rollouts.texts)
            try:
                self._generate_chunk(chunk, n, temperature, rollouts)
            except Exception as error:
                raise GenerationError(
                    f"step {self.step}: the generator failed on chunk {index + 1} of {chunks} "
                    f"(prompts {start + 1}-{start + len(chunk)} of {len(tasks)}): "
                    f"{type(error).__name__}: {error}"
                ) from error
            if on_chunk is not None:
                on_chunk(list(zip(rollouts.tasks[first:], rollouts.texts[first:], strict=True)))
        return rollouts

    def _generate_chunk(
        self, tasks: list[Task], n: int, temperature: float, rollouts: Rollouts
    ) -> None:
        texts = [self.prompt_text(task) for task in tasks]
        add_special = not self._uses_chat_template()  # a chat template brings its own
        encoded = self.tokenizer(texts, padding=True, add_special_tokens=add_special)
        prompts = [
            [token for token, keep in zip(ids, mask, strict=True) if keep]
            for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
        ]
        samples = self.generator.sample(self, prompts, n, temperature)  # [len(tasks) * n]
        for row, tokens in enumerate(samples):
            completion, truncated = self._cut_at_eos(tokens)
            rollouts.tasks.append(tasks[row // n])
            rollouts.prompt_ids.append(prompts[row // n])
            rollouts.completion_ids.append(completion)
            rollouts.truncated.append(truncated)
            rollouts.texts.append(self._decode(completion))

    def _cut_at_eos(self, tokens: list[int]) -> tuple[list[int], bool]:
        eos = self.tokenizer.eos_token_id
        if eos in tokens:
            return tokens[: tokens.index(eos) + 1], False  # EOS is an action: the model chose it
        return tokens, True

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    # -- rewards ----------------------------------------------------------------------------

    def verify(self, rollouts: Rollouts) -> list[Verdict]:
        """Verdicts for every completion, in order, through the verifier (in parallel), with
        ``reuse_verdicts`` only the pairs not verified before this run."""
        cache = self._verdict_cache if self.config.reuse_verdicts else None
        with VerificationPipeline(self.verifier, cache, background=False) as pipeline:
            pipeline.submit(list(zip(rollouts.tasks, rollouts.texts, strict=True)))
            return pipeline.finish()

    # -- optimisation -----------------------------------------------------------------------

    def optimize(self, rollouts: Rollouts) -> dict[str, float]:
        """``iterations`` passes of clipped policy-gradient updates over ``rollouts``."""
        config = self.config
        rewards = torch.tensor(rollouts.rewards, dtype=torch.float32).view(-1, config.group_size)
        advantages = group_advantages(rewards, config.advantage_scale).view(-1)  # [B]
        batch = _pad_batch(rollouts, self.tokenizer.pad_token_id)
        frozen = self._frozen_log_probs(batch)
        sums: dict[str, float] = defaultdict(float)
        order_rng = torch.Generator().manual_seed(config.seed * 1_000_003 + self.step)
        for _ in range(config.iterations):
            order = torch.randperm(len(advantages), generator=order_rng)
            for start in range(0, len(order), config.optimizer_batch):
                rows = order[start : start + config.optimizer_batch]
                self._optimizer_step(batch, rows, advantages, frozen, sums)
        tokens = max(sums.pop("tokens"), 1.0)
        updates = max(sums.pop("updates"), 1.0)
        return {
            "losses/loss": sums["loss"] / updates,
            "losses/grad_norm": sums["grad_norm"] / updates,
            **{f"losses/{name}": sums[name] / tokens for name in _TOKEN_METRICS},
        }

    def _frozen_log_probs(self, batch: _Batch) -> dict[str, Tensor | None]:
        """Log-probs of the sampling policy (and the reference), computed before any update.

        With one pass and one optimizer step per batch the policy cannot move before it is
        evaluated, so the old log-probs are the current ones, detached: one forward pass saved.
        """
        single_update = self.config.iterations == 1 and self.config.batch_size == (
            self.config.optimizer_batch
        )
        old = None if single_update else self._log_probs_no_grad(self.model, batch)
        ref = self._reference_log_probs(batch) if self.config.beta > 0 else None
        return {"old": old, "ref": ref}

    def _optimizer_step(
        self,
        batch: _Batch,
        rows: Tensor,
        advantages: Tensor,
        frozen: dict[str, Tensor | None],
        sums: dict[str, float],
    ) -> None:
        config = self.config
        counts = {
            "sequences": len(rows),
            "tokens": int(batch.mask[rows].sum()),
            "max_tokens": config.max_new_tokens,
        }
        self.model.train(config.gradient_checkpointing)  # dropout only when checkpointing needs it
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, self.step)
        for micro in rows.split(config.micro_batch_size):
            loss = self._micro_batch_loss(batch, micro, advantages, frozen, counts, sums)
            loss.backward()
            sums["loss"] += float(loss.detach())
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm or float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        sums["grad_norm"] += float(norm)
        sums["updates"] += 1

    def _micro_batch_loss(
        self,
        batch: _Batch,
        rows: Tensor,
        advantages: Tensor,
        frozen: dict[str, Tensor | None],
        counts: dict[str, int],
        sums: dict[str, float],
    ) -> Tensor:
        config = self.config
        mask = batch.mask[rows].to(self.device)  # [b, T]
        logits = self._completion_logits(self.model, batch, rows)  # [b, T, V]
        log_probs = token_log_probs(logits, batch.completions[rows].to(self.device))
        old = log_probs.detach() if frozen["old"] is None else frozen["old"][rows].to(self.device)
        loss, clipped = clipped_surrogate(
            log_probs,
            old,
            advantages[rows].to(self.device),
            config.epsilon_low,
            config.epsilon_high,
        )
        if frozen["ref"] is not None:
            kl_ref = kl_k3(log_probs, frozen["ref"][rows].to(self.device))
            loss = loss + config.beta * kl_ref
            sums["kl_ref"] += float((kl_ref.detach() * mask).sum())
        with torch.no_grad():
            sums["tokens"] += float(mask.sum())
            sums["clip_fraction"] += float((clipped.float() * mask).sum())
            # KL(sampling policy || current) from samples of the sampling policy: PPO's
            # (ratio - 1) - log(ratio), which is k3 with the roles of the two swapped.
            sums["approx_kl"] += float((kl_k3(old, log_probs.detach()) * mask).sum())
            sums["entropy"] += float((token_entropy(logits.detach()) * mask).sum())
        return self.reduce(loss, mask.to(loss.dtype), **counts)

    def _completion_logits(self, model: Any, batch: _Batch, rows: Tensor) -> Tensor:
        """``[b, T, V]`` logits at the positions that predict each completion token."""
        ids = torch.cat([batch.prompts[rows], batch.completions[rows]], dim=1).to(self.device)
        attention = torch.cat([batch.prompt_mask[rows], batch.mask[rows]], dim=1).to(self.device)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # left padding shifts nothing
        with self._autocast():
            logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
        width = batch.prompts.shape[1]
        # Sampling divided the logits by the temperature; the ratio must use the same policy.
        return logits[:, width - 1 : -1, :].float() / self.config.temperature

    @torch.no_grad()
    def _log_probs_no_grad(self, model: Any, batch: _Batch) -> Tensor:
        model.eval()
        parts = []
        for rows in torch.arange(len(batch.mask)).split(self.config.micro_batch_size):
            logits = self._completion_logits(model, batch, rows)
            parts.append(token_log_probs(logits, batch.completions[rows].to(self.device)).cpu())
        return torch.cat(parts)  # [B, T]

    def _reference_log_probs(self, batch: _Batch) -> Tensor:
        if self.reference is not None:
            return self._log_probs_no_grad(self.reference, batch)
        with self.model.disable_adapter():  # LoRA: the base model is the reference
            return self._log_probs_no_grad(self.model, batch)

    def _autocast(self) -> Any:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    # -- evaluation, logging, checkpoints ---------------------------------------------------

    def evaluate(
        self, tasks: Sequence[Task] | Any, samples: int = 1, *, temperature: float = 0.0
    ) -> EvalResult:
        """Pass rate of ``samples`` completions per task: an estimate of pass@1.

        Greedy decoding when ``temperature`` is 0 (then one sample per task is enough).
        """
        task_list = _task_list(tasks, "tasks")
        verdicts = self.generate_and_verify(task_list, samples, temperature=temperature).verdicts
        counts = Counter(verdict.outcome.value for verdict in verdicts)
        passed = sum(verdict.passed for verdict in verdicts)
        return EvalResult(passed / len(verdicts), len(verdicts), dict(counts))

    def _step_metrics(
        self,
        rollouts: Rollouts,
        losses: dict[str, float],
        seconds: dict[str, float],
        step_seconds: float,
    ) -> dict[str, float | None]:
        rewards = torch.tensor(rollouts.rewards).view(-1, self.config.group_size)  # [N, G]
        lengths = [len(ids) for ids in rollouts.completion_ids]
        outcomes = Counter(verdict.outcome.value for verdict in rollouts.verdicts)
        return {
            "train/reward_mean": float(rewards.mean()),
            "train/pass_rate": sum(v.passed for v in rollouts.verdicts) / len(rollouts.verdicts),
            "train/zero_spread_groups": float(
                (rewards.max(1).values == rewards.min(1).values).float().mean()
            ),
            "train/completion_length": sum(lengths) / len(lengths),
            "train/truncated_fraction": sum(rollouts.truncated) / len(rollouts.truncated),
            **{f"outcomes/{outcome.value}": outcomes[outcome.value] for outcome in Outcome},
            **losses,
            "time/generation_s": seconds["generation"],
            "time/verification_s": seconds["verification"],
            "time/verification_hidden_s": seconds["verification_hidden"],
            "time/optimization_s": seconds["optimization"],
            "time/step_s": step_seconds,
            "time/generated_tokens_per_s": sum(lengths) / max(seconds["generation"], 1e-9),
            "time/programs_per_s": len(lengths) / max(seconds["verification"], 1e-9),
            "eval/pass@1": None,
        }

    def _metrics_logger(self) -> MetricsLogger:
        if self._logger is None:
            assert self.out_dir is not None
            self._logger = MetricsLogger(self.out_dir, METRICS, tensorboard=self.config.tensorboard)
        return self._logger

    def save_checkpoint(self, directory: str) -> None:
        """Save what resuming needs: trainable weights, optimizer, step, RNG states, config."""
        checkpoint.save(directory, self.model, self.optimizer, self.step, self.config)

    def resume(self, directory: str) -> None:
        """Continue from a checkpoint written by `save_checkpoint` (same model and config)."""
        self.step = checkpoint.load(directory, self.model, self.optimizer)

    def save_model(self, directory: str) -> None:
        """Write the trained model (LoRA: the adapters) and tokenizer with ``save_pretrained``."""
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)


class HFGenerator:
    """Samples with the trained model's own Hugging Face ``generate`` (the default `Generator`)."""

    def sample(
        self, trainer: GRPOTrainer, prompts: list[list[int]], n: int, temperature: float
    ) -> list[list[int]]:
        """See `Generator.sample`."""
        pad = trainer.tokenizer.pad_token_id
        width = max(len(ids) for ids in prompts)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts])
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": trainer.config.top_p}
            if temperature > 0
            else {"do_sample": False}
        )
        with torch.no_grad(), trainer._autocast():
            output = trainer.model.generate(
                input_ids=input_ids.to(trainer.device),
                attention_mask=attention.to(trainer.device),
                **sampling,
                max_new_tokens=trainer.config.max_new_tokens,
                num_return_sequences=n,
                pad_token_id=pad,
                eos_token_id=trainer.tokenizer.eos_token_id,
            )
        return [sequence[width:] for sequence in output.tolist()]


_TOKEN_METRICS = ("clip_fraction", "approx_kl", "kl_ref", "entropy")


@dataclass(frozen=True)
class _Batch:
    """Rollouts as tensors: prompts left-padded to P, completions right-padded to T."""

    prompts: Tensor  # [B, P]
    prompt_mask: Tensor  # [B, P]
    completions: Tensor  # [B, T]
    mask: Tensor  # [B, T], 1 on real completion tokens


def _pad_batch(rollouts: Rollouts, pad_id: int) -> _Batch:
    width = max(len(ids) for ids in rollouts.prompt_ids)
    length = max(1, *(len(ids) for ids in rollouts.completion_ids))
    prompts = [[pad_id] * (width - len(ids)) + ids for ids in rollouts.prompt_ids]
    prompt_mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids in rollouts.prompt_ids]
    completions = [ids + [pad_id] * (length - len(ids)) for ids in rollouts.completion_ids]
    mask = [[1] * len(ids) + [0] * (length - len(ids)) for ids in rollouts.completion_ids]
    return _Batch(
        torch.tensor(prompts),
        torch.tensor(prompt_mask),
        torch.tensor(completions),
        torch.tensor(mask),
    )


def learning_rate(config: GRPOConfig, step: int) -> float:
    """The learning rate of 0-based ``step``: a pure function of the step, so resuming needs no
    scheduler state."""
    if config.lr_schedule == "linear":
        return config.learning_rate * (1.0 - step / config.steps)
    return config.learning_rate


def _task_list(tasks: Any, name: str) -> list[Task]:
    values = list(tasks.values()) if hasattr(tasks, "values") else list(tasks)
    if not values:
        raise ValueError(f"{name}: expected at least one Task, got none")
    for task in values:
        if not isinstance(task, Task):
            raise TypeError(f"{name}: expected Task items, got {type(task).__name__}")
    return values


def _checked_tokenizer(tokenizer: Any) -> Any:
    if getattr(tokenizer, "eos_token_id", None) is None:
        raise ValueError("tokenizer: expected a tokenizer with an EOS token, got none set")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is masked out; any id will do
    tokenizer.padding_side = "left"  # generation continues each prompt from its last token
    return tokenizer


def _prepare_model(model: Any, config: GRPOConfig) -> Any:
    if config.gradient_checkpointing:
        # Generation runs in eval mode and keeps its KV cache; only training steps recompute.
        model.gradient_checkpointing_enable()
        if config.lora:
            model.enable_input_require_grads()  # frozen embeddings must still pass gradients
    if not config.lora:
        return model
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as error:
        raise ImportError(f"LoRA training needs peft: {PEFT_INSTALL}") from error
    targets: Any = list(config.lora_target_modules)
    if targets == ["all-linear"]:
        targets = "all-linear"
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _reference_model(model: Any, config: GRPOConfig) -> Any:
    """A frozen copy of the initial model for the KL term; None when LoRA (the base is the
    reference) or when there is no KL term."""
    if config.beta == 0 or config.lora:
        return None
    reference = copy.deepcopy(model)
    reference.requires_grad_(False)
    return reference.eval()


def _use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def _progress_line(step: int, steps: int, metrics: dict[str, float | None]) -> str:
    def value(name: str) -> float:
        return float(metrics.get(name) or 0.0)

    line = (
        f"step {step}/{steps}  pass rate {value('train/pass_rate'):.2f}  "
        f"no-signal groups {value('train/zero_spread_groups'):.2f}  "
        f"entropy {value('losses/entropy'):.3f}  clip {value('losses/clip_fraction'):.3f}  "
        f"kl {value('losses/approx_kl'):.4f}  "
        f"gen {value('time/generation_s'):.2f}s  verify {value('time/verification_s'):.2f}s"
    )
    if metrics.get("eval/pass@1") is not None:
        line += f"  eval pass@1 {value('eval/pass@1'):.2f}"
    return line
