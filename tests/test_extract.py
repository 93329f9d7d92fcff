"""Tests for qsandbox_env.extract: raw model text → code."""

from __future__ import annotations

import time

import pytest

from qsandbox_env.extract import completion_text, defines_function, extract_code
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import Task
from qsandbox_env.verifier import Outcome

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


def test_an_unclosed_fence_loses_trailing_headers_without_a_body() -> None:
    cut_off = "if __name__ == '__main__':\n    # demo\n    for _ in range(2):\n"
    text = f"```python\n{BELL_CODE}\n{cut_off}"
    assert extract_code(text) == f"{BELL_CODE}\n"


def test_a_closed_fence_keeps_a_trailing_header() -> None:
    code = "if True:\n"
    assert extract_code(fenced(code)) == code


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
    message = (
        r"^completion: expected str or a list of chat messages \(\{'role': \.\.\., "
        r"'content': \.\.\.\} dicts\), got bytes$"
    )
    with pytest.raises(TypeError, match=message):
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


def test_10_mb_of_prose_like_lines_is_handled_quickly() -> None:
    text = "Here is a line of prose?\n" * 400_000 + "A" + " a" * 500_000 + "?"
    assert isinstance(assert_fast(text), str)


def test_10_mb_of_bodiless_headers_after_an_unclosed_fence_is_handled_quickly() -> None:
    assert assert_fast("```python\nx = 1\n" + "if x:\n" * 1_700_000) == "x = 1\n"


# --- chat messages --------------------------------------------------------------------------------


def test_a_message_list_gives_the_last_assistant_message() -> None:
    messages = [
        {"role": "system", "content": "Answer with code."},
        {"role": "user", "content": "Write bell()."},
        {"role": "assistant", "content": "first try"},
        {"role": "user", "content": "Again."},
        {"role": "assistant", "content": fenced(BELL_CODE)},
    ]
    assert extract_code(messages, BELL) == BELL_CODE


def test_text_parts_of_a_message_content_are_joined() -> None:
    content = [
        {"type": "text", "text": "```python\ndef bell():\n"},
        {"type": "image", "image": None},
        {"type": "text", "text": "    return QuantumCircuit(2)\n```\n"},
    ]
    assert extract_code([{"role": "assistant", "content": content}]) == BELL_CODE


def test_an_assistant_message_without_content_gives_empty_code() -> None:
    assert extract_code([{"role": "assistant", "content": None}]) == ""


def test_a_message_list_without_an_assistant_message_is_a_value_error() -> None:
    message = (
        r"^completion: no message with role 'assistant' among roles \['user'\]; pass the "
        r"model's reply \(TRL's conversational completions end with one\)$"
    )
    with pytest.raises(ValueError, match=message):
        extract_code([{"role": "user", "content": "hi"}])


def test_a_message_that_is_not_a_dict_is_a_type_error() -> None:
    message = r"^completion\[0\]: expected a chat message dict with 'role' and 'content', got str$"
    with pytest.raises(TypeError, match=message):
        extract_code(["x = 1"])  # type: ignore[list-item]


def test_a_message_content_that_is_not_text_is_a_type_error() -> None:
    message = r"^completion\[0\]\['content'\]: expected str, a list of text parts or None, got int$"
    with pytest.raises(TypeError, match=message):
        extract_code([{"role": "assistant", "content": 1}])


# --- blocks that belong together, prose around unfenced code ------------------------------------


def test_an_import_only_block_before_the_chosen_block_is_prepended() -> None:
    text = (
        "Imports:\n" + fenced("from qiskit import QuantumCircuit\n") + "Then:\n" + fenced(BELL_CODE)
    )
    assert extract_code(text, BELL) == "from qiskit import QuantumCircuit\n" + BELL_CODE


def test_an_import_only_block_after_the_chosen_block_is_not_prepended() -> None:
    text = fenced(BELL_CODE) + fenced("import numpy as np\n")
    assert extract_code(text, BELL) == BELL_CODE


def test_prose_lines_around_unfenced_code_are_dropped() -> None:
    text = f"Sure! Here is the function:\n\n{BELL_CODE}\nThis returns a two-qubit circuit.\n"
    assert extract_code(text) == f"\n{BELL_CODE}\n"


@pytest.mark.parametrize(
    "line",
    [
        "Result = build(2)",
        "True or False",
        "OPENQASM 3.0;",
        "QuantumCircuit(2).draw()",
        "# Explanation: a comment is code",
        "import numpy as np",
    ],
)
def test_code_lines_at_column_0_are_not_taken_for_prose(line: str) -> None:
    text = f"Here is the code:\n{line}\n"
    assert extract_code(text) == f"{line}\n"


