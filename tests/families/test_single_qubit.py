"""Tests for the single_qubit family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.single_qubit import SingleQubitConfig
from tests.families import helpers

FAMILY = "single_qubit"


def test_config_rejects_an_unknown_kind():
    with pytest.raises(ValueError) as error:
        SingleQubitConfig(kind="clifford")
    assert str(error.value) == (
        "SingleQubitConfig.kind: unknown value 'clifford'; expected some of "
        "rotations, bloch, unitary"
    )


def test_config_rejects_an_empty_gate_range():
    with pytest.raises(ValueError) as error:
        SingleQubitConfig(min_gates=3, max_gates=2)
    assert str(error.value) == "SingleQubitConfig: expected min_gates <= max_gates, got 3 > 2"


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_moves_from_given_angles_to_finding_them():
    tasks = helpers.by_difficulty(FAMILY)
    assert {t.entry_point for t in tasks["basic"]} == {"rotation_circuit"}
    assert {t.entry_point for t in tasks["intermediate"]} == {"prepare_bloch_state"}
    assert {t.entry_point for t in tasks["difficult"]} == {"implement_unitary"}
    assert all("matrix: np.ndarray" in t.prompt for t in tasks["difficult"])


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def sign_or_basis_slip(task: Task) -> str:
    """A flipped angle sign, or (for matrices) ignoring the requested gate set."""
    code = task.canonical_solution
    if task.entry_point == "implement_unitary":
        basis = task.metadata["parameters"]["basis"]
        return code.replace(f'basis="{basis}"', 'basis="U3"')
    return code.replace("np.pi", "-np.pi", 1)


def test_a_flipped_angle_or_the_wrong_gate_set_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], sign_or_basis_slip, 9)
