"""Raw model text → the code to run.

`extract_code` turns what a model wrote into the code the program assembler receives. The rules,
applied in order:

1. **Reasoning is dropped.** ``<think>…</think>`` and ``<thinking>…</thinking>`` blocks are removed.
   A closing tag with no opening tag before it (the chat template opened the block in the prompt)
   drops everything up to it; an opening tag that is never closed drops everything after it (the
   model never reached its answer).
2. **A fenced code block is chosen when there is one.** Fences are lines starting with three or more
   backticks or tildes, optionally followed by a language tag (``python``, ``py``, ``python3``, any
   case); a block ends at a line with a matching fence of at least the same length. Blocks tagged
   as Python or untagged are preferred over other languages (``bash``, ``text``, ``json``,
   ``output`` …); the others are considered only when there are none. Among the candidates, when
   a task is given, the blocks that define ``def <entry_point>(`` win; the longest remaining block
   is chosen, the last one on a tie. A fence that is never closed takes the rest of the text. The
   block's content is returned without its fences, dedented by the opening fence's indentation.
3. **Text without fences is returned unchanged**: it is already code, or a completion that continues
   the prompt.

What this module must never do: raise for any ``str`` input (NUL bytes, lone surrogates and very
large texts included), run or parse the code it extracts, or use a regular expression that can
backtrack super-linearly; model output is untrusted and may be built to hang a parser. New rules
are added as steps to `_STEPS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from qsandbox_env.tasks import Task

__all__ = ["extract_code"]

_REASONING_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))
_PYTHON_TAGS = frozenset({"python", "python3", "py", "py3", "ipython", "ipython3"})
# One fence line. Each part is either a fixed character class or runs to the end of the line, so a
# match never backtracks more than the length of the line's leading whitespace.
_FENCE_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$", re.MULTILINE
)
_NON_BLANK = re.compile(r"\S")


class _Block(NamedTuple):
    """A fenced block as offsets into the text, so choosing among blocks copies nothing."""

    start: int
    end: int
    language: str
    indent: int
    order: int

    @property
    def length(self) -> int:
        return self.end - self.start


def extract_code(completion: str, task: Task | None = None) -> str:
    """Return the code in a model's raw output.

    Args:
        completion: The model's text, exactly as generated.
        task: The task being answered; with it, the block defining its entry point is preferred.

    Returns:
        The code to hand to the program assembler; possibly empty.

    Raises:
        TypeError: ``completion`` is not a string.

    Example:
        >>> extract_code("Here you go:\\n```python\\nprint(1)\\n```\\nDone.")
        'print(1)\\n'
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion: expected str, got {type(completion).__name__}")
    text = completion
    for step in _STEPS:
        text = step(text, task)
    return text


def _strip_reasoning(text: str, task: Task | None) -> str:
    """Rule 1: drop reasoning blocks."""
    for opening, closing in _REASONING_TAGS:
        if opening in text or closing in text:
            text = _drop_tagged(text, opening, closing)
    return text


def _drop_tagged(text: str, opening: str, closing: str) -> str:
    # str.find instead of a lazy `<think>.*?</think>` regex: with many unclosed openings that
    # regex rescans to the end from each one (quadratic); this loop reads the text once.
    first_close = text.find(closing)
    first_open = text.find(opening)
    position = 0
    if first_close != -1 and (first_open == -1 or first_close < first_open):
        position = first_close + len(closing)
    kept = []
    while True:
        start = text.find(opening, position)
        if start == -1:
            kept.append(text[position:])
            break
        kept.append(text[position:start])
        end = text.find(closing, start + len(opening))
        if end == -1:
            break
        position = end + len(closing)
    return "".join(kept)


def _select_fenced_block(text: str, task: Task | None) -> str:
    """Rule 2 (and rule 3 when there are no fences): keep only the best fenced block."""
    # Fast exit in C for the common fence-free case, before any per-line work.
    if "```" not in text and "~~~" not in text:
        return text
    # A blank block is a stray fence (e.g. the closing half of an inline "```python x```").
    blocks = [
        block for block in _fenced_blocks(text) if _NON_BLANK.search(text, block.start, block.end)
    ]
    if not blocks:
        return text
    return _block_text(text, _choose_block(text, blocks, task))


def _fenced_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    opener: re.Match[str] | None = None
    for line in _FENCE_LINE.finditer(text):
        if opener is None:
            opener = line
        elif _closes(opener, line):
            blocks.append(_make_block(text, opener, line.start(), len(blocks)))
            opener = None
    if opener is not None:
        blocks.append(_make_block(text, opener, len(text), len(blocks)))
    return blocks


def _closes(opener: re.Match[str], line: re.Match[str]) -> bool:
    # CommonMark: same character, at least as long, nothing after it. Any other fence line inside
    # a block is content (e.g. a string holding a fence).
    fence = opener["fence"]
    return (
        line["fence"][0] == fence[0]
        and len(line["fence"]) >= len(fence)
        and not line["info"].strip()
    )


def _make_block(text: str, opener: re.Match[str], end: int, order: int) -> _Block:
    start = min(opener.end() + 1, len(text))
    words = opener["info"].strip().lstrip("{.").split()
    language = words[0].lower().rstrip("}") if words else ""
    return _Block(start, max(start, end), language, len(opener["indent"]), order)


def _choose_block(text: str, blocks: list[_Block], task: Task | None) -> _Block:
    candidates = [block for block in blocks if _is_python(block)] or blocks
    if task is not None:
        defines = _entry_point_pattern(task.entry_point)
        defining = [block for block in candidates if defines.search(text, block.start, block.end)]
        candidates = defining or candidates
    return max(candidates, key=lambda block: (block.length, block.order))


def _is_python(block: _Block) -> bool:
    # Untagged blocks count: many models leave the tag off their code.
    return not block.language or block.language in _PYTHON_TAGS


def _entry_point_pattern(entry_point: str) -> re.Pattern[str]:
    name = re.escape(entry_point)
    return re.compile(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{name}[ \t]*\(", re.MULTILINE)


def _block_text(text: str, block: _Block) -> str:
    code = text[block.start : block.end]
    if block.indent:
        # A fence indented inside a list item indents its content too; remove that much.
        code = re.sub(rf"(?m)^[ \t]{{1,{block.indent}}}", "", code)
    return code


_STEPS: tuple[Callable[[str, Task | None], str], ...] = (_strip_reasoning, _select_fenced_block)
