"""Tests for the classical_logic family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.classical_logic import FUNCTIONS, ClassicalLogicConfig
from tests.families import helpers

FAMILY = "classical_logic"


def test_config_rejects_an_unknown_function():
    with pytest.raises(ValueError) as error:
        ClassicalLogicConfig(functions=("half_adder", "xor9"))
    assert str(error.value) == (
        f"ClassicalLogicConfig.functions: unknown value 'xor9'; expected some of "
        f"{', '.join(FUNCTIONS)}"
    )


def test_config_rejects_too_many_idle_qubits():
    with pytest.raises(ValueError) as error:
        ClassicalLogicConfig(max_idle=4)
    assert str(error.value) == "ClassicalLogicConfig.max_idle: expected 0 to 3 idle qubits, got 4"


def test_every_function_is_reversible_arithmetic_on_its_truth_table():
    # The truth tables the tests are built from: check a few entries by hand.
    adder = FUNCTIONS["two_bit_adder"].evaluate
    assert adder({"a0": 1, "a1": 1, "b0": 1, "b1": 1}) == {"s0": 0, "s1": 1, "s2": 1}  # 3+3=6
    assert FUNCTIONS["full_adder"].evaluate({"a": 1, "b": 0, "cin": 1}) == {"s": 0, "cout": 1}
    assert FUNCTIONS["equal2"].evaluate({"a0": 1, "a1": 0, "b0": 1, "b1": 0}) == {"eq": 1}


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_moves_to_wider_functions_with_scratch_qubits():
    tasks = helpers.by_difficulty(FAMILY)
    names = {level: {t.metadata["parameters"]["function"] for t in tasks[level]} for level in tasks}
    assert names["basic"] == {"half_adder", "parity3"}
    assert names["difficult"] == {"two_bit_adder", "equal2"}
    assert not names["basic"] & names["intermediate"]
    assert all("scratch space" in t.prompt for t in tasks["difficult"])


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def missing_gate(task: Task) -> str | None:
    return helpers.drop_last_gate(task.canonical_solution)


def test_a_circuit_missing_its_last_gate_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], missing_gate, 9)


def truth_table_as_a_matrix(task: Task) -> str:
    """The shortcut: write the function's permutation matrix (outputs XORed with their values)
    and append it as a UnitaryGate. The old tests compared only counts, and passed it."""
    parameters = task.metadata["parameters"]
    function = FUNCTIONS[parameters["function"]]
    n, layout = parameters["num_qubits"], parameters["layout"]
    image = []
    for x in range(2**n):
        values = {name: x >> layout[name] & 1 for name in function.inputs}
        y = x
        for name, value in function.evaluate(values).items():
            y ^= value << layout[name]
        image.append(y)
    return helpers.whole_function(task, helpers.permutation_answer(n, image))


def test_the_truth_table_as_a_unitary_matrix_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, truth_table_as_a_matrix, 9)


def scratch_reset_instead_of_uncomputed(task: Task) -> str | None:
    """The shortcut for tasks with scratch qubits: skip the uncomputation after the last output
    is written and reset the scratch qubits instead (not reversible; the old tests, which only
    measured, passed it)."""
    function = FUNCTIONS[task.metadata["parameters"]["function"]]
    if not function.scratch:
        return None
    targets = [gate.rstrip(")").split(", ")[-1] for gate in function.gates]
    last = max(i for i, target in enumerate(targets) if target in function.outputs)
    lines = task.canonical_solution.split("\n")
    gate_lines = [i for i, line in enumerate(lines) if line.startswith("    qc.")]
    kept = [line for i, line in enumerate(lines) if i not in gate_lines[last + 1 :]]
    end = kept.index("    return qc")
    kept[end:end] = [f"    qc.reset({name})" for name in function.scratch]
    return "\n".join(kept)


def test_resetting_scratch_qubits_instead_of_uncomputing_fails(verifier):
    tasks = helpers.by_difficulty(FAMILY, count=6)["difficult"]
    helpers.assert_mutants_fail(verifier, tasks, scratch_reset_instead_of_uncomputed, 6)