def test_a_bare_fence_after_an_indented_body_closes_the_prompts_block() -> None:
    body = "    return QuantumCircuit(2)\n"
    assert extract_code(f"{body}```\n\nThe function returns a circuit.\n", BELL) == body


# --- fitting is the assembler's job -------------------------------------------------------------


def test_a_flush_left_body_is_left_for_the_assembler_to_fit() -> None:
    body = "qc = QuantumCircuit(2)\n\nreturn qc\n"
    assert extract_code(body, BELL) == body


def test_a_whole_function_is_kept_whole_for_a_completion_task() -> None:
    code = "import math\n\n" + BELL_CODE
    assert extract_code(code, BELL) == code


def test_code_is_not_fitted_without_a_task_or_for_a_program_task() -> None:
    body = "qc = 1\nreturn qc\n"
    test = "def check(c):\n    pass\n\ncheck(bell)\n"
    program = Task("p/0", "Write bell.", test, "bell", format="program")
    assert extract_code(body) == body
    assert extract_code(body, program) == body


def test_defines_function_looks_only_at_column_0() -> None:
    assert defines_function("async def bell():\n    pass\n", "bell")
    assert not defines_function("    def bell():\n        pass\n", "bell")
    assert not defines_function("def bell_pair():\n    pass\n", "bell")


# --- realistic model outputs, run through the real Verifier ---------------------------------------
# Each output below is written the way chat and base models answer. The test proves the extracted
# code really passes (or really fails) the task's tests in the sandbox, not merely that some text
# came out.

GHZ = load_tasks("bundled")["qsandbox/ghz_circuit"]
ZZ = load_tasks("bundled")["qsandbox/zz_expectation_from_counts"]
# A completion task whose prompt stops at the signature, with no docstring to close the function.
BELL_PAIR = Task(
    "demo/bell_pair",
    "from qiskit import QuantumCircuit\n\n\ndef bell_pair() -> QuantumCircuit:\n",
    "def check(candidate):\n"
    "    qc = candidate()\n"
    "    assert qc.num_qubits == 2\n"
    "    assert dict(qc.count_ops()) == {'h': 1, 'cx': 1}\n",
    "bell_pair",
)
# A program task shaped like Qiskit-HumanEval-hard: English prompt, the test imports what it uses
# and calls check itself.
BELL_COUNTS = Task(
    "demo/bell_counts",
    "Prepare a Bell state on two qubits, measure both and sample it on Aer for `shots` shots. "
    "You must implement this using a function named `bell_counts` with the argument `shots`.",
    "from qiskit import QuantumCircuit\n\n"
    "def check(candidate):\n"
    "    counts = candidate(500)\n"
    "    assert set(counts) <= {'00', '11'}, counts\n"
    "    assert sum(counts.values()) == 500\n\n"
    "check(bell_counts)\n",
    "bell_counts",
    format="program",
)

GHZ_BODY = """\
    qc = QuantumCircuit(num_qubits)
    qc.h(0)
    for target in range(1, num_qubits):
        qc.cx(0, target)
    return qc
"""
GHZ_FUNCTION = f'''\
from qiskit import QuantumCircuit


def ghz_circuit(num_qubits: int) -> QuantumCircuit:
    """Prepare (|0...0> + |1...1>) / sqrt(2) on ``num_qubits`` qubits."""
{GHZ_BODY}'''
GHZ_WRONG = """\
def ghz_circuit(num_qubits: int) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits)
    qc.h(0)
    qc.cx(0, 1)
    return qc
"""
BELL_COUNTS_FUNCTION = """\
def bell_counts(shots: int) -> dict:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    simulator = AerSimulator(seed_simulator=11)
    return simulator.run(transpile(qc, simulator), shots=shots).result().get_counts()
"""
BELL_COUNTS_IMPORTS = (
    "from qiskit import QuantumCircuit, transpile\nfrom qiskit_aer import AerSimulator\n"
)
EXPLANATION = """
### Explanation

1. **Hadamard on qubit 0** puts it in superposition.
2. **CNOTs** from qubit 0 copy that superposition to every other qubit.

The resulting state is $(|0\\ldots0\\rangle + |1\\ldots1\\rangle)/\\sqrt{2}$.
"""

