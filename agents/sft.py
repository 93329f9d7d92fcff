"""Supervised fine-tuning on verified demonstrations: ``qsandbox train sft``.

The second stage of the recipe (distil, SFT, GRPO): fine-tune a causal LM on the kept set that
``qsandbox distill`` writes (``train.jsonl``: chat ``messages``), with TRL's ``SFTTrainer``.

- **Loss on the assistant turn only.** Each chat becomes a prompt (every message but the last)
  and a completion (the last, the assistant's answer), rendered with the model's own chat
  template; TRL masks the prompt out of the loss. This works with any chat template, not only
  those with ``{% generation %}`` markers. Records with plain ``prompt``/``completion`` strings
  (a base model's continuation, as in the GRPO demo) are taken as they are.
- **Full or LoRA.** With ``lora``, the adapter is merged into the base (``merge``, the default)
  and a plain model is saved; without merging, only the adapter is saved, which
  ``transformers`` (and so ``bench --agent hf:DIR``) loads over its base, but which
  ``train grpo --model`` should not be given (it would add a second adapter: merge first).
- **Precision.** bf16 where the GPU supports it (``precision="auto"``), else fp32.
- **Output.** ``out`` holds the model and tokenizer (``save_pretrained``), ``sft_options.json``
  and ``sft_log.json`` (the trainer's log: loss per logging step), and nothing else: that is the
  directory ``qsandbox train grpo --model DIR`` and ``qsandbox bench --agent hf:DIR`` take.

torch, transformers, trl, peft and datasets are imported only when `run_sft` runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SFTError",
    "SFTOptions",
    "SFTResult",
    "configure_sft",
    "load_examples",
    "main_sft",
    "run_sft",
]

INSTALL = 'pip install "qsandbox[grpo]"'
PRECISIONS = ("auto", "bf16", "fp32")


class SFTError(Exception):
    """Bad data, a model that cannot be loaded, or a tokenizer without a chat template; the
    message says what and how to fix it."""


@dataclass(frozen=True)
class SFTOptions:
    """One supervised fine-tuning run.

    Attributes:
        data: ``train.jsonl`` (or the ``qsandbox distill`` run directory holding it).
        model: The model to start from: a hub id or a ``save_pretrained`` directory.
        out: Where the fine-tuned model is written.
        lora: Train a LoRA adapter instead of every weight.
        merge: LoRA only: merge the adapter into the base before saving.
        lora_rank: LoRA rank.
        lora_alpha: LoRA scaling numerator.
        lora_target_modules: Module names the adapter wraps (``all-linear``: every linear layer).
        epochs: Passes over the data.
        max_steps: Stop after this many optimizer steps (overrides ``epochs``).
        learning_rate: Peak learning rate (default 1e-5 full, 1e-4 LoRA).
        batch_size: Examples per device per forward pass.
        gradient_accumulation_steps: Forward passes per optimizer step.
        max_length: Longest tokenised example; longer ones are cut (None: no limit).
        precision: ``auto`` (bf16 on a GPU that has it), ``bf16`` or ``fp32``.
        device: ``cpu`` to train on the CPU even with a GPU present (default: the GPU if any).
        chat_template: A Jinja chat template for a tokenizer that has none (a base model).
        seed: Seeds data order and initialisation of the adapter.
        logging_steps: Optimizer steps between log lines.
    """

    data: str
    model: str
    out: str
    lora: bool = False
    merge: bool = True
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_target_modules: Sequence[str] = ("all-linear",)
    epochs: float = 2.0
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 4
    gradient_accumulation_steps: int = 4
    max_length: int | None = 4096
    precision: str = "auto"
    device: str | None = None
    chat_template: str | None = None
    seed: int = 0
    logging_steps: int = 10

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision: expected one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        for name in ("lora_rank", "lora_alpha", "batch_size", "gradient_accumulation_steps"):
            _positive_int(name, getattr(self, name))
        for name in ("max_steps", "max_length", "logging_steps"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        if not 0 < self.epochs < float("inf"):
            raise ValueError(f"epochs: expected a positive number, got {self.epochs!r}")
        if self.learning_rate is not None and not 0 < self.learning_rate < float("inf"):
            raise ValueError(
                f"learning_rate: expected a positive number, got {self.learning_rate!r}"
            )


@dataclass(frozen=True)
class SFTResult:
    """What a run produced: the model directory and the training loss."""

    model_dir: str
    steps: int
    train_loss: float
    examples: int


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def run_sft(options: SFTOptions) -> SFTResult:
    """Fine-tune ``options.model`` on ``options.data``; write the model to ``options.out``.

    Raises:
        SFTError: Data that is missing, empty or not chat/prompt-completion records; a model
            that does not load; a tokenizer with no chat template for chat data.
    """
    torch, transformers, trl = _imports()
    dataset = load_examples(options.data)
    tokenizer = _tokenizer(transformers, options, chat=isinstance(dataset[0]["prompt"], list))
    bf16 = _bf16(torch, options)
    model = _model(transformers, torch, options, bf16)
    trainer = trl.SFTTrainer(
        model=model,
        args=_sft_config(trl, options, bf16),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_peft_config(options),
    )
    output = trainer.train()
    _save(trainer, tokenizer, options)
    return SFTResult(options.out, output.global_step, float(output.training_loss), len(dataset))


def load_examples(path: str) -> Any:
    """The training examples as a ``datasets.Dataset`` of ``prompt``/``completion`` rows: chat
    messages split before the last (assistant) turn, or plain strings kept as they are.

    Raises:
        SFTError: No such file, no rows, or rows of another shape.
    """
    import datasets

    if os.path.isdir(path):
        path = os.path.join(path, "train.jsonl")
    if not os.path.isfile(path):
        raise SFTError(f"--data {path}: no such file; give qsandbox distill's train.jsonl")
    try:
        data = datasets.load_dataset("json", data_files=path, split="train")
    except (ValueError, OSError, datasets.exceptions.DatasetGenerationError) as error:
        raise SFTError(f"--data {path}: cannot be read as JSON lines: {error}") from None
    if not data.num_rows:
        raise SFTError(f"--data {path}: no examples (did the distillation keep any?)")
    if "messages" in data.column_names:
        _check_chats(data["messages"], path)
        data = data.map(_split_chat, remove_columns=data.column_names)
    elif not {"prompt", "completion"} <= set(data.column_names):
        raise SFTError(
            f"--data {path}: expected chat 'messages' (qsandbox distill's train.jsonl) or "
            f"'prompt' and 'completion' columns, got {', '.join(data.column_names)}"
        )
    return data.select_columns(["prompt", "completion"])


def _check_chats(chats: Sequence[Any], path: str) -> None:
    for line, messages in enumerate(chats, start=1):
        if not messages or messages[-1].get("role") != "assistant" or len(messages) < 2:
            raise SFTError(
                f"--data {path} line {line}: expected chat messages ending in an assistant "
                "turn after at least one prompt message"
            )


def _split_chat(example: dict[str, Any]) -> dict[str, Any]:
    messages = [{"role": m["role"], "content": m["content"]} for m in example["messages"]]
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def _imports() -> tuple[Any, Any, Any]:
    try:
        import peft  # noqa: F401 - needed for LoRA; checked here so the error comes first
        import torch
        import transformers
        import trl
    except ImportError as error:
        raise SFTError(f"train sft needs torch, transformers, trl and peft: {INSTALL}") from error
    return torch, transformers, trl


def _tokenizer(transformers: Any, options: SFTOptions, chat: bool) -> Any:
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(options.model)
    except (OSError, ValueError) as error:
        raise SFTError(f"--model {options.model}: {error}") from None
    if options.chat_template:
        with open(options.chat_template, encoding="utf-8") as file:
            tokenizer.chat_template = file.read()
    if chat and not getattr(tokenizer, "chat_template", None):
        raise SFTError(
            f"--model {options.model}: the tokenizer has no chat template, and the data is chat "
            "messages; start from an instruct model or pass --chat-template FILE (Jinja)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _bf16(torch: Any, options: SFTOptions) -> bool:
    cuda = torch.cuda.is_available() and options.device != "cpu"
    if options.precision == "bf16" and not (cuda and torch.cuda.is_bf16_supported()):
        raise SFTError("--precision bf16: needs a GPU with bf16 (use auto or fp32)")
    return options.precision != "fp32" and cuda and torch.cuda.is_bf16_supported()


def _model(transformers: Any, torch: Any, options: SFTOptions, bf16: bool) -> Any:
    # LoRA keeps the frozen base in bf16; full training keeps fp32 master weights under autocast.
    dtype = torch.bfloat16 if bf16 and options.lora else torch.float32
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(options.model, dtype=dtype)
    except (OSError, ValueError) as error:
        raise SFTError(f"--model {options.model}: {error}") from None


def _sft_config(trl: Any, options: SFTOptions, bf16: bool) -> Any:
    rate = options.learning_rate or (1e-4 if options.lora else 1e-5)
    return trl.SFTConfig(
        output_dir=os.path.join(options.out, "checkpoints"),
        num_train_epochs=options.epochs,
        max_steps=options.max_steps or -1,
        learning_rate=rate,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        max_length=options.max_length,
        completion_only_loss=True,
        bf16=bf16,
        use_cpu=options.device == "cpu",
        seed=options.seed,
        logging_steps=options.logging_steps,
        save_strategy="no",
        report_to="none",
        lr_scheduler_type="cosine",
    )


def _peft_config(options: SFTOptions) -> Any:
    if not options.lora:
        return None
    import peft

    targets = list(options.lora_target_modules)
    return peft.LoraConfig(
        r=options.lora_rank,
        lora_alpha=options.lora_alpha,
        lora_dropout=0.05,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        task_type="CAUSAL_LM",
    )


def _save(trainer: Any, tokenizer: Any, options: SFTOptions) -> None:
    model = trainer.model
    if options.lora and options.merge:
        model = model.merge_and_unload()
    model.save_pretrained(options.out)
    try:
        os.rmdir(os.path.join(options.out, "checkpoints"))  # empty: nothing is saved mid-run
    except OSError:
        pass
    tokenizer.save_pretrained(options.out)
    with open(os.path.join(options.out, "sft_options.json"), "w", encoding="utf-8") as file:
        json.dump(dataclasses.asdict(options), file, indent=2, default=list)
    with open(os.path.join(options.out, "sft_log.json"), "w", encoding="utf-8") as file:
        json.dump(trainer.state.log_history, file, indent=2)


# -- the command line: `qsandbox train sft` (registered under `train` by agents.grpo.cli) ------


def configure_sft(parser: Any) -> None:
    """The options of ``qsandbox train sft``: one per `SFTOptions` field."""
    parser.add_argument("--data", required=True, help="train.jsonl, or the distill run directory")
    parser.add_argument("--model", required=True, help="hub id or save_pretrained directory")
    parser.add_argument("--out", required=True, help="where the fine-tuned model is written")
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter")
    parser.add_argument(
        "--no-merge",
        dest="merge",
        action="store_false",
        help="LoRA: save the adapter alone instead of merging it into the base",
    )
    defaults = SFTOptions(data="", model="", out="")
    for name, kind, text in (
        ("lora_rank", int, "LoRA rank"),
        ("lora_alpha", int, "LoRA alpha"),
        ("epochs", float, "passes over the data"),
        ("max_steps", int, "stop after N optimizer steps (overrides --epochs)"),
        ("learning_rate", float, "peak learning rate (1e-5 full, 1e-4 LoRA)"),
        ("batch_size", int, "examples per forward pass"),
        ("gradient_accumulation_steps", int, "forward passes per optimizer step"),
        ("max_length", int, "longest tokenised example"),
        ("seed", int, "seed"),
        ("logging_steps", int, "optimizer steps between log lines"),
    ):
        default = getattr(defaults, name)
        flags = ["--" + name.replace("_", "-")]
        if name == "lora_rank":
            flags.append("--lora-r")  # the old spelling; train grpo says --lora-rank
        parser.add_argument(*flags, type=kind, default=default, help=f"{text} ({default})")
    parser.add_argument(
        "--lora-target-modules",
        default="all-linear",
        metavar="A,B",
        help="modules the adapter wraps (all-linear)",
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--device", choices=("cpu",), help="cpu: train on the CPU even with a GPU")
    parser.add_argument("--chat-template", metavar="FILE", help="Jinja template for a base model")


def main_sft(args: Any) -> int:
    """Run ``qsandbox train sft``; return the exit code."""
    from qsandbox_env.cli import CLIError

    names = {field.name for field in dataclasses.fields(SFTOptions)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values["lora_target_modules"] = tuple(
        name.strip() for name in args.lora_target_modules.split(",") if name.strip()
    )
    try:
        result = run_sft(SFTOptions(**values))
    except (SFTError, ValueError) as error:
        raise CLIError(str(error)) from None
    print(
        f"fine-tuned on {result.examples} examples, {result.steps} steps, training loss "
        f"{result.train_loss:.4f}; model: {result.model_dir} (give it to train grpo --model, or "
        f"bench --agent hf:{result.model_dir})"
    )
    return 0
