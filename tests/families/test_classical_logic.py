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
