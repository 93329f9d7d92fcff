"""Tests for the deutsch_jozsa family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.deutsch_jozsa import DeutschJozsaConfig
from tests.families import helpers

FAMILY = "deutsch_jozsa"


def test_config_rejects_truth_tables_too_long_for_a_prompt():
    with pytest.raises(ValueError) as error:
        DeutschJozsaConfig(min_inputs=3, max_inputs=6, kinds=("table",))
    assert str(error.value) == (
        "DeutschJozsaConfig.max_inputs: truth tables are listed in the prompt; expected at most "
        "5 inputs with kind 'table', got 6"
    )


def test_config_rejects_repeated_kinds():
    with pytest.raises(ValueError) as error:
        DeutschJozsaConfig(kinds=("bit", "bit"))
    assert (
        str(error.value) == "DeutschJozsaConfig.kinds: values must be distinct, got ('bit', 'bit')"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_moves_from_simple_functions_to_truth_tables():
    tasks = helpers.by_difficulty(FAMILY)
    kinds = {level: {t.metadata["parameters"]["kind"] for t in tasks[level]} for level in tasks}
    assert kinds["basic"] <= {"constant", "bit", "parity"}
    assert kinds["difficult"] == {"table"}
    assert max(t.metadata["parameters"]["num_inputs"] for t in tasks["basic"]) <= 4
    assert max(t.metadata["parameters"]["num_inputs"] for t in tasks["intermediate"]) > 4
    tables = [t.metadata["parameters"]["truth_table"] for t in tasks["difficult"]]
    assert all(table.count("1") * 2 == len(table) for table in tables)  # balanced


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def missing_gate(task: Task) -> str | None:
    return helpers.drop_last_gate(task.canonical_solution)


def test_an_oracle_missing_its_last_gate_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], missing_gate, 6)


def truth_table_as_a_matrix(task: Task) -> str:
    """The shortcut: write the oracle's permutation matrix from the truth table and append it as
    a UnitaryGate. The old tests checked only the oracle's action, and passed it."""
    parameters = task.metadata["parameters"]
    n, truth = parameters["num_inputs"], parameters["truth_table"]
    image = [x ^ (int(truth[x & ((1 << n) - 1)]) << n) for x in range(2 ** (n + 1))]
    return helpers.whole_function(task, helpers.permutation_answer(n + 1, image))


def test_the_truth_table_as_a_unitary_matrix_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, truth_table_as_a_matrix, 9)
