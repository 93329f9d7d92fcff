"""Tests for qsandbox_env.extract: raw model text → code."""

from __future__ import annotations

import time

import pytest

from qsandbox_env.extract import extract_code
from qsandbox_env.tasks import Task

BELL = Task(
    task_id="demo/0",
    prompt="from qiskit import QuantumCircuit\ndef bell():\n",
    test="def check(candidate):\n    assert candidate().num_qubits == 2\n",
    entry_point="bell",
)
BELL_CODE = "def bell():\n    return QuantumCircuit(2)\n"
# Inputs of 20 MB must finish in well under this; a quadratic scan would take hours.
LARGE_INPUT_SECONDS = 10.0


def fenced(code: str, tag: str = "python", fence: str = "```") -> str:
    return f"{fence}{tag}\n{code}{fence}\n"


# --- fenced blocks --------------------------------------------------------------------------------


def test_a_fenced_python_block_is_extracted_from_the_prose_around_it() -> None:
    text = f"Here is the function:\n\n{fenced(BELL_CODE)}\nIt returns a circuit."
    assert extract_code(text) == BELL_CODE


def test_an_untagged_fence_is_extracted() -> None:
    assert extract_code(f"Sure.\n{fenced(BELL_CODE, tag='')}") == BELL_CODE


def test_a_tilde_fence_is_extracted() -> None:
    assert extract_code(f"Sure.\n{fenced(BELL_CODE, fence='~~~')}") == BELL_CODE


@pytest.mark.parametrize("tag", ["python", "py", "python3", "Python", "PY", " python "])
def test_every_python_tag_spelling_counts_as_python(tag: str) -> None:
    text = fenced("echo a much longer shell command than the code\n", "bash") + fenced(
        "x = 1\n", tag
    )
    assert extract_code(text) == "x = 1\n"


def test_a_python_block_is_chosen_over_a_longer_bash_block() -> None:
    text = (
        "Install first:\n"
        + fenced("pip install qiskit qiskit-aer qiskit-ibm-runtime matplotlib\n", "bash")
        + "Then:\n"
        + fenced("x = 1\n")
    )
    assert extract_code(text) == "x = 1\n"


def test_an_untagged_block_is_chosen_over_an_output_block() -> None:
    text = (
        fenced("x = 1\n", "")
        + "Output:\n"
        + fenced("{'00': 512, '11': 512} and more output\n", "text")
    )
    assert extract_code(text) == "x = 1\n"


def test_other_languages_are_used_when_there_is_no_python_block() -> None:
    assert extract_code(fenced("x = 1\n", "qiskit")) == "x = 1\n"


def test_the_block_defining_the_entry_point_wins_over_a_longer_one() -> None:
    usage = "circuit = bell()\nprint(circuit.draw())\nprint(circuit.num_qubits, circuit.depth())\n"
    text = fenced(BELL_CODE) + "Usage:\n" + fenced(usage)
    assert extract_code(text, BELL) == BELL_CODE


def test_an_async_definition_of_the_entry_point_counts() -> None:
    code = "async def bell():\n    pass\n"
    text = fenced(code) + fenced("print('a longer block without the entry point')\n")
    assert extract_code(text, BELL) == code


def test_without_a_task_the_longest_block_wins() -> None:
    text = fenced("x = 1\n") + fenced("longer = 2\n") + fenced("y = 3\n")
    assert extract_code(text) == "longer = 2\n"


def test_among_equally_long_blocks_the_last_wins() -> None:
    text = fenced("x = 1\n") + fenced("y = 2\n")
    assert extract_code(text) == "y = 2\n"


def test_an_unclosed_final_fence_takes_the_rest_of_the_text() -> None:
    assert extract_code(f"Here:\n```python\n{BELL_CODE}") == BELL_CODE


def test_a_fence_line_with_a_tag_inside_a_block_is_content() -> None:
    code = 'doc = """\n```python\n"""\n'
    assert extract_code(fenced(code)) == code


def test_an_indented_fence_removes_its_indentation_from_the_code() -> None:
    text = "1. Write the function:\n\n   ```python\n   def bell():\n       pass\n   ```\n"
    assert extract_code(text) == "def bell():\n    pass\n"


def test_a_block_of_only_whitespace_is_ignored() -> None:
    text = "x = 1  # see ```\n```\n\n```\n"
    assert extract_code(text) == text


# --- text without fences --------------------------------------------------------------------------


def test_text_without_fences_is_returned_unchanged() -> None:
    continuation = "\n    circuit = QuantumCircuit(2)\n    return circuit\n"
    assert extract_code(continuation, BELL) == continuation


def test_an_empty_completion_gives_empty_code() -> None:
    assert extract_code("") == ""


# --- reasoning ------------------------------------------------------------------------------------


def test_a_think_block_is_removed() -> None:
    text = "<think>\nMaybe:\n```python\nx = 0\n```\n</think>\nx = 1\n"
    assert extract_code(text) == "\nx = 1\n"


def test_a_thinking_block_is_removed() -> None:
    text = "<thinking>a longer ```python\ndraft = 0\n``` here</thinking>" + fenced("x = 1\n")
    assert extract_code(text) == "x = 1\n"


def test_every_think_block_is_removed() -> None:
    assert extract_code("<think>a</think>x = 1\n<think>b</think>y = 2\n") == "x = 1\ny = 2\n"


def test_a_closing_think_tag_without_an_opening_drops_what_precedes_it() -> None:
    text = "The chat template opened the block; reasoning...</think>\nx = 1\n"
    assert extract_code(text) == "\nx = 1\n"


def test_an_unclosed_think_block_drops_the_rest_of_the_text() -> None:
    text = "x = 1\n<think>\nstill reasoning\n" + fenced("y = 2\n")
    assert extract_code(text) == "x = 1\n"


# --- input the extractor must survive -------------------------------------------------------------


def test_a_non_string_completion_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^completion: expected str, got bytes$"):
        extract_code(b"x = 1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "\x00",
        "x = '\x00'\n",
        "\ud800",
        "```python\n\ud800\x00\n```",
        "```",
        "~~~~",
        "`" * 1000,
        "<think>",
        "</think>",
        "</thinking><thinking>",
        "```python\n<think>\n```\n</think>",
        "\r\n```python\r\nx = 1\r\n```\r\n",
    ],
)
def test_odd_input_does_not_raise(text: str) -> None:
    assert isinstance(extract_code(text, BELL), str)


def test_nul_bytes_and_lone_surrogates_inside_a_block_are_kept() -> None:
    assert extract_code(fenced("x = '\x00\ud800'\n")) == "x = '\x00\ud800'\n"


def assert_fast(text: str) -> str:
    started = time.perf_counter()
    code = extract_code(text, BELL)
    assert time.perf_counter() - started < LARGE_INPUT_SECONDS
    return code


def test_20_mb_without_fences_is_returned_unchanged_quickly() -> None:
    text = "x = 1\n" * 3_500_000
    assert assert_fast(text) == text


def test_20_mb_after_an_unclosed_fence_is_extracted_quickly() -> None:
    body = "x = 1\n" * 3_500_000
    assert assert_fast("```python\n" + body) == body


def test_20_mb_of_unclosed_think_tags_is_handled_quickly() -> None:
    assert assert_fast("<think>" * 3_000_000) == ""


def test_20_mb_of_backticks_on_one_line_is_handled_quickly() -> None:
    text = "`" * 20_000_000
    assert assert_fast(text) == text