PASSING: dict[str, tuple[Task, str]] = {
    "chatty_whole_function_in_a_python_fence": (
        GHZ,
        "Certainly! Here's a function that builds a GHZ state using Qiskit:\n\n"
        f"```python\n{GHZ_FUNCTION}```\n{EXPLANATION}",
    ),
    "solution_block_then_a_longer_usage_block": (
        GHZ,
        f"```python\n{GHZ_FUNCTION}```\n\n**Example usage:**\n\n```python\n"
        "from qiskit.quantum_info import Statevector\n\n"
        "circuit = ghz_circuit(3)\nprint(circuit.draw())\nprint(Statevector(circuit))\n"
        "print('depth:', circuit.depth(), 'size:', circuit.size())\n```\n",
    ),
    "pip_install_bash_block_before_the_code": (
        GHZ,
        "First make sure Qiskit is installed:\n\n```bash\npip install qiskit qiskit-aer\n```\n\n"
        f"Then define the function:\n\n```python\n{GHZ_FUNCTION}```\n",
    ),
    "untagged_fence": (GHZ, f"Here you go:\n```\n{GHZ_FUNCTION}```"),
    "capitalised_py_tag_and_tilde_fence": (GHZ, f"~~~Py\n{GHZ_FUNCTION}~~~\n"),
    "output_block_after_the_code": (
        GHZ,
        f"```python\n{GHZ_FUNCTION}\nprint(ghz_circuit(2))\n```\n\nOutput:\n\n```text\n"
        "     ┌───┐     \nq_0: ┤ H ├──■──\n     └───┘┌─┴─┐\n"
        "q_1: ─────┤ X ├\n          └───┘\n```\n",
    ),
    "unclosed_fence_cut_at_the_token_limit_after_the_function": (
        GHZ,
        f'```python\n{GHZ_FUNCTION}\n\n# Example usage\nif __name__ == "__main__":\n',
    ),
    "deepseek_r1_think_block_with_a_wrong_draft": (
        GHZ,
        "<think>\nOkay, the user wants a GHZ state. A first idea:\n\n```python\n"
        f"{GHZ_WRONG}```\n\nWait, that only entangles two qubits. I need a CNOT from qubit 0 "
        "to every other qubit.\n</think>\n\nTo prepare the GHZ state, apply a Hadamard and a "
        f"chain of CNOTs:\n\n```python\n{GHZ_FUNCTION}```\n",
    ),
    "qwen3_reasoning_opened_by_the_chat_template": (
        GHZ,
        f"The GHZ state needs H then CNOTs from qubit 0.\n</think>\n\n```python\n{GHZ_FUNCTION}```",
    ),
    "fenced_body_without_signature": (
        GHZ,
        f"You only need the body of the function:\n\n```python\n{GHZ_BODY}```\n",
    ),
    "fenced_body_written_flush_left": (
        GHZ,
        "Add this inside the function:\n\n```python\nqc = QuantumCircuit(num_qubits)\nqc.h(0)\n"
        "for target in range(1, num_qubits):\n    qc.cx(0, target)\nreturn qc\n```\n",
    ),
    "stripped_continuation_lost_its_first_indent": (GHZ, GHZ_BODY.strip() + "\n"),
    "base_model_continuation_with_trailing_prose": (
        GHZ,
        f"\n{GHZ_BODY}\n\nThe function above creates a GHZ state with one Hadamard gate.\n",
    ),
    "continuation_closing_the_fence_the_prompt_opened": (
        GHZ,
        f"{GHZ_BODY}```\n\nThis applies one Hadamard and n-1 CNOT gates.\n",
    ),
    "unfenced_whole_function_between_prose": (
        GHZ,
        f"Here is the implementation:\n\n{GHZ_FUNCTION}\nThis builds the state in linear depth.\n",
    ),
    "whole_program_with_a_main_guard": (
        GHZ,
        f'```python\n{GHZ_FUNCTION}\n\nif __name__ == "__main__":\n'
        "    print(ghz_circuit(4).draw())\n```",
    ),
    "chat_messages_with_a_system_prompt": (
        GHZ,
        [
            {"role": "system", "content": "You are a Qiskit expert."},
            {"role": "user", "content": GHZ.prompt},
            {"role": "assistant", "content": f"```python\n{GHZ_FUNCTION}```"},
        ],
    ),
    "fence_indented_in_a_numbered_list": (
        GHZ,
        "1. Import Qiskit and define the function:\n\n"
        + "".join(
            f"   {line}" if line.strip() else line
            for line in f"```python\n{GHZ_FUNCTION}```\n".splitlines(True)
        )
        + "\n2. Call it with the number of qubits.\n",
    ),
    "windows_line_endings": (GHZ, f"```python\n{GHZ_FUNCTION}```\n".replace("\n", "\r\n")),
    "whole_function_with_a_helper_before_it": (
        ZZ,
        "```python\ndef _parity(bits: str, i: int, j: int) -> int:\n"
        "    return 1 if bits[-1 - i] == bits[-1 - j] else -1\n\n\n"
        "def zz_expectation(counts: dict[str, int], i: int, j: int) -> float:\n"
        "    total = sum(counts.values())\n"
        '    signed = sum(_parity(k.replace(" ", ""), i, j) * c for k, c in counts.items())\n'
        "    return float(signed / total)\n```\n",
    ),
    "whole_function_for_a_prompt_without_a_docstring": (
        BELL_PAIR,
        "```python\nfrom qiskit import QuantumCircuit\n\n\ndef bell_pair() -> QuantumCircuit:\n"
        "    qc = QuantumCircuit(2)\n    qc.h(0)\n    qc.cx(0, 1)\n    return qc\n```",
    ),
    "program_task_answered_with_only_the_function": (
        BELL_COUNTS,
        "```python\ndef bell_counts(shots):\n    from qiskit import transpile\n"
        "    from qiskit_aer import AerSimulator\n\n    qc = QuantumCircuit(2)\n    qc.h(0)\n"
        "    qc.cx(0, 1)\n    qc.measure_all()\n    sim = AerSimulator(seed_simulator=3)\n"
        "    return sim.run(transpile(qc, sim), shots=shots).result().get_counts()\n```",
    ),
    "program_task_with_imports_in_their_own_block": (
        BELL_COUNTS,
        f"First, the imports:\n\n```python\n{BELL_COUNTS_IMPORTS}```\n\nNow the function:\n\n"
        f"```python\n{BELL_COUNTS_FUNCTION}```\n\nCalling `bell_counts(1000)` returns roughly "
        "equal counts of `00` and `11`.\n",
    ),
    "program_task_whole_program_with_usage_and_output": (
        BELL_COUNTS,
        f"```python\n{BELL_COUNTS_IMPORTS}\n\n{BELL_COUNTS_FUNCTION}\n\n"
        'if __name__ == "__main__":\n    print(bell_counts(1024))\n```\n\n'
        "Example output:\n\n```\n{'00': 519, '11': 505}\n```\n",
    ),
}

