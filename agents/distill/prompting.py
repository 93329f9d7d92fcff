"""What the teacher is asked, how its answer splits into reasoning and code, and what the student
is trained on.

The teacher's prompt asks for the physics first (the state, operator or distribution the task
needs; what the device constrains), then the code; `PromptTemplate` holds it and a user may
replace it (``qsandbox distill --system-prompt FILE --prompt-template FILE``). The user part
embeds the environment's own task message (`qsandbox_env.prompts.task_messages`), so the teacher
reads the task exactly as the student will.

Reasoning arrives in the text (``<think>…</think>``, or prose before the code) or in a separate
field (``reasoning_content``); `split_answer` keeps all of it. The kept example's messages are the
environment's (system prompt and task), then one assistant turn: the reasoning as prose and one
fenced code block, the shape `qsandbox_env.extract` reads back. Nothing here runs code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from qsandbox_env.extract import extract_code
from qsandbox_env.prompts import task_messages
from qsandbox_env.tasks import Task

__all__ = [
    "DEFAULT_TEMPLATE",
    "Answer",
    "PromptTemplate",
    "assistant_message",
    "normalized_code",
    "split_answer",
    "training_messages",
]

TEACHER_SYSTEM = (
    "You are an expert in quantum computing and Qiskit who teaches by explaining the physics "
    "before the code. Use the current Qiskit 2.x API (V2 primitives, qiskit-aer, "
    "qiskit-ibm-runtime); never use removed APIs such as qiskit.execute or qiskit.providers.aer."
)
TEACHER_USER = """{task}

First reason about the physics, briefly and concretely:
1. Which state, operator, unitary or probability distribution does the task need? Write it down.
2. Which gates or library routines produce it, and in which qubit order (Qiskit is little-endian)?
3. What do the target and device constrain (ISA circuits, basis gates, shots, noise)?
Then give the complete solution in one ```python fenced block, and nothing after it."""
FIELDS = ("task", "prompt", "entry_point", "target")
_FIELD = re.compile(r"\{(" + "|".join(FIELDS) + r")\}")
_THINK = re.compile(r"<(think|thinking)>(.*?)(?:</\1>|\Z)", re.S)
_FENCE = re.compile(r"^[ \t]*(?:```|~~~)", re.M)


@dataclass(frozen=True)
class PromptTemplate:
    """The teacher's prompt: a system message and a user template.

    The user template may use ``{task}`` (the environment's task message: instruction and
    prompt), ``{prompt}`` (the task's prompt alone), ``{entry_point}`` and ``{target}``; other
    braces are left as they are.

    Example:
        >>> from qsandbox_env import Task
        >>> task = Task("t/0", "def f():\\n", "def check(c):\\n    pass\\n", "f")
        >>> PromptTemplate("Be brief.", "Solve {entry_point} on {target}.").messages(task, "aer")
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'Solve f on aer.'}]
    """

    system: str = TEACHER_SYSTEM
    user: str = TEACHER_USER

    def __post_init__(self) -> None:
        for name in ("system", "user"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"PromptTemplate.{name}: expected str, got {getattr(self, name)!r}")
        if not _FIELD.search(self.user):
            raise ValueError(
                "prompt template: expected {task} or {prompt} in the user template (else the "
                f"teacher never sees the task), got {self.user[:80]!r}"
            )

    def messages(self, task: Task, target: str | None = None) -> list[dict[str, str]]:
        """The teacher's chat messages for ``task``."""
        values = {
            "task": task_messages(task)[-1]["content"],
            "prompt": task.prompt,
            "entry_point": task.entry_point,
            "target": target or "aer",
        }
        user = _FIELD.sub(lambda match: values[match.group(1)], self.user)
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": user}]


DEFAULT_TEMPLATE = PromptTemplate()


@dataclass(frozen=True)
class Answer:
    """A teacher's reply taken apart.

    Attributes:
        reasoning: The separate reasoning field, the ``<think>`` text and the prose before the
            code, in that order, joined by blank lines.
        code: The code `qsandbox_env.extract.extract_code` takes out of the reply ("" if none).
        has_code: False when the reply holds neither a fenced block nor text that parses as
            Python: there is nothing to run.
    """

    reasoning: str
    code: str
    has_code: bool


def split_answer(content: str, reasoning_field: str = "", task: Task | None = None) -> Answer:
    """Split a reply into reasoning and code.

    Example:
        >>> text = "<think>H makes |+>.</think>\\n```python\\nqc.h(0)\\n```"
        >>> answer = split_answer(text, "Plan.")
        >>> answer.reasoning, answer.code
        ('Plan.\\n\\nH makes |+>.', 'qc.h(0)\\n')
    """
    thoughts = [match.group(2).strip() for match in _THINK.finditer(content)]
    visible = _THINK.sub("", content)
    fence = _FENCE.search(visible)
    prose = visible[: fence.start()].strip() if fence else ""
    parts = [reasoning_field.strip(), *thoughts, prose]
    code = extract_code(visible, task) if visible.strip() else ""
    has_code = bool(code.strip()) and (fence is not None or _parses(code))
    return Answer("\n\n".join(part for part in parts if part), code if has_code else "", has_code)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def assistant_message(answer: Answer) -> str:
    """The student's target: the reasoning as prose, then one fenced code block."""
    block = f"```python\n{answer.code.rstrip()}\n```"
    return f"{answer.reasoning}\n\n{block}" if answer.reasoning else block


def training_messages(task: Task, answer: Answer) -> list[dict[str, str]]:
    """The kept example's chat: the environment's system prompt and task, then the answer."""
    return [*task_messages(task), {"role": "assistant", "content": assistant_message(answer)}]


def normalized_code(code: str) -> str:
    """``code`` with comments, docstring-free formatting and spacing made canonical: two answers
    that differ only there are near duplicates.

    Example:
        >>> normalized_code("x = [1,2]  # two\\n\\n") == normalized_code("x = [1, 2]\\n")
        True
    """
    try:
        return ast.unparse(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError):
        return " ".join(code.split())
