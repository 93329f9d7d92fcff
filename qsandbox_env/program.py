"""Task + code → the program the sandbox runs.

The assembled program is the task's code followed by its test. A ``"completion"`` task's code
continues its prompt; code that is the whole function again (it defines the entry point at
column 0) follows the prompt instead, and that later definition is the one the test sees.

The harness, not the program, calls ``check(<entry_point>)``: any top-level ``check(...)`` call
the test makes itself (the "program" format) is blanked out, line numbers kept, so that ``check``
is always called exactly once, by the harness, after the program's own module code has finished.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from qsandbox_env.extract import defines_function
from qsandbox_env.tasks import Task


@dataclass(frozen=True)
class Program:
    """What the sandbox runs: ``source``, the name the test checks, and where the test begins."""

    source: str
    entry_point: str
    test_line: int  # 1-based line of ``source`` where the task's test starts

    def as_message(self) -> dict:
        return {"source": self.source, "entry_point": self.entry_point, "test_line": self.test_line}


def assemble(task: Task, code: str) -> Program:
    """Build the program for ``code`` (already extracted from model output) and ``task``."""
    head = code if task.format == "program" else _continue_prompt(task, code)
    if not head.endswith("\n"):
        head += "\n"
    test_line = head.count("\n") + 1
    return Program(head + strip_check_calls(task.test), task.entry_point, test_line)


def _continue_prompt(task: Task, code: str) -> str:
    """The prompt followed by ``code``: a body continuing it, or the whole function again."""
    if not defines_function(code, task.entry_point):
        return task.prompt + code
    # The answer redefines the entry point; that later definition is the one the test sees. The
    # prompt's own definition must still compile: one that stops at its signature gets a body.
    prompt = task.prompt if task.prompt.endswith("\n") else task.prompt + "\n"
    if prompt.rstrip().endswith(":"):
        prompt += "    ...\n"
    return prompt + code


def strip_check_calls(test: str) -> str:
    """Blank top-level ``check(...)`` statements of a test, keeping every other line in place."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError):
        return test
    lines = test.splitlines(keepends=True)
    for node in tree.body:
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "check"
        ):
            for i in range(node.lineno - 1, (node.end_lineno or node.lineno)):
                lines[i] = "\n"
    return "".join(lines)
