"""The ``openai:<model>@<base-url>`` policy: any OpenAI-compatible chat-completions server.

vLLM (``vllm serve``), Ollama (``http://localhost:11434/v1``), llama.cpp's server and hosted APIs
all speak ``POST <base-url>/chat/completions``. Plain HTTP through the standard library (urllib and
threads): no ``openai`` package is needed.

- **Key:** read from the environment variable ``OPENAI_API_KEY`` or the one named by
  ``api_key_env``; sent as ``Authorization: Bearer``; none is sent when the variable is unset
  (local servers need none). The key is never logged or put in an error message.
- **Sampling:** one request per query asks for ``n`` choices; a server that returns fewer (some
  ignore ``n``) is asked again for the rest. ``temperature``, ``top_p``, ``max_tokens``, ``seed``
  and up to four ``stop`` strings are sent; every stop string is also applied to the text
  received.
- **Concurrency:** at most ``concurrency`` requests in flight.
- **Retries:** HTTP 429, 500, 502, 503, 504 and timeouts are retried up to ``max_retries`` times,
  waiting what ``Retry-After`` says when the server sends it, else exponential backoff with
  jitter. Other failures raise `PolicyError` at once with a message naming the fix (401 names
  the key's variable, 404 the model and URL, a refused connection the URL).

This module sends prompts and reads text; it never runs what comes back.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agents.policy import Policy, PolicyError, Query, SamplingParams, check_request

__all__ = ["OpenAIPolicy", "make", "truncate_at_stop"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_STOP_STRINGS = 4  # the OpenAI API's limit; the rest are applied to the text received
MAX_WAIT = 300.0  # seconds: a Retry-After longer than this is capped


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string.

    Example:
        >>> truncate_at_stop("a = 1\\n```\\nmore", ["```"])
        'a = 1\\n'
    """
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]


class OpenAIPolicy(Policy):
    """Chat completions from an OpenAI-compatible server.

    Args:
        model: The model name the server knows.
        base_url: The API root, ending in ``/v1`` for most servers.
        api_key_env: Environment variable holding the API key.
        concurrency: Requests in flight at once.
        timeout: Seconds to wait for one response.
        max_retries: Retries of a request after a retryable failure.
        backoff: First backoff in seconds (doubled per retry, with jitter, at most 60 s).
    """

    replicable = True  # a client: each Ray worker builds its own

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
    ) -> None:
        if not model:
            raise ValueError("openai agent: expected 'openai:<model>@<base-url>', got no model")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"openai agent: expected an http(s):// base URL, got {base_url!r}")
        _require_positive("concurrency", concurrency, int)
        _require_positive("timeout", timeout, (int, float))
        _require_positive("backoff", backoff, (int, float))
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries: expected an int >= 0, got {max_retries!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.name = f"openai:{model}@{self.base_url}"
        self._executor = ThreadPoolExecutor(concurrency, thread_name_prefix="openai")
        self._random = random.Random()
        self._random_lock = threading.Lock()

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        check_request(queries, n)
        params = params or SamplingParams()
        futures = [self._executor.submit(self._complete, query, n, params) for query in queries]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- one query ------------------------------------------------------------------------------
    def _complete(self, query: Query, n: int, params: SamplingParams) -> list[str]:
        texts: list[str] = []
        while len(texts) < n:
            body = self._body(query, n - len(texts), params)
            choices = self._post(body).get("choices")
            if not isinstance(choices, list) or not choices:
                raise PolicyError(
                    f"{self.url}: the response holds no choices; is this a chat model?"
                )
            ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
            texts.extend(truncate_at_stop(_content(c), params.stop) for c in ordered)
        return texts[:n]

    def _body(self, query: Query, n: int, params: SamplingParams) -> dict[str, Any]:
        messages = list(query.messages) or [{"role": "user", "content": query.prompt}]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop[:MAX_STOP_STRINGS])
        return body

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        attempt = 0
        while True:
            response, retry_after, failure = self._attempt(data)
            if response is not None:
                return response
            if attempt >= self.max_retries:
                raise PolicyError(f"{failure} after {attempt + 1} attempts; giving up")
            time.sleep(self._delay(attempt, retry_after))
            attempt += 1

    def _attempt(self, data: bytes) -> tuple[dict[str, Any] | None, float | None, str]:
        """One request: ``(response, None, "")``, or ``(None, retry_after, why)`` to retry.

        Raises:
            PolicyError: A failure that retrying cannot fix.
        """
        request = urllib.request.Request(self.url, data=data, headers=self._headers())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = _read_error_body(error)
            if error.code in RETRY_STATUSES:
                why = f"{self.url}: HTTP {error.code} {detail}".rstrip()
                return None, _retry_after(error.headers.get("Retry-After")), why
            raise PolicyError(self._http_message(error.code, detail)) from None
        except TimeoutError:  # socket.timeout is an alias of it
            return None, None, f"{self.url}: no response within {self.timeout:g} s"
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                return None, None, f"{self.url}: no response within {self.timeout:g} s"
            raise PolicyError(self._connection_message(error.reason)) from None
        except (OSError, http.client.HTTPException) as error:  # reset or cut short mid-response
            return None, None, f"{self.url}: connection lost ({error})"
        try:
            parsed = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PolicyError(
                f"{self.url}: the response is not JSON; is {self.base_url} an OpenAI-compatible "
                "API root (usually ending in /v1)?"
            ) from None
        if not isinstance(parsed, dict):
            raise PolicyError(f"{self.url}: expected a JSON object, got {type(parsed).__name__}")
        return parsed, None, ""

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(MAX_WAIT, retry_after)
        with self._random_lock:
            jitter = 0.5 + self._random.random()  # spread retries of many threads apart
        return min(60.0, self.backoff * 2**attempt) * jitter

    def _http_message(self, status: int, detail: str) -> str:
        if status in (401, 403):
            state = "is set" if os.environ.get(self.api_key_env) else "is not set"
            return (
                f"{self.url}: HTTP {status}: the server rejected the API key. The key is read "
                f"from the environment variable {self.api_key_env}, which {state}; set it (or "
                f"name another variable with --api-key-env). {detail}".rstrip()
            )
        if status == 404:
            return (
                f"{self.url}: HTTP 404: model {self.model!r} not found at {self.base_url} (or the "
                f"URL is not an OpenAI-compatible API root, usually ending in /v1). {detail}"
            ).rstrip()
        return f"{self.url}: HTTP {status}: {detail or 'no detail'}"

    def _connection_message(self, reason: object) -> str:
        if isinstance(reason, ConnectionRefusedError):
            return f"cannot connect to {self.base_url}: connection refused; is the server running?"
        return f"cannot connect to {self.base_url}: {reason}"


