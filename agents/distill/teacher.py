"""The teacher: an OpenAI-compatible chat server asked for reasoning and code.

`Teacher` wraps the ``openai:`` policy (`agents.policies.openai_api.OpenAIPolicy`: its HTTP,
retries, key handling, error messages and spec rules) and adds `Teacher.chat`, which returns what
distillation needs and a policy drops: the separate reasoning field (``reasoning_content``, as
DeepSeek's API and vLLM's reasoning parsers return it; ``reasoning`` on some servers), the finish
reason and the tokens the request cost. This module sends prompts and reads text; it never runs
what comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.policies.openai_api import OpenAIPolicy, truncate_at_stop
from agents.policy import PolicyError, Query, SamplingParams, make_policy
from qsandbox_env.tasks import Task

__all__ = ["Reply", "Teacher", "make_teacher"]

REASONING_FIELDS = ("reasoning_content", "reasoning")


@dataclass(frozen=True)
class Reply:
    """One choice of a chat completion.

    Attributes:
        content: The message text (may hold ``<think>`` reasoning, prose and code).
        reasoning: The separate reasoning field, empty when the server sends none.
        finish_reason: Why generation stopped (``"stop"``, ``"length"``, ...).
        prompt_tokens: This choice's share of the request's prompt tokens.
        completion_tokens: This choice's share of the request's completion tokens.
    """

    content: str
    reasoning: str = ""
    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Teacher:
    """An OpenAI-compatible teacher over an `OpenAIPolicy` (``policy``), which it closes."""

    def __init__(self, policy: OpenAIPolicy) -> None:
        if not isinstance(policy, OpenAIPolicy):
            raise TypeError(f"policy: expected an OpenAIPolicy, got {type(policy).__name__}")
        self.policy = policy
        self.name = policy.name

    def close(self) -> None:
        self.policy.close()

    def chat(
        self, task: Task, messages: Sequence[dict[str, str]], n: int, params: SamplingParams
    ) -> list[Reply]:
        """``n`` replies to ``messages`` (one request, asked again if the server returns fewer).

        Raises:
            PolicyError: The server is unreachable, rejects the key, or answers without choices.
        """
        query = Query(task, task.prompt, tuple(messages))
        replies: list[Reply] = []
        while len(replies) < n:
            response = self.policy._post(self.policy._body(query, n - len(replies), params))
            choices = response.get("choices")
            if not isinstance(choices, list) or not choices:
                raise PolicyError(
                    f"{self.policy.url}: the response holds no choices; is this a chat model?"
                )
            replies.extend(_replies(choices, response.get("usage"), params.stop))
        return replies[:n]


def _replies(choices: list[Any], usage: Any, stop: Sequence[str]) -> list[Reply]:
    ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
    prompt = _shares(_count(usage, "prompt_tokens"), len(ordered))
    completion = _shares(_count(usage, "completion_tokens"), len(ordered))
    replies = []
    for choice, prompt_share, completion_share in zip(ordered, prompt, completion, strict=True):
        message = choice.get("message") if isinstance(choice, dict) else None
        message = message if isinstance(message, dict) else {}
        content = message.get("content")
        reasoning = next(
            (message[k] for k in REASONING_FIELDS if isinstance(message.get(k), str)), ""
        )
        reason = choice.get("finish_reason") if isinstance(choice, dict) else ""
        replies.append(
            Reply(
                truncate_at_stop(content if isinstance(content, str) else "", stop),
                reasoning,
                reason if isinstance(reason, str) else "",
                prompt_share,
                completion_share,
            )
        )
    return replies


def _count(usage: Any, name: str) -> int:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _shares(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers, the remainder on the first ones."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def make_teacher(spec: str, **options: Any) -> Teacher:
    """The teacher named by ``openai:<model>@<base-url>``, built as the ``openai:`` agent is
    (`agents.policies.openai_api.make`); options as `OpenAIPolicy` takes them.

    Example:
        >>> teacher = make_teacher("openai:deepseek-chat@https://api.deepseek.com/v1")
        >>> teacher.policy.model, teacher.policy.url
        ('deepseek-chat', 'https://api.deepseek.com/v1/chat/completions')
        >>> teacher.close()
    """
    if not spec.startswith("openai:"):
        raise ValueError(
            f"teacher: expected 'openai:<model>@<base-url>' (any OpenAI-compatible server: vLLM, "
            f"DeepSeek's API, a hosted API), got {spec!r}"
        )
    policy = make_policy(spec, **options)
    assert isinstance(policy, OpenAIPolicy)  # the "openai:" prefix builds one
    return Teacher(policy)
