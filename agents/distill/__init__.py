"""Distillation: a teacher's reasoning and code, kept only when the Verifier passes it.

The paper's first stage, before GRPO: a large OpenAI-compatible teacher (DeepSeek V3 through its
API, any model behind vLLM) is asked for the physics first, then the code, for each task; every
answer runs in the sandbox, and only passing ones enter the training set that
``qsandbox train sft`` fine-tunes on.

- `agents.distill.teacher`: `Teacher`, the HTTP client (the ``openai:`` policy's, plus the
  separate reasoning field and token usage).
- `agents.distill.prompting`: the teacher's `PromptTemplate`, `split_answer` (reasoning from
  ``<think>``, prose or ``reasoning_content``; code), the kept example's messages.
- `agents.distill.config`: `DistillConfig`, `DistillError`.
- `agents.distill.runner`: `run_distill`: rejection sampling, repair turns, caps, resume.
- `agents.distill.rundir`, `agents.distill.outputs`: the run directory and what it holds.
- `agents.distill.leakage`: refusing the benchmark as a source; the 3-shingle similarity check.

Importing this package imports no torch and starts nothing.
"""

from __future__ import annotations

from agents.distill.config import DEFAULT_PARAMS, DistillConfig, DistillError
from agents.distill.prompting import DEFAULT_TEMPLATE, PromptTemplate, split_answer
from agents.distill.runner import run_distill
from agents.distill.teacher import Reply, Teacher, make_teacher

__all__ = [
    "DEFAULT_PARAMS",
    "DEFAULT_TEMPLATE",
    "DistillConfig",
    "DistillError",
    "PromptTemplate",
    "Reply",
    "Teacher",
    "make_teacher",
    "run_distill",
    "split_answer",
]
