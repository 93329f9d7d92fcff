"""The one interface every policy implements, and the registry that builds policies from a spec.

A policy answers a batch of `Query` objects (a task, its prompt as text and as chat messages) with
``n`` sampled completions each: raw model text, exactly as generated. Extracting code, running it
and scoring it is the Verifier's job, never the policy's.

Specs name a policy on the command line: ``oracle``, ``stale-api``, ``hf:<path-or-hub-id>``,
``openai:<model>@<base-url>``. A module that defines a policy registers its spec prefix with
`register_policy` (the built-in ones are listed in `POLICIES`); `make_policy` imports it on
first use, so heavy dependencies (torch, transformers) load only when that policy is asked for.
"""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qsandbox_env.prompts import task_messages
from qsandbox_env.tasks import Task

__all__ = [
    "POLICIES",
    "Policy",
    "PolicyError",
    "Query",
    "SamplingParams",
    "check_request",
    "make_policy",
    "policy_builder",
    "query_for",
    "register_policy",
]


class PolicyError(RuntimeError):
    """A policy could not produce completions (server unreachable, key rejected, model missing).

    The message says what failed and how to fix it; ``qsandbox bench`` prints it without a
    traceback and keeps every sample already written.
    """


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. Every policy honours what it can and documents what it ignores.

    Attributes:
        temperature: Softmax temperature; 0 means greedy decoding.
        top_p: Nucleus-sampling mass.
        max_new_tokens: Upper bound on generated tokens per completion.
        seed: Seed for reproducible sampling where the backend supports one.
        stop: Strings that end a completion early.
    """

    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.temperature < float("inf"):
            raise ValueError(f"temperature: expected a number >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p: expected a number in (0, 1], got {self.top_p!r}")
        if isinstance(self.max_new_tokens, bool) or not (
            isinstance(self.max_new_tokens, int) and self.max_new_tokens > 0
        ):
            raise ValueError(
                f"max_new_tokens: expected a positive int, got {self.max_new_tokens!r}"
            )
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed: expected an int or None, got {self.seed!r}")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if not all(isinstance(text, str) and text for text in stop):
            raise TypeError(f"stop: expected a tuple of non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", stop)


@dataclass(frozen=True)
class Query:
    """One prompt to answer.

    Attributes:
        task: The task (policies such as ``oracle`` read its canonical solution).
        prompt: The prompt as plain text (what a base model continues).
        messages: The prompt as chat messages (system + user), for chat models.
    """

    task: Task
    prompt: str
    messages: tuple[dict[str, str], ...] = field(default_factory=tuple)


def query_for(task: Task) -> Query:
    """The query for ``task``, with the chat messages the environment itself shows.

    Example:
        >>> from qsandbox_env import load_tasks
        >>> query = query_for(next(iter(load_tasks("bundled").values())))
        >>> [message["role"] for message in query.messages]
        ['system', 'user']
    """
    return Query(task, task.prompt, tuple(task_messages(task)))


def check_request(queries: Sequence[Query], n: int) -> None:
    """Validate `Policy.generate`'s arguments; every policy calls it first.

    Raises:
        TypeError: ``queries`` holds something other than `Query`, or ``n`` is not an int.
        ValueError: ``n`` is not positive.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected a positive int, got {n!r}")
    if n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    for query in queries:
        if not isinstance(query, Query):
            raise TypeError(
                f"queries: expected Query objects (see agents.policy.query_for), got "
                f"{type(query).__name__}"
            )


class Policy(ABC):
    """Answers queries with sampled completions.

    Subclasses set `name` (the spec they were built from) and implement `generate`.

    ``replicable`` is True for policies that are cheap to build again from their spec on another
    machine and hold no state worth sharing (API clients, rule-based agents): ``qsandbox bench
    --ray`` builds one on each Ray worker and generates there. A local model is not replicable:
    it is loaded once, on the driver.
    """

    name: str = "policy"
    replicable: bool = False

    @abstractmethod
    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        """Return ``n`` completions per query, in query order: ``result[i][j]`` is sample ``j`` of
        query ``i``."""

    def close(self) -> None:
        """Release what the policy holds (model weights, HTTP sessions)."""
        return None

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# spec prefix -> "module:factory"; a bare name's factory takes (**options), a "prefix:" one takes
# (argument, **options); each returns a Policy.
POLICIES: dict[str, str] = {
    "oracle": "agents.policies.oracle:make",
    "stale-api": "agents.policies.stale_api:make",
    "hf:": "agents.policies.hf:make",
    "openai:": "agents.policies.openai_api:make",
}


def register_policy(prefix: str, factory: str) -> None:
    """Make ``make_policy("<prefix>...")`` call ``factory`` (``"module:function"``)."""
    if ":" not in factory:
        raise ValueError(f"factory: expected 'module:function', got {factory!r}")
    POLICIES[prefix] = factory


def make_policy(spec: str, **options: Any) -> Policy:
    """Build the policy named by ``spec``.

    ``spec`` is a bare name (``"oracle"``) or ``"<prefix>:<argument>"``
    (``"hf:Qwen/Qwen2.5-Coder-1.5B"``).

    Raises:
        ValueError: An unknown spec; the message lists the known ones.
    """
    return policy_builder(spec, **options)()


def check_policy_spec(spec: str, **options: Any) -> None:
    """Refuse what building ``spec`` would refuse at once, without building it.

    An unknown spec raises ``ValueError``; a factory module with a ``check(argument, **options)``
    function (the ``hf:`` policy has one: a missing model directory, torch not installed, an
    option it does not take) is asked too. Used where the policy is built elsewhere, on Ray
    workers, and loading it here would cost a model's memory for nothing.
    """
    builder = policy_builder(spec, **options)
    check = getattr(importlib.import_module(builder.func.__module__), "check", None)
    if check is not None:
        check(*builder.args, **builder.keywords)


def policy_builder(spec: str, **options: Any) -> functools.partial[Policy]:
    """A picklable function that builds the policy named by ``spec`` (see `make_policy`).

    The spec is resolved here, against this process's `POLICIES`: the function builds the same
    policy in another process (a Ray worker) where a prefix added by `register_policy` is unknown,
    as long as the factory's module can be imported there.

    Raises:
        ValueError: An unknown spec; the message lists the known ones.
    """
    if not isinstance(spec, str):
        raise TypeError(f"spec: expected str, got {type(spec).__name__}")
    prefix, sep, argument = spec.partition(":")
    key = f"{prefix}:" if sep else prefix
    if key not in POLICIES:
        known = ", ".join(sorted(f"{p}<...>" if p.endswith(":") else p for p in POLICIES))
        raise ValueError(f"unknown agent {spec!r}; expected one of: {known}")
    module, _, function = POLICIES[key].partition(":")
    factory = getattr(importlib.import_module(module), function)
    if sep:
        return functools.partial(factory, argument, **options)
    return functools.partial(factory, **options)
