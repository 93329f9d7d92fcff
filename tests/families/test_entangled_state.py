"""Tests for the entangled_state family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.entangled_state import EntangledStateConfig
from tests.families import helpers

FAMILY = "entangled_state"


def test_config_rejects_a_one_qubit_subset():
    with pytest.raises(ValueError) as error:
        EntangledStateConfig(min_subset=1)
    assert str(error.value) == "EntangledStateConfig.min_subset: expected at least 2, got 1"


def test_config_rejects_an_unknown_kind():
    with pytest.raises(ValueError) as error:
        EntangledStateConfig(kinds=("ghz", "cluster"))
    assert str(error.value) == (
        "EntangledStateConfig.kinds: unknown value 'cluster'; expected some of ghz, w"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_adds_qubits_phases_and_patterns():
    tasks = helpers.by_difficulty(FAMILY)
    params = {level: [t.metadata["parameters"] for t in tasks[level]] for level in tasks}
    assert all(p["phase_quarter_pis"] == 0 and not any(p["bits"]) for p in params["basic"])
    assert any(p["phase_quarter_pis"] for p in params["intermediate"])
    assert not any(any(p["bits"]) for p in params["intermediate"])
    assert any(any(p["bits"]) for p in params["difficult"])
    assert max(p["num_qubits"] for p in params["basic"]) <= 6
    assert min(p["num_qubits"] for p in params["difficult"]) >= 5


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def chain_one_short(task: Task) -> str:
    """The entangling chain stops one qubit early (an off-by-one in the loop bounds)."""
    code = task.canonical_solution
    return code.replace("qubits[1:]", "qubits[2:]").replace("len(qubits) - 1", "len(qubits) - 2")


def test_an_entangling_chain_one_qubit_short_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], chain_one_short, 9)


def amplitudes_handed_to_initialize(task: Task) -> str:
    """The shortcut: compute the target's amplitudes from the prompt and initialize them. The old
    tests compared only the state, and passed it."""
    p = task.metadata["parameters"]
    return helpers.whole_function(
        task,
        [
            "import numpy as np",
            "from qiskit import QuantumCircuit",
            f"n, kind, qubits, bits = {p['num_qubits']}, {p['kind']!r}, {p['qubits']}, {p['bits']}",
            f"phase = np.exp(1j * {p['phase_quarter_pis']} * np.pi / 4)",
            "state = np.zeros(2**n, dtype=complex)",
            'if kind == "w":',
            "    for qubit in qubits:",
            "        state[1 << qubit] = 1 / np.sqrt(len(qubits))",
            "else:",
            "    state[sum(b << q for q, b in zip(qubits, bits))] = 1 / np.sqrt(2)",
            "    state[sum((1 - b) << q for q, b in zip(qubits, bits))] = phase / np.sqrt(2)",
            "qc = QuantumCircuit(n)",
            "qc.initialize(state)",
            "return qc",
        ],
    )


def test_handing_the_amplitudes_to_initialize_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, amplitudes_handed_to_initialize, 9)
