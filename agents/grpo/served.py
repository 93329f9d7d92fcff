"""ServedGenerator: GRPO completions from an OpenAI-compatible server (vLLM) that serves the
LoRA adapter being trained.

A server that keeps its initial weights would sample a policy the trainer has left behind, and
the clipped ratio would compare the update with the wrong policy. So before every generation
whose weights the server has not seen yet (the first one, and the first after each training
step), this module pushes them, the way vLLM loads LoRA adapters at runtime
(https://docs.vllm.ai/en/latest/features/lora/, "Dynamically serving LoRA Adapters"):

1. the adapter is written with peft's ``save_pretrained`` to ``<adapter_dir>/step-<N>``, a path
   the server must be able to read (same filesystem, or the same path mounted there);
2. ``POST <base-url>/load_lora_adapter`` with ``{"lora_name": "qsandbox-step-<N>",
   "lora_path": <absolute path>}`` (vLLM needs ``--enable-lora`` and the environment variable
   ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, else the route is absent: HTTP 404);
3. ``POST <base-url>/unload_lora_adapter`` with ``{"lora_name": <the previous name>}``, and
   the previous adapter's folder is deleted (only the one the server samples stays on disk).

Sampling is ``POST <base-url>/completions`` with ``"model": "qsandbox-step-<N>"`` (base plus that
adapter), the prompt as the token ids the trainer built (chat template included, so the server
continues exactly the prompt the local model scores), ``n``, ``temperature``, ``top_p``,
``max_tokens`` and a ``seed``. The returned text is tokenised with the local tokenizer and
EOS is appended when the server says the model stopped (``finish_reason == "stop"``; no stop
strings are sent, so only EOS stops it). The trainer then computes the sampling policy's
log-probs with its local model, whose weights are the served adapter's, as on the Hugging Face
path. Re-tokenising text can differ from the ids the server sampled where a text has several
tokenisations; the log-probs are those of the canonical one.

This module only sends prompts and weights and reads text back; it never runs a completion.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from agents.grpo.config import GRPOConfig
from agents.policy import PolicyError

if TYPE_CHECKING:
    from agents.grpo.trainer import GRPOTrainer

__all__ = ["ADAPTER_PREFIX", "LORA_REQUIRED", "ServedGenerator", "parse_generator_spec"]

ADAPTER_PREFIX = "qsandbox-step-"
LORA_REQUIRED = (
    "lora: expected True with an openai:<model>@<url> generator, got False: the server must "
    "sample the weights being trained, and the trainer sends them as LoRA adapters that vLLM "
    "loads at runtime; full fine-tuning would need the whole model reloaded into the server "
    "every step"
)
ENABLE_RUNTIME_LORA = (
    "start vLLM with --enable-lora and the environment variable "
    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
)
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def parse_generator_spec(spec: str) -> tuple[str, str]:
    """``(model, base_url)`` from ``openai:<model>@<base-url>`` (the last ``@`` splits).

    Example:
        >>> parse_generator_spec("openai:Qwen/Qwen2.5-Coder-1.5B@http://localhost:8000/v1")
        ('Qwen/Qwen2.5-Coder-1.5B', 'http://localhost:8000/v1')
    """
    prefix, _, argument = spec.partition(":")
    model, sep, base_url = argument.rpartition("@")
    if prefix != "openai" or not sep or not model or not base_url.startswith("http"):
        raise ValueError(
            f"generator: expected hf or openai:<model>@<base-url> such as "
            f"openai:Qwen/Qwen2.5-Coder-1.5B@http://localhost:8000/v1, got {spec!r}"
        )
    return model, base_url.rstrip("/")


class ServedGenerator:
    """Samples GRPO completions from a vLLM server serving the trainer's current LoRA adapter.

    Implements the trainer's `agents.grpo.trainer.Generator` interface; pass it as
    ``GRPOTrainer(..., generator=ServedGenerator(...))``.

    Args:
        model: The base model's name on the server (``vllm serve <model>`` or its
            ``--served-model-name``); the same weights as the trainer's local model.
        base_url: The API root, such as ``http://localhost:8000/v1``.
        config: The run's config; it must train LoRA adapters.
        adapter_dir: Where adapters are written, one folder per step; the server reads them by
            this absolute path, so it must see the same filesystem.
        timeout: Seconds to wait for one response.
        concurrency: Completion requests in flight at once (one per prompt).
        max_retries: Retries of a completion request after HTTP 429/5xx or a timeout.
        api_key_env: Environment variable holding an API key (sent as a bearer token when set).

    Raises:
        ValueError: ``config.lora`` is False (`LORA_REQUIRED` says why).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        config: GRPOConfig,
        adapter_dir: str,
        *,
        timeout: float = 600.0,
        concurrency: int = 8,
        max_retries: int = 3,
        api_key_env: str = "OPENAI_API_KEY",
    ) -> None:
        if not config.lora:
            raise ValueError(LORA_REQUIRED)
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http(s):// API root, got {base_url!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.config = config
        self.adapter_dir = os.path.abspath(adapter_dir)
        self.timeout = timeout
        self.max_retries = max_retries
        self.api_key_env = api_key_env
        self.served_name: str | None = None  # the adapter the server samples now
        self.served_step: int | None = None
        self._server_checked = False
        self._requests = 0  # distinct seeds for repeated generations at one step
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="served-generator")

    @classmethod
    def from_spec(
        cls, spec: str, config: GRPOConfig, adapter_dir: str, **options: Any
    ) -> ServedGenerator:
        """Build from ``openai:<model>@<base-url>`` (`parse_generator_spec`)."""
        model, base_url = parse_generator_spec(spec)
        return cls(model, base_url, config, adapter_dir, **options)

    def close(self) -> None:
        """Stop the request threads (the last adapter stays loaded on the server)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the Generator interface ----------------------------------------------------------------

    def sample(
        self, trainer: GRPOTrainer, prompts: list[list[int]], n: int, temperature: float
    ) -> list[list[int]]:
        """``n`` completions per prompt from the server's copy of ``trainer.model``."""
        self.sync(trainer.model, trainer.step)
        bodies = [self._completion_body(ids, n, temperature, trainer.step) for ids in prompts]
        responses = list(self._pool.map(self._completions, bodies))
        return [ids for response in responses for ids in self._completion_ids(response, n, trainer)]

    # -- weight sync ----------------------------------------------------------------------------

    def sync(self, model: Any, step: int) -> None:
        """Make the server sample ``model``'s current adapter, saved as step ``step``; a no-op
        when it already does."""
        if self.served_step == step:
            return
        if not self._server_checked:
            self.check_server()
        path = os.path.join(self.adapter_dir, f"step-{step}")
        model.save_pretrained(path)
        name = f"{ADAPTER_PREFIX}{step}"
        self._load_adapter(name, path)
        if self.served_name is not None and self.served_name != name:
            self._post("unload_lora_adapter", {"lora_name": self.served_name})
            # One adapter per step would fill the disk over a long run (tens of MB each).
            previous = os.path.join(self.adapter_dir, f"step-{self.served_step}")
            shutil.rmtree(previous, ignore_errors=True)
        self.served_name, self.served_step = name, step

    def check_server(self) -> None:
        """Check that the server is reachable and serves the base model ``self.model``.

        Raises:
            PolicyError: Unreachable, or the model name is not among the served ones.
        """
        listing = json.loads(self._request("GET", "models", None))
        served = [entry.get("id") for entry in listing.get("data", []) if isinstance(entry, dict)]
        if self.model not in served:
            raise PolicyError(
                f"{self.base_url}: expected the server to serve the base model {self.model!r} "
                f"(the model being trained), got {served}; start vLLM with that model or name "
                "it in --generator openai:<model>@<url>"
            )
        self._server_checked = True

    def _load_adapter(self, name: str, path: str) -> None:
        body = {"lora_name": name, "lora_path": path}
        try:
            self._post("load_lora_adapter", body)
        except _HTTPFailure as failure:
            if failure.status == 404:
                raise PolicyError(
                    f"{failure.url}: HTTP 404: the server cannot load LoRA adapters at runtime; "
                    f"{ENABLE_RUNTIME_LORA}"
                ) from None
            if failure.status != 400 or "already" not in failure.detail:
                raise PolicyError(str(failure)) from None
            # A name left loaded by an earlier run on the same server: replace it.
            self._post("unload_lora_adapter", {"lora_name": name})
            self._post("load_lora_adapter", body)

    # -- sampling -------------------------------------------------------------------------------

    def _completion_body(
        self, prompt: list[int], n: int, temperature: float, step: int
    ) -> dict[str, Any]:
        self._requests += 1
        seed = random.Random(f"{self.config.seed}:{step}:{self._requests}").randrange(2**31)
        return {
            "model": self.served_name,
            "prompt": prompt,
            "n": n,
            "temperature": temperature,
            "top_p": self.config.top_p if temperature > 0 else 1.0,
            "max_tokens": self.config.max_new_tokens,
            "seed": seed,
        }

    def _completions(self, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(self.max_retries + 1):
            try:
                response = json.loads(self._post("completions", body))
                break
            except _HTTPFailure as failure:
                if failure.status not in _RETRY_STATUSES or attempt == self.max_retries:
                    raise PolicyError(str(failure)) from None
                time.sleep(min(30.0, 2.0**attempt))
        answered = response.get("model")
        if answered not in (None, body["model"]):
            raise PolicyError(
                f"{self.base_url}/completions: expected a completion from the adapter "
                f"{body['model']!r}, got one from {answered!r}; the server ignored the adapter "
                f"name ({ENABLE_RUNTIME_LORA})"
            )
        return response

    def _completion_ids(
        self, response: dict[str, Any], n: int, trainer: GRPOTrainer
    ) -> list[list[int]]:
        choices = sorted(response.get("choices") or [], key=lambda choice: choice.get("index", 0))
        if len(choices) != n:
            raise PolicyError(
                f"{self.base_url}/completions: expected {n} choices, got {len(choices)}"
            )
        tokenizer, limit = trainer.tokenizer, self.config.max_new_tokens
        completions = []
        for choice in choices:
            ids = tokenizer(choice.get("text") or "", add_special_tokens=False)["input_ids"]
            if choice.get("finish_reason") == "stop":  # no stop strings are sent: EOS it is
                ids = [*ids, tokenizer.eos_token_id]
            completions.append(ids[:limit])
        return completions

    # -- HTTP -----------------------------------------------------------------------------------

    def _post(self, route: str, body: dict[str, Any]) -> bytes:
        return self._request("POST", route, body)

    def _request(self, method: str, route: str, body: dict[str, Any] | None) -> bytes:
        url = f"{self.base_url}/{route}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise _HTTPFailure(url, error.code, _error_detail(error)) from None
        except TimeoutError:
            raise _HTTPFailure(url, 504, f"no response within {self.timeout:g} s") from None
        except urllib.error.URLError as error:
            raise PolicyError(
                f"cannot connect to {self.base_url}: {error.reason}; is the vLLM server "
                f"running? ({ENABLE_RUNTIME_LORA})"
            ) from None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


class _HTTPFailure(Exception):
    """An HTTP error status (or a timeout) that the caller may handle or retry."""

    def __init__(self, url: str, status: int, detail: str) -> None:
        super().__init__(f"{url}: HTTP {status}: {detail or 'no detail'}")
        self.url, self.status, self.detail = url, status, detail


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return text[:300]
    message = parsed.get("error", parsed.get("message", text)) if isinstance(parsed, dict) else text
    if isinstance(message, dict):
        message = message.get("message", text)
    return str(message)[:300]
