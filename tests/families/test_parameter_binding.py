"""Tests for the parameter_binding family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.parameter_binding import ParameterBindingConfig
from tests.families import helpers

FAMILY = "parameter_binding"


def test_config_rejects_more_parameters_than_gates():
    with pytest.raises(ValueError) as error:
        ParameterBindingConfig(min_parameters=3, max_parameters=5, min_gates=4, max_gates=6)
    assert str(error.value) == (
        "ParameterBindingConfig: every parameter needs a gate; expected max_parameters <= "
        "min_gates, got 5 > 4"
    )


def test_config_rejects_an_unknown_expression_form():
    with pytest.raises(ValueError) as error:
        ParameterBindingConfig(forms=("single", "product"))
    assert str(error.value) == (
        "ParameterBindingConfig.forms: unknown value 'product'; expected some of "
        "single, scaled, sum"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_adds_parameters_expressions_and_two_qubit_rotations():
    tasks = helpers.by_difficulty(FAMILY)

    def parameters(task: Task) -> int:
        return len(task.metadata["parameters"]["ops"][0][2])

    assert {parameters(t) for t in tasks["basic"]} == {2}
    assert {parameters(t) for t in tasks["intermediate"]} == {3}
    assert min(parameters(t) for t in tasks["difficult"]) >= 4
    names = {op[0] for t in tasks["difficult"] for op in t.metadata["parameters"]["ops"]}
    assert {"rzz", "crx"} <= names
    assert any(" + " in t.prompt or "] - " in t.prompt for t in tasks["difficult"])


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def swapped_parameters(task: Task) -> str:
    """Elements 0 and 1 of the vector swapped in every gate (an indexing mix-up)."""
    vector = task.metadata["parameters"]["vector"]
    code = task.canonical_solution.replace(f"{vector}[0]", "@@").replace(
        f"{vector}[1]", f"{vector}[0]"
    )
    return code.replace("@@", f"{vector}[1]")


def test_swapped_parameter_elements_fail(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], swapped_parameters, 9)
