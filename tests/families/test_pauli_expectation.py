"""Tests for the pauli_expectation family."""

from __future__ import annotations

import re

import pytest

from qsandbox_env import Task
from qsandbox_env.families.pauli_expectation import PauliExpectationConfig
from tests.families import helpers

FAMILY = "pauli_expectation"


def test_config_rejects_gates_without_an_entangler():
    with pytest.raises(ValueError) as error:
        PauliExpectationConfig(gates=("rx", "h"))
    assert str(error.value) == (
        "PauliExpectationConfig.gates: expected at least one rotation and one of cx/cz, "
        "got ('rx', 'h')"
    )


def test_config_rejects_an_unknown_gate():
    with pytest.raises(ValueError) as error:
        PauliExpectationConfig(gates=("ry", "cx", "toffoli"))
    assert str(error.value) == (
        "PauliExpectationConfig.gates: unknown value 'toffoli'; expected some of "
        "rx, ry, rz, h, cx, cz"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_grows_the_circuit_and_the_observable():
    tasks = helpers.by_difficulty(FAMILY)
    params = {level: [t.metadata["parameters"] for t in tasks[level]] for level in tasks}
    assert {p["num_qubits"] for p in params["basic"]} == {2}
    assert min(p["num_qubits"] for p in params["difficult"]) >= 4
    assert max(len(p["ops"]) for p in params["basic"]) < min(
        len(p["ops"]) for p in params["difficult"]
    )
    assert max(len(p["terms"]) for p in params["basic"]) <= 2
    assert min(len(p["terms"]) for p in params["difficult"]) >= 3


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def reversed_labels(task: Task) -> str:
    """Pauli labels read left to right as qubit 0, 1, ... (the classic ordering mistake)."""
    return re.sub(r"\('([IXYZ]+)'", lambda m: f"('{m[1][::-1]}'", task.canonical_solution)


def test_pauli_labels_in_reversed_qubit_order_fail(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], reversed_labels, 9)


def expected_value_read_from_the_test(task: Task) -> str:
    """The shortcut: return the test's own reference value, read from the calling frame. The old
    tests computed it before calling the candidate, and passed this answer."""
    return helpers.read_from_the_test(task, "expected")


def test_reading_the_reference_value_from_the_test_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:6]
    helpers.assert_mutants_fail(verifier, tasks, expected_value_read_from_the_test, 6)


def computed_with_statevector(task: Task) -> str:
    """The right number, worked out with Statevector instead of the Estimator the task asks for."""
    return task.canonical_solution.replace(
        "result = StatevectorEstimator().run([(qc, observable)]).result()\n"
        "    return float(result[0].data.evs)",
        "from qiskit.quantum_info import Statevector\n"
        "    return float(Statevector(qc).expectation_value(observable).real)",
    )


def test_the_right_value_without_the_estimator_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:6]
    helpers.assert_mutants_fail(verifier, tasks, computed_with_statevector, 6)
    verdict = verifier.verify(tasks[0], computed_with_statevector(tasks[0]))
    assert "the value was not computed with the V2 StatevectorEstimator" in verdict.detail
