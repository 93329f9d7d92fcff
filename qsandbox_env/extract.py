"""Raw model output → the code to run.

`extract_code` turns what a model wrote into the code the program assembler
(:func:`qsandbox_env.program.assemble`) receives. The rules, applied in order:

1. **A chat reply is read from its last assistant message.** A completion may be a string or a
   list of chat messages (``{"role": ..., "content": ...}`` dicts, as TRL passes conversational
   completions); the content of the last message whose role is ``"assistant"`` is used (text parts
   of a list-valued content are joined).
2. **Reasoning is dropped.** ``<think>…</think>`` and ``<thinking>…</thinking>`` blocks are
   removed. A closing tag with no opening tag before it (the chat template opened the block in the
   prompt) drops everything up to it; an opening tag that is never closed drops everything after
   it (the model never reached its answer).
3. **A fenced code block is chosen when there is one.** Fences are lines starting with three or
   more backticks or tildes, optionally followed by a language tag (``python``, ``py``,
   ``python3``, any case); a block ends at a line with a matching fence of at least the same
   length. Blocks tagged as Python or untagged are preferred over other languages (``bash``,
   ``text``, ``json``, ``output`` …); the others are considered only when there are none. Among
   the candidates, when a task is given, the blocks that define ``def <entry_point>(`` win (so a
   solution beats a longer usage example); the longest remaining block is chosen, the last one on
   a tie. A fence that is never closed (generation cut at the token limit) takes the rest of the
   text, less trailing statement headers left without a body (``if __name__ == "__main__":``
   cut right after its colon), which could never compile. The block's content is returned
   without its fences, dedented by the opening fence's indentation. One exception: a first fence
   that is bare (no tag) and follows an indented body closes a block the prompt opened (a prompt
   ending in a ``python`` fence); the body before it is the code.
4. **Import-only blocks before the chosen block are kept.** Models often show the imports in a
   block of their own ("First, import …") and the function in the next; Python blocks made only of
   ``import``/``from … import`` lines that come before the chosen block are prepended to it.
5. **Prose around unfenced code is dropped.** In text without fences, lines at column 0 that read
   as prose ("Here is the function:", "Sure!", "This circuit prepares …", Markdown list items) are
   removed wherever they stand; everything else, comments included, is kept. Text with no such
   line is returned unchanged: it is already code, or a completion that continues the prompt.

Fitting the code to the task's prompt (indentation, the joint, a whole function after the prompt)
is the program assembler's job (:func:`qsandbox_env.program.join`), where the prompt is known.

What this module must never do: raise for any ``str`` input (NUL bytes, lone surrogates and very
large texts included), run or parse the code it extracts, or use a regular expression that can
backtrack super-linearly; model output is untrusted and may be built to hang a parser. New rules
are added as steps to `_STEPS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

if TYPE_CHECKING:
    from qsandbox_env.tasks import Task

__all__ = ["Completion", "completion_text", "defines_function", "extract_code"]

Completion: TypeAlias = "str | Sequence[Mapping[str, Any]]"
"""Raw model output: a string, or chat messages whose last assistant message is the answer."""

_REASONING_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"))
_PYTHON_TAGS = frozenset({"python", "python3", "py", "py3", "ipython", "ipython3"})
# One fence line. Each part is either a fixed character class or runs to the end of the line, so a
# match never backtracks more than the length of the line's leading whitespace.
_FENCE_LINE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)$", re.MULTILINE
)
_NON_BLANK = re.compile(r"\S")
_IMPORT_LINE = re.compile(r"[ \t]*(?:import[ \t]|from[ \t]+\S+[ \t]+import[ \t])")
# Prose at column 0: a capitalised word (not a Python constant) followed by two more words, the
# second of which starts like a word, not like an operator ("Result = ..." is code); or a few
# words ending a sentence or a heading ("Sure!", "Example usage:"); or Markdown list items and bold.
_PROSE_LINE = re.compile(
    r"^(?:(?!(?:True|False|None)\b)[A-Z][a-z']*[,:!.]?[ ][A-Za-z`'\"(][^ \n]*[ ]\S"
    r"|[A-Z][a-z']*(?:[ ][A-Za-z'`]+)*[!:.][ \t\r]*$"
    r"|(?:[-*+]|\d{1,3}[.)])[ ]+[A-Za-z`*]"
    r"|\*\*)",
    re.MULTILINE,
)
_ASSIGNMENT = re.compile(r" [-+*/%|&^]?= ")


class _Block(NamedTuple):
    """A fenced block as offsets into the text, so choosing among blocks copies nothing."""

    start: int
    end: int
    language: str
    indent: int
    order: int
    closed: bool

    @property
    def length(self) -> int:
        return self.end - self.start


def extract_code(completion: Completion, task: Task | None = None) -> str:
    """Return the code in a model's raw output.

    Args:
        completion: The model's output exactly as generated: a string, or a list of chat messages
            (the last ``"assistant"`` message is the answer).
        task: The task being answered; with it, the block defining its entry point is preferred.

    Returns:
        The code to hand to the program assembler; possibly empty.

    Raises:
        TypeError: ``completion`` is neither a string nor a list of chat messages.
        ValueError: ``completion`` is a list of messages without an assistant message.

    Example:
        >>> extract_code("Here you go:\\n```python\\nprint(1)\\n```\\nDone.")
        'print(1)\\n'
        >>> reply = [{"role": "user", "content": "?"}, {"role": "assistant", "content": "x=1"}]
        >>> extract_code(reply)
        'x=1'
    """
    text = completion_text(completion)
    for step in _STEPS:
        text = step(text, task)
    return text


def completion_text(completion: Completion) -> str:
    """Rule 1: the text of a completion, a string itself or the last assistant message's content.

    Raises:
        TypeError: Not a string or a list of chat message dicts, or a message's content is not
            text.
        ValueError: No message has the role ``"assistant"``.

    Example:
        >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "x"}]}])
        'x'
    """
    if isinstance(completion, str):
        return completion
    if not isinstance(completion, list | tuple):
        raise TypeError(
            "completion: expected str or a list of chat messages ({'role': ..., 'content': ...} "
            f"dicts), got {type(completion).__name__}"
        )
    for index in range(len(completion) - 1, -1, -1):
        message = completion[index]
        if not isinstance(message, Mapping) or "role" not in message:
            raise TypeError(
                f"completion[{index}]: expected a chat message dict with 'role' and 'content', "
                f"got {_describe(message)}"
            )
        if message["role"] == "assistant":
            return _content_text(message.get("content"), index)
    roles = [message["role"] for message in completion]
    raise ValueError(
        f"completion: no message with role 'assistant' among roles {roles}; pass the model's "
        "reply (TRL's conversational completions end with one)"
    )


def _content_text(content: object, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, Mapping) for part in content):
        # Multimodal-style content: only text parts can hold code.
        return "".join(
            part["text"]
            for part in content
            if part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    raise TypeError(
        f"completion[{index}]['content']: expected str, a list of text parts or None, "
        f"got {type(content).__name__}"
    )


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))}"
    return type(value).__name__


def defines_function(code: str, name: str) -> bool:
    """Whether ``code`` defines the function ``name`` at column 0 (a whole function, not a body).

    Example:
        >>> defines_function("import math\\n\\ndef area(r):\\n    return math.pi * r**2\\n", "area")
        True
        >>> defines_function("    def area(r):\\n        pass\\n", "area")
        False
    """
    return _top_level_definition(name).search(code) is not None


# -- rule 2: reasoning ----------------------------------------------------------------------------


def _strip_reasoning(text: str, task: Task | None) -> str:
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


# -- rules 3 to 5: code out of text ---------------------------------------------------------------


def _select_code(text: str, task: Task | None) -> str:
    # Fast exit in C for the common fence-free case, before any per-line work.
    if "```" not in text and "~~~" not in text:
        return _drop_prose(text)
    first_fence = _FENCE_LINE.search(text)
    if first_fence is not None and _closes_a_prompt_block(text, first_fence):
        return text[: first_fence.start()]
    # A blank block is a stray fence (e.g. the closing half of an inline "```python x```").
    blocks = [
        block for block in _fenced_blocks(text) if _NON_BLANK.search(text, block.start, block.end)
    ]
    if not blocks:
        return _drop_prose(text)
    chosen = _choose_block(text, blocks, task)
    imports = [
        _block_text(text, block)
        for block in blocks
        if block.order < chosen.order and _is_python(block) and _only_imports(text, block)
    ]
    return "".join(imports) + _block_text(text, chosen)


def _closes_a_prompt_block(text: str, fence: re.Match[str]) -> bool:
    # A continuation of a prompt that opened a fence is an indented body ending in a bare fence.
    if fence["info"].strip():
        return False
    first = _NON_BLANK.search(text, 0, fence.start())
    return first is not None and first.start() != text.rfind("\n", 0, first.start()) + 1


def _fenced_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    opener: re.Match[str] | None = None
    for line in _FENCE_LINE.finditer(text):
        if opener is None:
            opener = line
        elif _closes(opener, line):
            blocks.append(_make_block(text, opener, line.start(), len(blocks), closed=True))
            opener = None
    if opener is not None:
        blocks.append(_make_block(text, opener, len(text), len(blocks), closed=False))
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


def _make_block(text: str, opener: re.Match[str], end: int, order: int, *, closed: bool) -> _Block:
    start = min(opener.end() + 1, len(text))
    words = opener["info"].strip().lstrip("{.").split()
    language = words[0].lower().rstrip("}") if words else ""
    return _Block(start, max(start, end), language, len(opener["indent"]), order, closed)


def _choose_block(text: str, blocks: list[_Block], task: Task | None) -> _Block:
    candidates = [block for block in blocks if _is_python(block)] or blocks
    if task is not None:
        defines = _any_definition(task.entry_point)
        defining = [block for block in candidates if defines.search(text, block.start, block.end)]
        candidates = defining or candidates
    return max(candidates, key=lambda block: (block.length, block.order))


def _is_python(block: _Block) -> bool:
    # Untagged blocks count: many models leave the tag off their code.
    return not block.language or block.language in _PYTHON_TAGS


def _only_imports(text: str, block: _Block) -> bool:
    lines = [line for line in text[block.start : block.end].splitlines() if line.strip()]
    return all(_IMPORT_LINE.match(line) for line in lines)


def _any_definition(entry_point: str) -> re.Pattern[str]:
    name = re.escape(entry_point)
    return re.compile(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{name}[ \t]*\(", re.MULTILINE)


def _top_level_definition(entry_point: str) -> re.Pattern[str]:
    name = re.escape(entry_point)
    return re.compile(rf"^(?:async[ \t]+)?def[ \t]+{name}[ \t]*\(", re.MULTILINE)


def _block_text(text: str, block: _Block) -> str:
    code = text[block.start : block.end]
    if block.indent:
        # A fence indented inside a list item indents its content too; remove that much.
        code = re.sub(rf"(?m)^[ \t]{{1,{block.indent}}}", "", code)
    return code if block.closed else _drop_bodiless_headers(code)


def _drop_bodiless_headers(code: str) -> str:
    # A cut-off block may end in headers whose body was never written ("if __name__ ==
    # '__main__':", comments at most below it). They can never compile, while the code before
    # them may be complete.
    kept_end = position = len(code)
    while position > 0:
        line_start = code.rfind("\n", 0, position - 1) + 1
        line = code[line_start:position].strip()
        position = line_start
        if not line or line.startswith("#"):
            continue
        if not line.endswith(":"):
            break
        kept_end = line_start
    return code[:kept_end]


def _drop_prose(text: str) -> str:
    # One scan in C first: most unfenced text (a continuation, plain code) has no prose at all.
    if _PROSE_LINE.search(text) is None:
        return text
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not _is_prose(line)]
    if len(kept) == len(lines) or not any(line.strip() for line in kept):
        return text
    return "".join(kept)


def _is_prose(line: str) -> bool:
    return _PROSE_LINE.match(line) is not None and _ASSIGNMENT.search(line) is None


_STEPS: tuple[Callable[[str, Task | None], str], ...] = (
    _strip_reasoning,
    _select_code,
)