FAILING: dict[str, tuple[Task, str, Outcome]] = {
    "reasoning_cut_off_before_the_answer": (
        GHZ,
        f"<think>\nLet me write it:\n```python\n{GHZ_FUNCTION}```\nNow check the edge cases",
        Outcome.FAILED,
    ),
    "right_draft_in_thought_wrong_final_answer": (
        GHZ,
        f"<think>\n```python\n{GHZ_FUNCTION}```\nSimpler is fine.\n</think>\n"
        f"```python\n{GHZ_WRONG}```",
        Outcome.FAILED,
    ),
    "function_cut_off_mid_statement": (
        GHZ,
        "```python\nfrom qiskit import QuantumCircuit\n\ndef ghz_circuit(num_qubits):\n"
        "    qc = QuantumCircuit(num_qubits)\n    qc.h(0)\n    for target in range(1,",
        Outcome.SYNTAX,
    ),
    "usage_example_without_the_function": (
        BELL_COUNTS,
        "You can call it like this:\n\n```python\ncounts = bell_counts(1000)\nprint(counts)\n```",
        Outcome.ERROR,
    ),
}


def as_text(completion: str | list[dict[str, str]]) -> str:
    """What a caller hands the Verifier (it takes text only): the reply of a message list."""
    return completion_text(completion)


@pytest.mark.parametrize("case", sorted(PASSING))
def test_a_realistic_answer_passes_in_the_verifier(verifier, case: str) -> None:
    task, completion = PASSING[case]
    verdict = verifier.verify(task, as_text(completion))
    assert verdict.outcome is Outcome.PASSED, (verdict.outcome, verdict.detail, verdict.code)
    assert verdict.code == extract_code(completion, task)


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_realistic_wrong_answer_still_fails_in_the_verifier(verifier, case: str) -> None:
    task, completion, outcome = FAILING[case]
    verdict = verifier.verify(task, completion)
    assert verdict.outcome is outcome, (verdict.outcome, verdict.detail, verdict.code)
