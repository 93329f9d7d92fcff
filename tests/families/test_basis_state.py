"""Tests for the basis_state family."""

from __future__ import annotations

import re

import pytest

from qsandbox_env import Task
from qsandbox_env.families.basis_state import BasisStateConfig
from tests.families import helpers

FAMILY = "basis_state"


def test_config_rejects_an_empty_qubit_range():
    with pytest.raises(ValueError) as error:
        BasisStateConfig(min_qubits=5, max_qubits=3)
    assert str(error.value) == "BasisStateConfig: expected min_qubits <= max_qubits, got 5 > 3"


def test_config_rejects_an_integer_target_with_non_basis_symbols():
    with pytest.raises(ValueError) as error:
        BasisStateConfig(symbols=("0", "1", "+"), as_integer=True)
    assert str(error.value) == (
        "BasisStateConfig.as_integer: an integer describes basis states only; expected symbols "
        "('0', '1'), got ('0', '1', '+')"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_changes_how_the_state_is_given():
    tasks = helpers.by_difficulty(FAMILY)
    labels = {level: [t.metadata["parameters"]["label"] for t in tasks[level]] for level in tasks}
    assert all(set(label) <= {"0", "1"} for label in labels["basic"])
    assert all("for k = " in task.prompt for task in tasks["intermediate"])
    assert any(set(label) - {"0", "1"} for label in labels["difficult"])
    assert max(len(label) for label in labels["basic"]) < max(
        len(label) for label in labels["intermediate"]
    )


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def wrong_qubit(task: Task) -> str:
    """The first gate lands on the next qubit up (an indexing slip)."""
    num_qubits = task.metadata["parameters"]["num_qubits"]
    return re.sub(
        r"qc\.(\w+)\((\d+)\)",
        lambda m: f"qc.{m[1]}({(int(m[2]) + 1) % num_qubits})",
        task.canonical_solution,
        count=1,
    )


def test_a_gate_on_the_wrong_qubit_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], wrong_qubit, 9)


def label_handed_to_prepare_state(task: Task) -> str:
    """The shortcut: pass the target's label to StatePreparation, which does the whole task
    (bit order and product states included). The old tests compared only the state, and passed it.
    """
    parameters = task.metadata["parameters"]
    return helpers.whole_function(
        task,
        [
            "from qiskit import QuantumCircuit",
            f"qc = QuantumCircuit({parameters['num_qubits']})",
            f"qc.prepare_state({parameters['label']!r})",
            "return qc",
        ],
    )


def test_handing_the_label_to_state_preparation_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, label_handed_to_prepare_state, 9)
