"""The answer-shape matrix: known answers rendered in the shapes real code models write, verified.

Every task's canonical solution (and every wrong answer of ``tests/data/bundled_wrong.json``) is
rendered in each shape of `SHAPES` (a raw body with or without its first newline, a body written
flush left, with tabs, with two spaces, CRLF, fenced in prose, a whole function with or without its
imports, with a usage example or a main block, two fenced blocks, reasoning first, a chat reply, a
whole program) and verified through `Verifier`, once with ``fit="fitted"`` (the default) and once
with ``fit="strict"`` (the plain HumanEval convention). The printed matrix has a row per shape and
a column per source; a cell is ``passed/answers`` (``-`` where the shape does not apply: body
shapes to whole-program tasks, or a flush-left body with or without a ``return`` at column 0).

Sources: ``bundled``, ``bundled-wrong`` (expected to pass nothing), a ``procedural`` sample, and
with ``--data`` Qiskit-HumanEval (``humaneval``) and the same records reshaped into the hard set's
program format (``humaneval-hard``, written to a temporary file as the hub's hard set is laid out).

Pairs whose assembled programs are byte for byte the same (many shapes fit to one program) are
run once per policy: a verdict depends only on the program. Failures of the Qiskit-HumanEval tasks
whose tests assert on unseeded shot noise (28, 51) are run again, up to three times.

Run from the repository root:

    PYTHONPATH=. python benchmarks/answer_shapes.py \\
        --data ../shared/datasets/qiskit_humaneval/dataset_qiskit_test_human_eval.json \\
        --misses /tmp/answer-shape-misses.json
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import pathlib
import sys
import tempfile
import time
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from qsandbox_env import Task, Verifier, load_tasks
from qsandbox_env.extract import completion_text, extract_code
from qsandbox_env.program import FIT_POLICIES, assemble

ROOT = pathlib.Path(__file__).resolve().parents[1]
WRONG_FILE = ROOT / "tests" / "data" / "bundled_wrong.json"
SHOT_NOISE = ("qiskitHumanEval/28", "qiskitHumanEval/51")
TIMEOUT = 240.0  # HumanEval/100 needs ~20 s of CPU alone; a loaded machine stretches it

Completion = str | list[dict[str, str]]


@dataclass(frozen=True)
class Answer:
    """A known answer to a task, in the pieces the shapes are made of.

    ``body`` is the function body (``None`` for a program-format task); ``program`` is the whole
    answer as a file: imports, helpers and the function (the prompt plus the body for a
    completion task).
    """

    task: Task
    body: str | None
    program: str

    @property
    def entry(self) -> str:
        return self.task.entry_point


def canonical_answer(task: Task) -> Answer:
    return answer_for(task, task.canonical_solution)


def answer_for(task: Task, solution: str) -> Answer:
    """``solution`` (a body for completion tasks, a program for program tasks) as an `Answer`."""
    if task.format == "program":
        return Answer(task, None, solution)
    return Answer(task, solution, task.prompt + solution)


# -- rendering helpers (the answers are trusted: tokenize and ast are fine here) ----------------


def _string_rows(code: str) -> set[int]:
    """0-based rows of ``code`` that start inside a multi-line string."""
    rows: set[int] = set()
    source = "if 1:\n" + code if code.lstrip("\n").startswith((" ", "\t")) else code
    offset = 1 if source is not code else 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                rows.update(range(token.start[0] - offset, token.end[0] - offset))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return rows


def _reindent(code: str, lead: Callable[[str], str]) -> str:
    """``code`` with each line's leading spaces replaced by ``lead(spaces)``, strings kept."""
    inside = _string_rows(code)
    lines = code.split("\n")
    for row, line in enumerate(lines):
        if line.strip() and row not in inside:
            stripped = line.lstrip(" ")
            lines[row] = lead(line[: len(line) - len(stripped)]) + stripped
    return "\n".join(lines)


def _flush_left(body: str) -> str:
    return _reindent(body, lambda spaces: spaces[4:])


def _has_column_0_return(code: str) -> bool:
    return any(line.startswith(("return ", "return\n", "yield ")) for line in code.split("\n"))


def _imports_and_rest(program: str) -> tuple[str, str]:
    """The top-level import statements of ``program`` and everything else, as texts."""
    try:
        tree = ast.parse(program)
    except SyntaxError:
        return "", program
    lines = program.splitlines(keepends=True)
    rows = {
        row
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for row in range(node.lineno - 1, node.end_lineno or node.lineno)
    }
    imports = "".join(line for row, line in enumerate(lines) if row in rows)
    rest = "".join(line for row, line in enumerate(lines) if row not in rows)
    return imports, rest.lstrip("\n")


