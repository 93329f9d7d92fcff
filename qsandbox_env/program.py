"""Task + code → the program the sandbox runs.

`join` builds the candidate's program text: for a ``"program"`` task the code itself; for a
``"completion"`` task the prompt followed by the code, fitted to it. `assemble` appends the test.

**How code is fitted to a prompt** (``fit="fitted"``, the default). Fitting changes whitespace
only, and only where the prompt and the code meet, so it never turns wrong code into right code:

1. *The joint.* A prompt that stops after its last line's text (Qiskit-HumanEval's stop right
   after the docstring's closing quotes) gets its line break before the code; a prompt whose last
   line is only indentation loses that partial line (the code's own first line says where it
   starts).
2. *A whole function* (the code defines ``def <entry_point>(`` at column 0, imports and helpers
   included) follows the prompt; that later definition is the one the test sees. A prompt that
   stops at its signature gets a ``...`` body so that its own definition still compiles.
3. *A body* continues the function the prompt leaves open, and is re-indented when its
   indentation does not match the prompt's (the docstring's line sets it): a body written flush
   left, one whose first line lost its indentation (the output was stripped), a body indented by
   two spaces or by tabs. Only leading whitespace changes, by a shift of the body's base
   indentation (tabs become four spaces a level); lines that start inside a string keep theirs,
   and code after the body (a line less indented than its first, such as an
   ``if __name__ == "__main__":`` block) is left as written. Indentation that mixes tabs and
   spaces is left as written too: Python decides whether it compiles.

A prompt that does not parse as Python (nor after a stub body) is joined as written. Code longer
than `FIT_LIMIT` characters gets the joint only: re-indenting reads it line by line (about 10 µs
a line), and no model answer worth fitting is that long.

``fit="strict"`` joins as plain HumanEval harnesses do: prompt + code, nothing changed, for
numbers that must compare with theirs.

The sandbox runs the two halves apart: `join`'s text in the candidate's child, and `judging`'s
(the prompt made runnable, then the test) in the judge, which calls ``check(<entry_point>)``
itself, once, after the program's module code has finished. Any top-level ``check(...)`` call the
test makes (the "program" format) is blanked out, line numbers kept. `assemble` gives the two
halves as one program, as a plain single-process harness runs them (benchmarks and tests compare
with that).

What this module must never do: run the code, or parse it with anything that could backtrack
super-linearly (model output is untrusted). The prompt, which comes with the task, is parsed with
`ast` once per distinct prompt.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from qsandbox_env.extract import defines_function
from qsandbox_env.tasks import Task

__all__ = ["FIT_LIMIT", "FIT_POLICIES", "Program", "assemble", "join", "strip_check_calls"]

FIT_POLICIES = ("fitted", "strict")
"""How code meets a completion task's prompt: fitted (whitespace at the joint) or strict."""

FIT_LIMIT = 1 << 20
"""Characters of code above which a body is joined without re-indentation (1 MiB)."""

_UNIT = "    "  # one indentation level where the code's own level (a tab) must become spaces
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_LEAD = re.compile(r"[ \t]*")
_CODE_LINE = re.compile(r"^[ \t]*[^\s#]", re.MULTILINE)
# What decides how lines continue: strings (a triple-quoted one may span lines), comments,
# brackets, a backslash before a line break. Every alternative starts with a fixed character and
# each string body's alternatives are disjoint, so matching never backtracks.
_TOKEN = re.compile(
    r'(?P<string>"""(?:[^"\\]|\\(?:\r\n|[\s\S])|"(?!""))*(?:"""|\Z)'
    r"|'''(?:[^'\\]|\\(?:\r\n|[\s\S])|'(?!''))*(?:'''|\Z)"
    r'|"(?:[^"\\\r\n]|\\(?:\r\n|[\s\S]))*"?'
    r"|'(?:[^'\\\r\n]|\\(?:\r\n|[\s\S]))*'?)"
    r"|(?P<comment>#[^\r\n]*)"
    r"|(?P<open>[(\[{])|(?P<close>[)\]}])"
    r"|(?P<backslash>\\(?=\r|\n))"
    r"|(?P<newline>\r\n|\r|\n)"
)
_BREAK = re.compile(r"\r\n|\r|\n")
_LEADING_BREAK = re.compile(r"[ \t]*[\r\n]")
_HEADER_END = re.compile(r":[ \t]*(?:#[^\r\n]*)?[\r\n]*$")
_CODE, _FREE, _STRING = "code", "free", "string"  # kinds of physical lines of code


@dataclass(frozen=True)
class Program:
    """Program and test as one text (what a single-process harness runs), and where the test
    begins; the Verifier itself runs the halves apart (`join`, `judging`)."""

    source: str
    entry_point: str
    test_line: int  # 1-based line of ``source`` where the task's test starts

    def as_message(self) -> dict:
        return {"source": self.source, "entry_point": self.entry_point, "test_line": self.test_line}


