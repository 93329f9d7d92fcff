"""Tests for the single_qubit family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.single_qubit import BASES, SingleQubitConfig
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


_FIXED_MATRICES = {
    "h": "np.array([[1, 1], [1, -1]]) / np.sqrt(2)",
    "s": "np.diag([1, 1j])",
    "t": "np.diag([1, np.exp(1j * np.pi / 4)])",
}


def _rotation_matrix(name: str, eighths: int) -> str:
    half = f"{eighths} * np.pi / 16"
    c, s = f"np.cos({half})", f"np.sin({half})"
    return {
        "rx": f"np.array([[{c}, -1j * {s}], [-1j * {s}, {c}]])",
        "ry": f"np.array([[{c}, -{s}], [{s}, {c}]])",
        "rz": f"np.diag([np.exp(-1j * {half}), np.exp(1j * {half})])",
    }[name]


def matrix_instead_of_gates(task: Task) -> str:
    """The shortcuts, one per kind, each passed by the old tests:

    - rotations: multiply the listed gates' matrices in numpy and append the product, wrapped
      in a custom gate (so no top-level instruction gives it away);
    - Bloch state: hand the two amplitudes to StatePreparation;
    - unitary: a custom gate named like an allowed gate whose definition is the UnitaryGate (the
      old gate-set check read only top-level names).
    """
    p = task.metadata["parameters"]
    head = [
        "import numpy as np",
        "from qiskit import QuantumCircuit",
        "from qiskit.circuit import Gate",
        "from qiskit.quantum_info import Operator",
        f"qc = QuantumCircuit({p['num_qubits']})",
    ]
    qubit = p["qubit"]
    if task.entry_point == "rotation_circuit":
        lines = [*head, "m = np.eye(2)"]
        for name, eighths in p["ops"]:
            factor = _FIXED_MATRICES.get(name) or _rotation_matrix(name, eighths)
            lines.append(f"m = ({factor}) @ m")
        lines += [
            "inner = QuantumCircuit(1)",
            "inner.append(Operator(m).to_instruction(), [0])",
            f"qc.append(inner.to_gate(), [{qubit}])",
        ]
    elif task.entry_point == "prepare_bloch_state":
        theta = f"{p['theta_twelfths']} * np.pi / 12"
        phi = f"{p['phi_twelfths']} * np.pi / 12"
        amplitudes = f"[np.cos({theta} / 2), np.exp(1j * {phi}) * np.sin({theta} / 2)]"
        lines = [*head, f"qc.prepare_state({amplitudes}, [{qubit}])"]
    else:
        lines = [
            *head,
            "inner = QuantumCircuit(1)",
            "inner.unitary(args[0], [0])",
            f'look_alike = Gate("{BASES[p["basis"]][0]}", 1, [])',
            "look_alike.definition = inner",
            f"qc.append(look_alike, [{qubit}])",
        ]
    return helpers.whole_function(task, [*lines, "return qc"])


def test_matrices_amplitudes_and_look_alike_gates_fail(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, matrix_instead_of_gates, 9)


def reference_read_from_the_test(task: Task) -> str | None:
    """The shortcut: return the test's own reference circuit, read from the calling frame. The
    old rotation tests built it before calling the candidate, and passed this answer."""
    if task.entry_point != "rotation_circuit":
        return None
    return helpers.read_from_the_test(task, "reference")


def test_reading_the_reference_circuit_from_the_test_fails(verifier):
    tasks = helpers.by_difficulty(FAMILY, count=4)["basic"]
    helpers.assert_mutants_fail(verifier, tasks, reference_read_from_the_test, 4)
