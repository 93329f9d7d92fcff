"""What a model is shown: the system prompt, the instruction per task format, the chat messages of a
task, and the feedback of a failed attempt.

The environment, the policies, the benchmark and the trainers all take their prompts from here, so
a model is always shown exactly what the environment shows it. This module must never import
Gymnasium (the policies and trainers use it without the environment) nor run anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qsandbox_env.tasks import Task
    from qsandbox_env.verifier import Verdict

__all__ = [
    "COMPLETION_INSTRUCTION",
    "FEEDBACK_LIMIT",
    "PROGRAM_INSTRUCTION",
    "SYSTEM_PROMPT",
    "feedback",
    "task_messages",
]

SYSTEM_PROMPT = (
    "You are an expert Qiskit programmer. Answer with Python code only, in one ```python fenced "
    "block. Use the current Qiskit 2.x API (V2 primitives, qiskit-aer, qiskit-ibm-runtime); do not "
    "use removed APIs such as qiskit.execute or qiskit.providers.aer."
)
COMPLETION_INSTRUCTION = (
    "Complete the function below. Return the whole function, signature included, with any "
    "imports it needs."
)
PROGRAM_INSTRUCTION = "Write the complete program, with its imports."
FEEDBACK_LIMIT = 2000


def task_messages(task: Task) -> list[dict[str, str]]:
    """The chat messages the environment shows for ``task``: a system prompt, then the task.

    Benchmarks and trainers call this too, so a model is always shown exactly what the
    environment shows it.

    Examples:
        >>> from qsandbox_env import load_tasks
        >>> [m["role"] for m in task_messages(next(iter(load_tasks("bundled").values())))]
        ['system', 'user']
    """
    instruction = COMPLETION_INSTRUCTION if task.format == "completion" else PROGRAM_INSTRUCTION
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"{instruction}\n\n{task.prompt}"},
    ]


def feedback(verdict: Verdict) -> str:
    """What a repair attempt is told: the outcome and the tail of the error."""
    detail = verdict.detail.strip()
    if len(detail) > FEEDBACK_LIMIT:
        detail = "…" + detail[-FEEDBACK_LIMIT:]
    return f"Your code did not pass ({verdict.outcome.value}).\n{detail}\nFix it and answer again."
