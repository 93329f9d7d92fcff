"""The ``hf:<path-or-hub-id>`` policy: a local Hugging Face causal language model.

The model and tokenizer come from ``from_pretrained`` (a local directory, or a hub id downloaded
and cached by transformers as usual). Prompts are batched with left padding. When the tokenizer
has a chat template, the query's chat messages go through it (with the generation prompt);
otherwise the model continues the plain prompt, as a base model does.

Defaults chosen from the machine, each overridable: device ``cuda`` > ``mps`` > ``cpu``; dtype
``bfloat16`` on a GPU that supports it, else ``float32``. Sampling honours temperature (0 means
greedy: one decode, copied ``n`` times), top-p, max new tokens, the seed (``torch.manual_seed``
before each batch) and stop strings (generation stops at them; the text is cut before them).

torch and transformers are imported when a model is built, never at module import; missing, they
raise ``ImportError`` with the ``pip install`` command. This module never runs generated code.
"""

from __future__ import annotations

import inspect
import pathlib
from collections.abc import Sequence
from typing import Any

from agents.policies.openai_api import truncate_at_stop
from agents.policy import Policy, PolicyError, Query, SamplingParams, check_request

__all__ = ["HFPolicy", "choose_device", "choose_dtype", "make"]

INSTALL = 'pip install "qsandbox[grpo]"'
_DTYPES = ("bfloat16", "float16", "float32")


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as error:
        raise ImportError(
            f"the hf agent needs torch and transformers ({error.name} is missing): {INSTALL}"
        ) from None
    return torch, transformers


def choose_device(torch: Any, requested: str | None = None) -> str:
    """``requested`` if given, else ``cuda`` when available, else ``mps``, else ``cpu``."""
    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def choose_dtype(torch: Any, device: str, requested: str | None = None) -> Any:
    """``requested`` (``bfloat16``/``float16``/``float32``) if given; else ``bfloat16`` on a GPU
    that supports it and ``float32`` everywhere else.

    Raises:
        ValueError: An unknown dtype name.
    """
    if requested:
        if requested not in _DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(_DTYPES)}, got {requested!r}")
        return getattr(torch, requested)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


class HFPolicy(Policy):
    """Samples from a causal LM loaded with transformers.

    Args:
        model: A local directory or a Hugging Face hub id.
        device: ``cuda``, ``cuda:1``, ``mps``, ``cpu`` (default: the best available).
        dtype: ``bfloat16``, ``float16`` or ``float32`` (default: by device).
        batch_size: Prompts per ``generate`` call (each yields ``n`` sequences).
        chat: ``None`` uses the chat template when the tokenizer has one; ``True`` requires one;
            ``False`` always continues the plain prompt.
        trust_remote_code: Passed to ``from_pretrained`` (models with custom code).
    """

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
        chat: bool | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if not model:
            raise ValueError("hf agent: expected 'hf:<path-or-hub-id>', got no model")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        _check_local_path(model)
        torch, transformers = _import_torch()
        self._torch = torch
        self.name = f"hf:{model}"
        self.device = choose_device(torch, device)
        self.dtype = choose_dtype(torch, self.device, dtype)
        self.batch_size = batch_size
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                model, dtype=self.dtype, trust_remote_code=trust_remote_code
            ).to(self.device)
        except (OSError, ValueError) as error:  # missing files; a config transformers rejects
            raise PolicyError(f"hf agent: cannot load {model!r}: {error}") from None
        self.model.eval()
        self.tokenizer.padding_side = "left"  # generation appends on the right
        if self.tokenizer.pad_token is None:
            if self.tokenizer.eos_token is None:
                raise ValueError(
                    f"hf agent: the tokenizer of {model!r} has neither a pad nor an eos token"
                )
            self.tokenizer.pad_token = self.tokenizer.eos_token
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        if chat and not has_template:
            raise ValueError(f"hf agent: chat=True, but the tokenizer of {model!r} has no template")
        self.chat = has_template if chat is None else bool(chat)

    def render(self, query: Query) -> str:
        """The text the model is given for ``query``."""
        if self.chat and query.messages:
            return self.tokenizer.apply_chat_template(
                list(query.messages), add_generation_prompt=True, tokenize=False
            )
        return query.prompt

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        check_request(queries, n)
        params = params or SamplingParams()
        answers: list[list[str]] = []
        for start in range(0, len(queries), self.batch_size):
            answers.extend(
                self._generate_batch(queries[start : start + self.batch_size], n, params)
            )
        return answers

    def _generate_batch(
        self, queries: Sequence[Query], n: int, params: SamplingParams
    ) -> list[list[str]]:
        torch = self._torch
        texts = [self.render(query) for query in queries]
        # A chat template writes its own special tokens; a plain prompt gets the tokenizer's.
        inputs = self.tokenizer(
            texts, return_tensors="pt", padding=True, add_special_tokens=not self.chat
        ).to(self.device)
        greedy = params.temperature == 0
        options: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": not greedy,
            "num_return_sequences": 1 if greedy else n,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if not greedy:
            options.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            options.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        decoded = [truncate_at_stop(text, params.stop) for text in decoded]
        if greedy:
            return [[text] * n for text in decoded]
        return [decoded[i * n : (i + 1) * n] for i in range(len(queries))]

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()


def _check_local_path(model: str) -> None:
    """Refuse a spec written as a local path (``./``, ``../``, ``/``, ``~``) that is not a model
    directory, before ``from_pretrained`` reads it as a malformed hub id."""
    path = pathlib.Path(model).expanduser()
    if not model.startswith((".", "/", "~")) and not path.exists():
        return  # a hub id
    if not path.exists():
        raise PolicyError(
            f"hf agent: no model directory at {model!r} ({path.resolve()} does not exist). Give "
            "the path of a directory written by save_pretrained (config.json and weights), or a "
            "hub id such as 'hf:Qwen/Qwen2.5-Coder-1.5B-Instruct'"
        )
    saved = ("config.json", "adapter_config.json")
    if path.is_dir() and not any((path / name).is_file() for name in saved):
        raise PolicyError(
            f"hf agent: {model!r} is a directory without config.json (or a LoRA "
            "adapter_config.json), so not a saved model: point at the directory save_pretrained "
            "wrote"
        )


_OPTIONS = frozenset(inspect.signature(HFPolicy).parameters) - {"model"}


def check(argument: str, **options: Any) -> None:
    """What `HFPolicy` would refuse at once, checked without loading anything: no model, a local
    path that is not a saved model, an option it does not take, torch or transformers missing."""
    if not argument:
        raise ValueError("hf agent: expected 'hf:<path-or-hub-id>', got no model")
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise TypeError(
            f"hf agent: unknown option(s) {unknown}; expected some of {sorted(_OPTIONS)}"
        )
    batch_size = options.get("batch_size", 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    _check_local_path(argument)
    _import_torch()


def make(argument: str, **options: Any) -> HFPolicy:
    """Build the policy for ``hf:<argument>``; options as `HFPolicy` takes them."""
    return HFPolicy(argument, **options)