def assemble(task: Task, code: str, *, fit: str = "fitted") -> Program:
    """Build the program for ``code`` (already extracted from model output) and ``task``: the
    candidate's text (`join`) followed by the task's test."""
    head = join(task, code, fit=fit)
    if not head.endswith("\n"):
        head += "\n"
    test_line = head.count("\n") + 1
    return Program(head + strip_check_calls(task.test), task.entry_point, test_line)


def join(task: Task, code: str, *, fit: str = "fitted") -> str:
    """The candidate's program text, without the test: ``code`` for a ``"program"`` task, the
    prompt followed by ``code`` fitted to it for a ``"completion"`` task (module docstring).

    Raises:
        ValueError: ``fit`` is not one of `FIT_POLICIES`.

    Example:
        >>> task = Task("demo/0", "def one():\\n    'One.'", "def check(c): pass", "one")
        >>> print(join(task, "return 1"))
        def one():
            'One.'
            return 1
        >>> join(task, "return 1", fit="strict")
        "def one():\\n    'One.'return 1"
    """
    if fit not in FIT_POLICIES:
        raise ValueError(f"fit: expected one of {', '.join(FIT_POLICIES)}, got {fit!r}")
    if task.format == "program":
        return code
    if fit == "strict":
        return task.prompt + code
    prompt = _read_prompt(task.prompt, task.entry_point)
    if prompt is None:
        return task.prompt + code
    if defines_function(code, task.entry_point):
        return prompt.joined_to(code, prompt.stub)
    if prompt.body is None or len(code) > FIT_LIMIT:
        return prompt.joined_to(code)
    return prompt.joined_to(_fit_body(code, prompt.body))


# -- the prompt -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prompt:
    """A prompt read for joining: its text up to the joint, and the body it leaves open."""

    text: str  # the prompt, less a last partial line of indentation
    head: str  # the text, ending in a line break
    body: str | None  # indentation of the function body it leaves open; None: it leaves none
    stub: str  # a body for a prompt that stops at its signature ("" otherwise)

    def joined_to(self, code: str, stub: str = "") -> str:
        # Code that starts with its own line break (as canonical solutions do) needs no other.
        if not stub and _LEADING_BREAK.match(code):
            return self.text + code
        return self.head + stub + code


@functools.lru_cache(maxsize=4096)
def _read_prompt(prompt: str, entry_point: str) -> _Prompt | None:
    lines = _LINE.findall(prompt)
    if lines and not lines[-1].strip() and not lines[-1].endswith(("\n", "\r")):
        lines.pop()  # a partial line of indentation; the code's first line sets its own
    text = "".join(lines)
    head = text + "\n" if text and not text.endswith(("\n", "\r")) else text
    try:
        tree = ast.parse(head)
    except (SyntaxError, ValueError):
        return _read_signature_only(text, head, lines)
    return _Prompt(text, head, _open_body(tree, lines, entry_point), "")


def _read_signature_only(text: str, head: str, lines: list[str]) -> _Prompt | None:
    """A prompt that stops at a block header (``def f(x):``), comments at most after it."""
    code_lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not code_lines or not _HEADER_END.search(code_lines[-1]):
        return None
    lead = _LEAD.match(code_lines[-1]).group()  # type: ignore[union-attr]
    body = lead + ("\t" if "\t" in lead else _UNIT)
    stub = f"{body}...\n"
    try:
        ast.parse(head + stub)
    except (SyntaxError, ValueError):
        return None
    return _Prompt(text, head, body, stub)


def _open_body(tree: ast.Module, lines: list[str], entry_point: str) -> str | None:
    """The indentation of the body of the function the prompt ends in, when code continues it:
    a function with only its docstring so far, or the entry point itself."""
    node: ast.stmt | None = tree.body[-1] if tree.body else None
    while isinstance(node, ast.ClassDef):
        node = node.body[-1]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    first = node.body[0]
    if first.lineno == node.lineno:
        return None  # "def f(): ..." on one line: nothing can continue it
    only_docstring = (
        len(node.body) == 1
        and isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    )
    if not only_docstring and node.name != entry_point:
        return None
    return _LEAD.match(lines[first.lineno - 1]).group()  # type: ignore[union-attr]


# -- the body -------------------------------------------------------------------------------------


def _fit_body(code: str, indent: str) -> str:
    """``code`` as the body of a function whose body is indented by ``indent``."""
    first = _CODE_LINE.search(code)
    if first is None or code[first.start() : first.end() - 1] == indent:
        return code  # nothing but comments, or already indented like the prompt
    lines = _physical_lines(code)
    rows = [row for row, (_, kind) in enumerate(lines) if kind == _CODE]
    leads = {row: _LEAD.match(lines[row][0]).group() for row in rows}  # type: ignore[union-attr]
    base = _base_indent(lines[rows[0]][0], [leads[row] for row in rows[1:]])
    # The body ends before the first line less indented than its base: code after it is not
    # part of the body (a usage example at column 0) and stays as written.
    end = next((row for row in rows[1:] if not leads[row].startswith(base)), len(lines))
    shift = _shifter(base, indent, [leads[row] for row in rows[1:] if row < end])
    if shift is None:
        return code
    fitted = [text for text, _ in lines]
    for row in range(rows[0], end):
        text, kind = lines[row]
        if kind == _STRING or not text.strip():
            continue
        lead = base if row == rows[0] else _LEAD.match(text).group()  # type: ignore[union-attr]
        rest = text[len(_LEAD.match(text).group()) :]  # type: ignore[union-attr]
        fitted[row] = (shift(lead) if lead.startswith(base) else indent + lead) + rest
    return "".join(fitted)


