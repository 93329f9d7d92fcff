"""Tests for the qft_variants family."""

from __future__ import annotations

import re

import pytest

from qsandbox_env import Task
from qsandbox_env.families.qft_variants import QftConfig
from tests.families import helpers

FAMILY = "qft_variants"


def test_config_rejects_a_one_qubit_transform():
    with pytest.raises(ValueError) as error:
        QftConfig(min_size=1)
    assert str(error.value) == "QftConfig.min_size: expected at least 2, got 1"


def test_config_rejects_registers_too_large_to_compare_unitaries():
    with pytest.raises(ValueError) as error:
        QftConfig(max_qubits=9)
    assert str(error.value) == (
        "QftConfig.max_qubits: expected at most 8 (tests compare unitaries), got 9"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_scatters_qubits_drops_swaps_and_restricts_gates():
    tasks = helpers.by_difficulty(FAMILY)
    params = {level: [t.metadata["parameters"] for t in tasks[level]] for level in tasks}
    for p in params["basic"]:
        assert p["swaps"] and p["qubits"] == sorted(p["qubits"])
        assert p["qubits"] == list(range(p["qubits"][0], p["qubits"][0] + len(p["qubits"])))
    assert not all(p["swaps"] for p in params["intermediate"])
    assert any(p["qubits"] != sorted(p["qubits"]) for p in params["intermediate"])
    assert all("Use only h, cp and swap gates" in t.prompt for t in tasks["difficult"])
    assert not any("QFTGate(k)" in t.canonical_solution for t in tasks["difficult"])


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def reversed_qubits(task: Task) -> str:
    """The transform's qubits taken in the opposite order (a bit-order mix-up)."""
    return re.sub(
        r"qubits = \[([\d, ]+)\]",
        lambda m: f"qubits = {[int(q) for q in m[1].split(', ')][::-1]}",
        task.canonical_solution,
    )


def test_the_transform_on_reversed_qubits_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], reversed_qubits, 9)


def library_qft_under_an_alias(task: Task) -> str | None:
    """The shortcut for the H/CP/SWAP task: Qiskit's own synthesis, which emits exactly h, cp and
    swap gates (imported under another name). The old tests checked only gate names, and passed
    it."""
    p = task.metadata["parameters"]
    if not p["elementary"]:
        return None
    return helpers.whole_function(
        task,
        [
            "from qiskit import QuantumCircuit",
            "from qiskit.synthesis import synth_qft_full as build",
            f"qubits = {p['qubits']}",
            f"block = build(len(qubits), do_swaps={p['swaps']}, inverse={p['inverse']})",
            f"qc = QuantumCircuit({p['num_qubits']})",
            "qc.compose(block, qubits, inplace=True)",
            "return qc",
        ],
    )


def test_the_library_qft_in_the_elementary_gates_task_fails(verifier):
    tasks = helpers.by_difficulty(FAMILY, count=4)["difficult"]
    helpers.assert_mutants_fail(verifier, tasks, library_qft_under_an_alias, 4)


def reference_read_from_the_test(task: Task) -> str | None:
    """The shortcut: return the test's own reference circuit, read from the calling frame. The
    old tests built it before calling the candidate, and passed this answer where the library
    QFT is allowed."""
    if task.metadata["parameters"]["elementary"]:
        return None
    return helpers.read_from_the_test(task, "reference")


def test_reading_the_reference_circuit_from_the_test_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, reference_read_from_the_test, 6)