def _fenced(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```\n"


# -- the shapes ---------------------------------------------------------------------------------


def _body(render: Callable[[str], Completion | None]) -> Callable[[Answer], Completion | None]:
    return lambda answer: None if answer.body is None else render(answer.body)


def _flush_left_body(with_return: bool) -> Callable[[Answer], Completion | None]:
    def render(answer: Answer) -> Completion | None:
        if answer.body is None:
            return None
        flush = _flush_left(answer.body)
        return flush if _has_column_0_return(flush) == with_return else None

    return render


def _two_blocks(answer: Answer) -> str | None:
    imports, rest = _imports_and_rest(answer.program)
    if not imports.strip():
        return None
    return (
        f"First, the imports:\n\n{_fenced(imports)}\nThen the function:\n\n{_fenced(rest)}\n"
        f"Call `{answer.entry}` as the task describes."
    )


def _function_without_imports(answer: Answer) -> str | None:
    # Only where the prompt brings the imports: a whole program (the hard set) has its own.
    if answer.body is None:
        return None
    return _fenced(_imports_and_rest(answer.program)[1])


def _chat(answer: Answer) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a Qiskit expert. Answer with Python code."},
        {"role": "user", "content": answer.task.prompt},
        {"role": "assistant", "content": f"Here is the solution:\n\n{_fenced(answer.program)}"},
    ]


SHAPES: dict[str, Callable[[Answer], Completion | None]] = {
    "body": _body(lambda body: body),
    "body without leading newline": _body(lambda body: body.lstrip("\r\n")),
    "body, first line unindented": _body(lambda body: body.lstrip()),
    "flush-left body with return": _flush_left_body(with_return=True),
    "flush-left body without return": _flush_left_body(with_return=False),
    "tab-indented body": _body(lambda body: _reindent(body, lambda s: "\t" * (len(s) // 4))),
    "2-space body": _body(lambda body: _reindent(body, lambda s: " " * (len(s) // 2))),
    "body, CRLF": _body(lambda body: body.replace("\n", "\r\n")),
    "body fenced in prose": _body(
        lambda body: (
            f"Here is the body of the function:\n\n{_fenced(body.lstrip(chr(10)))}\n"
            "It returns what the docstring asks for."
        )
    ),
    "flush-left body fenced": _body(lambda body: _fenced(_flush_left(body))),
    "whole function/program": lambda answer: answer.program,
    "whole function/program fenced": lambda answer: (
        f"Sure! Here is the complete code:\n\n{_fenced(answer.program)}\nLet me know if it helps."
    ),
    "function without imports": _function_without_imports,
    "function + usage example": lambda answer: _fenced(
        f"{answer.program.rstrip()}\n\n\n# Example usage\nprint({answer.entry})\n"
    ),
    "function + __main__ block": lambda answer: _fenced(
        f'{answer.program.rstrip()}\n\n\nif __name__ == "__main__":\n    print({answer.entry})\n'
    ),
    "imports, then function (two blocks)": _two_blocks,
    "<think> then answer": lambda answer: (
        f"<think>\nThe task asks for `{answer.entry}`. Draft:\n```python\ndef {answer.entry}():\n"
        f"    pass\n```\nNo, it needs the real code.\n</think>\n\n{_fenced(answer.program)}"
    ),
    "chat message list": _chat,
    "whole function/program, CRLF": lambda answer: _fenced(answer.program).replace("\n", "\r\n"),
}


def render(answer: Answer) -> dict[str, Completion]:
    """Every shape that applies to ``answer``: shape name -> completion."""
    shaped = {name: shape(answer) for name, shape in SHAPES.items()}
    return {name: completion for name, completion in shaped.items() if completion is not None}


def program_text(task: Task, completion: Completion, fit: str) -> str:
    """The program the Verifier assembles for ``completion`` under ``fit`` (what it runs)."""
    text = completion_text(completion)
    code = text if fit == "strict" else extract_code(text, task)
    return assemble(task, code, fit=fit).source


# -- sources --------------------------------------------------------------------------------------