def _content(choice: object) -> str:
    if not isinstance(choice, dict):
        return ""
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else choice.get("text")
    return content if isinstance(content, str) else ""


def _read_error_body(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read().decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""
    try:
        message = json.loads(text).get("error", {})
        text = message.get("message", text) if isinstance(message, dict) else str(message)
    except (json.JSONDecodeError, AttributeError):
        pass
    return text[:300]


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if usable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _require_positive(name: str, value: object, kinds: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:  # type: ignore
        raise ValueError(f"{name}: expected a positive number, got {value!r}")


def make(argument: str, **options: Any) -> OpenAIPolicy:
    """Build the policy from the spec's argument, ``<model>@<base-url>``.

    The model name may itself contain ``@``: the last one splits. Without ``@<base-url>`` the
    server is ``$OPENAI_BASE_URL``, else the OpenAI API, which needs the key's variable set: a
    spec that would reach the OpenAI API with no key is refused at once, saying how to name a
    local server. Which server is used is said on stderr.

    Example:
        >>> policy = make("qwen2.5-coder:7b@http://localhost:11434/v1")
        >>> policy.model, policy.url
        ('qwen2.5-coder:7b', 'http://localhost:11434/v1/chat/completions')
        >>> policy.close()
    """
    model, sep, base_url = argument.rpartition("@")
    if not sep:
        model, base_url = argument, os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key_env = options.get("api_key_env", "OPENAI_API_KEY")
        if base_url == DEFAULT_BASE_URL and not os.environ.get(key_env):
            raise PolicyError(
                f"openai agent: 'openai:{argument}' names no server, so it would go to the "
                f"OpenAI API at {DEFAULT_BASE_URL}, and ${key_env} is not set. For a local "
                f"server add its URL: 'openai:{argument}@http://localhost:8000/v1' (vLLM) or "
                f"'@http://localhost:11434/v1' (Ollama); for the OpenAI API set ${key_env}; "
                "or set $OPENAI_BASE_URL"
            )
        print(f"openai agent: no @<base-url> in the spec; using {base_url}", file=sys.stderr)
    return OpenAIPolicy(model, base_url, **options)