def _base_indent(first: str, later: list[str]) -> str:
    """The indentation of the body's first line: its own, or, when the output lost it (the first
    line alone at column 0), the least indentation of the lines after it."""
    own = _LEAD.match(first).group()  # type: ignore[union-attr]
    if own or not later or not all(later):
        return own
    least = min(later, key=len)
    # A block header at column 0 followed by its block at one level was written flush left; had
    # it lost its indentation, its block would be deeper than the lines after the block.
    if _HEADER_END.search(first) and len(later[0]) <= len(least):
        return own
    return least


def _shifter(base: str, indent: str, leads: list[str]) -> Callable[[str], str] | None:
    """How a line's indentation (starting with ``base``) moves to the prompt's ``indent``: the
    base is replaced, and levels written with tabs become four spaces each when the prompt
    indents with spaces. None when the levels mix tabs and spaces."""
    rests = [lead[len(base) :] for lead in leads]
    if all("\t" not in rest for rest in rests):
        return lambda lead: indent + lead[len(base) :]
    if all(not rest.strip("\t") for rest in rests):
        unit = "\t" if "\t" in indent else _UNIT
        return lambda lead: (
            indent + unit * len(lead[len(base) :])
            if not lead[len(base) :].strip("\t")
            else indent + lead[len(base) :]
        )
    return None


def _physical_lines(code: str) -> list[tuple[str, str]]:
    """Each physical line of ``code`` with its kind: ``code`` (starts a statement), ``free``
    (blank, a comment or a continuation inside brackets or after a backslash: Python ignores its
    indentation) or ``string`` (starts inside a string: its whitespace is the string's)."""
    starts: dict[int, str | None] = {0: None}  # line start -> kind, None: decided by its content
    depth, continued = 0, False
    for token in _TOKEN.finditer(code):
        kind = token.lastgroup
        if kind == "newline":
            starts[token.end()] = _FREE if depth or continued else None
            continued = False
        elif kind == "string":
            for line_break in _BREAK.finditer(code, token.start(), token.end()):
                starts[line_break.end()] = _STRING
        elif kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "backslash":
            continued = True
    positions = sorted(position for position in starts if position < len(code))
    lines = []
    for index, position in enumerate(positions):
        end = positions[index + 1] if index + 1 < len(positions) else len(code)
        text = code[position:end]
        kind = starts[position]
        if kind is None:
            kind = _CODE if _CODE_LINE.match(text) else _FREE
        lines.append((text, kind))
    return lines


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


# -- the judge's side -----------------------------------------------------------------------------


def judging(task: Task) -> dict:
    """What the judge runs for ``task``: trusted task code only, never the model's.

    ``prelude`` is the prompt of a ``"completion"`` task made runnable (its imports and helpers,
    and its own stub of the entry point, which the judge then replaces by the candidate's proxy),
    so that a test may use names the prompt imported, as it could when it followed the prompt in
    one program. ``test`` is the task's test with its own top-level ``check(...)`` calls blanked.
    """
    prelude = "" if task.format == "program" else _runnable_prompt(task.prompt)
    return {
        "prelude": prelude,
        "test": strip_check_calls(task.test),
        "entry_point": task.entry_point,
    }


@functools.lru_cache(maxsize=1024)
def import_lines(test: str) -> str:
    """The import statements at the top level of a test, one per line ('' when it has none).

    The child runs them after the program, for the names the program left undefined: when the
    test followed the program in one module, its imports ran before ``check`` called the
    candidate, and a program answered with only its function relied on them. Import lines are
    all the child learns of the test.
    """
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ""
    lines = [
        ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return "".join(line + "\n" for line in lines)


@functools.lru_cache(maxsize=1024)
def _runnable_prompt(prompt: str) -> str:
    """The prompt itself when it compiles, else with a stub body, else its import lines."""
    text = prompt if prompt.endswith("\n") else prompt + "\n"
    for attempt in (text, text + "    ...\n", text + "        ...\n"):
        try:
            compile(attempt, "<prompt>", "exec", dont_inherit=True)
            return attempt
        except (SyntaxError, ValueError):
            continue
    imports = [
        line
        for line in text.splitlines(keepends=True)
        if line.startswith("import ") or (line.startswith("from ") and " import " in line)
    ]
    return "".join(imports)