def hard_format_records(normal: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Qiskit-HumanEval records reshaped as the hard set lays them out: an English prompt, a whole
    program as the solution, a test with its own imports and its own ``check`` call."""
    records = []
    for record in normal:
        imports, _ = _imports_and_rest(record["prompt"])
        docstring = _docstring(record["prompt"], record["entry_point"])
        records.append(
            {
                "task_id": record["task_id"],
                "prompt": f"{docstring}\nYou must implement this using a function named "
                f"`{record['entry_point']}`.",
                "canonical_solution": record["prompt"] + record["canonical_solution"],
                "test": f"{imports}\n{record['test']}\n\ncheck({record['entry_point']})\n",
                "entry_point": record["entry_point"],
                "difficulty_scale": record.get("difficulty_scale", "unknown"),
            }
        )
    return records


def _docstring(prompt: str, entry: str) -> str:
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return prompt
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry:
            return (ast.get_docstring(node) or "").strip()
    return ""


def load_sources(
    data: str | None, procedural: int, workdir: str
) -> dict[str, list[tuple[Answer, bool]]]:
    """Source name -> (answer, whether it is a correct one) pairs."""
    bundled = load_tasks("bundled")
    wrong = json.loads(WRONG_FILE.read_text(encoding="utf-8"))
    sources = {
        "bundled": [(canonical_answer(task), True) for task in bundled.values()],
        "bundled-wrong": [
            (answer_for(bundled[task_id], item["completion"]), False)
            for task_id, items in wrong.items()
            for item in items
        ],
        "procedural": [
            (canonical_answer(task), True)
            for task in load_tasks("procedural", n=procedural).values()
        ],
    }
    if data:
        normal = json.loads(pathlib.Path(data).read_text(encoding="utf-8"))
        sources["humaneval"] = [(canonical_answer(t), True) for t in load_tasks(data).values()]
        hard = os.path.join(workdir, "qiskit_humaneval_hard.json")
        pathlib.Path(hard).write_text(json.dumps(hard_format_records(normal)), encoding="utf-8")
        sources["humaneval-hard"] = [
            (canonical_answer(task), True) for task in load_tasks(hard).values()
        ]
    return sources


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Cell:
    passed: int = 0
    answers: int = 0

    def __str__(self) -> str:
        return f"{self.passed}/{self.answers}" if self.answers else "-"


def run_matrix(
    verifiers: dict[str, Any],
    sources: dict[str, list[tuple[Answer, bool]]],
    misses: list[dict[str, str]] | None = None,
) -> dict[str, dict[str, dict[str, Cell]]]:
    """fit -> shape -> source -> `Cell`, each distinct program verified once per policy.

    ``misses`` collects every answer whose verdict is not the expected one (a correct answer that
    did not pass, a wrong one that did)."""
    matrix = {
        fit: {shape: {source: Cell() for source in sources} for shape in SHAPES}
        for fit in verifiers
    }
    for fit, verifier in verifiers.items():
        entries = []  # (shape, source, task, completion, program)
        expected = []  # whether each entry is a correct answer
        for source, answers in sources.items():
            for answer, correct in answers:
                for shape, completion in render(answer).items():
                    program = program_text(answer.task, completion, fit)
                    entries.append((shape, source, answer.task, completion, program))
                    expected.append(correct)
        unique: dict[tuple[str, str], tuple[Task, str]] = {}
        for _, _, task, completion, program in entries:
            unique.setdefault((task.task_id, program), (task, completion_text(completion)))
        keys = list(unique)
        verdicts = dict(zip(keys, verify_settled(verifier, [unique[k] for k in keys]), strict=True))
        for (shape, source, task, _, program), correct in zip(entries, expected, strict=True):
            verdict = verdicts[(task.task_id, program)]
            cell = matrix[fit][shape][source]
            cell.answers += 1
            cell.passed += verdict.passed
            if misses is not None and verdict.passed != correct:
                lines = [line for line in verdict.detail.splitlines() if line.strip()]
                misses.append(
                    {
                        "fit": fit,
                        "shape": shape,
                        "source": source,
                        "task_id": task.task_id,
                        "outcome": verdict.outcome.value,
                        "last_line": lines[-1] if lines else "",
                    }
                )
    return matrix


def verify_settled(verifier: Any, pairs: Sequence[tuple[Task, str]]) -> list[Any]:
    verdicts = verifier.verify_many(pairs, timeout=TIMEOUT)
    for index, (task, completion) in enumerate(pairs):
        for _ in range(3):
            if verdicts[index].passed or task.task_id not in SHOT_NOISE:
                break
            verdicts[index] = verifier.verify(task, completion, timeout=TIMEOUT)
    return verdicts


def format_matrix(matrix: dict[str, dict[str, Cell]], sources: Sequence[str]) -> str:
    """A Markdown table: a row per shape, a column per source."""
    header = "| shape | " + " | ".join(sources) + " |"
    lines = [header, "|---|" + "---|" * len(sources)]
    for shape, cells in matrix.items():
        lines.append(f"| {shape} | " + " | ".join(str(cells[s]) for s in sources) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the Qiskit-HumanEval JSON file (normal set)")
    parser.add_argument("--procedural", type=int, default=30, help="procedural tasks (30)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fit", choices=(*FIT_POLICIES, "both"), default="both")
    parser.add_argument("--misses", help="write answers scored otherwise than expected (JSON)")
    args = parser.parse_args(argv)
    fits = FIT_POLICIES if args.fit == "both" else (args.fit,)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        sources = load_sources(args.data, args.procedural, workdir)
        verifiers = {fit: Verifier(workers=args.workers, fit=fit) for fit in fits}
        try:
            misses: list[dict[str, str]] = []
            matrix = run_matrix(verifiers, sources, misses)
        finally:
            for verifier in verifiers.values():
                verifier.close()
    for fit in fits:
        print(f"\n## fit={fit}\n")
        print(format_matrix(matrix[fit], list(sources)))
    if args.misses:
        pathlib.Path(args.misses).write_text(json.dumps(misses, indent=1), encoding="utf-8")
    print(f"\n{time.monotonic() - started:.0f} s, {args.workers} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
