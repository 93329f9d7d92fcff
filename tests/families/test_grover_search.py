"""Tests for the grover_search family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.grover_search import GroverSearchConfig, optimal_iterations
from tests.families import helpers

FAMILY = "grover_search"


def test_config_rejects_more_than_a_quarter_of_the_states_marked():
    with pytest.raises(ValueError) as error:
        GroverSearchConfig(min_qubits=2, max_qubits=3, min_marked=2, max_marked=2)
    assert str(error.value) == (
        "GroverSearchConfig.min_marked: Grover needs at most a quarter of the states marked; "
        "expected at most 1 for 2 qubits, got 2"
    )


def test_config_rejects_both_iteration_modes_at_once():
    with pytest.raises(ValueError) as error:
        GroverSearchConfig(vary_iterations=True, derive_iterations=True)
    assert str(error.value) == (
        "GroverSearchConfig: choose vary_iterations or derive_iterations, not both"
    )


def test_optimal_iterations_follow_the_textbook_counts():
    # One marked state among N: about pi/4 * sqrt(N) rounds.
    assert [optimal_iterations(n, 1) for n in range(2, 7)] == [1, 2, 3, 4, 6]
    assert optimal_iterations(4, 4) == 1


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_adds_marked_states_and_leaves_the_count_to_the_solver():
    tasks = helpers.by_difficulty(FAMILY)
    params = {level: [t.metadata["parameters"] for t in tasks[level]] for level in tasks}
    assert {len(p["marked"]) for p in params["basic"]} == {1}
    assert all(len(p["marked"]) >= 2 for p in params["difficult"])
    assert all("Apply exactly" in t.prompt for t in tasks["basic"] + tasks["intermediate"])
    assert all("compute k in your code" in t.prompt for t in tasks["difficult"])
    over = [
        p
        for p in params["intermediate"]
        if p["iterations"] > optimal_iterations(p["num_qubits"], len(p["marked"]))
    ]
    assert over, "intermediate tasks sometimes ask for one round past the optimum"


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def one_round_too_many(task: Task) -> str:
    return task.canonical_solution.replace("range(iterations)", "range(iterations + 1)")


def test_one_grover_round_too_many_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], one_round_too_many, 9)


def final_state_prepared_directly(task: Task) -> str:
    """The shortcut: compute Grover's final state from the formula and prepare it, transpiled to
    plain u/cx gates so that no state-preparation instruction is left in the circuit. The old
    tests compared only this final state, and passed it.
    """
    parameters = task.metadata["parameters"]
    return helpers.whole_function(
        task,
        [
            "import numpy as np",
            "from qiskit import QuantumCircuit, transpile",
            f"marked, k = {parameters['marked']!r}, {parameters['iterations']}",
            f"n = {parameters['num_qubits']}",
            "size, count = 2**n, len(marked)",
            "angle = (2 * k + 1) * np.arcsin(np.sqrt(count / size))",
            "state = np.full(size, np.cos(angle) / np.sqrt(size - count), dtype=complex)",
            "for bits in marked:",
            "    state[int(bits, 2)] = np.sin(angle) / np.sqrt(count)",
            "qc = QuantumCircuit(n)",
            "qc.prepare_state(state)",
            'return transpile(qc, basis_gates=["u", "cx"], optimization_level=0)',
        ],
    )


def test_preparing_the_final_state_directly_fails(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, final_state_prepared_directly, 9)


def marked_state_beside_an_idle_oracle(task: Task) -> str | None:
    """The shortcut on 2 qubits, where one round lands exactly on the marked state: write that
    state with X gates, then apply a correct oracle once (on a marked basis state it only
    flips the global phase). The old tests passed it; swapping in another oracle exposes it.
    """
    parameters = task.metadata["parameters"]
    if parameters["num_qubits"] != 2:
        return None
    (bits,) = parameters["marked"]
    ones = [qubit for qubit in range(2) if bits[1 - qubit] == "1"]
    return helpers.whole_function(
        task,
        [
            "from qiskit import QuantumCircuit",
            'oracle = QuantumCircuit(2, name="oracle")',
            f"zeros = {[q for q in range(2) if q not in ones]}",
            "if zeros:",
            "    oracle.x(zeros)",
            "oracle.cz(0, 1)",
            "if zeros:",
            "    oracle.x(zeros)",
            "qc = QuantumCircuit(2)",
            *(f"qc.x({qubit})" for qubit in ones),
            "qc.append(oracle.to_gate(), [0, 1])",
            "return qc",
        ],
    )


def test_writing_the_marked_state_beside_an_idle_oracle_fails(verifier):
    tasks = helpers.by_difficulty(FAMILY)["basic"]
    helpers.assert_mutants_fail(verifier, tasks, marked_state_beside_an_idle_oracle, 4)


def with_the_library_grover_operator(task: Task) -> str:
    """A correct answer of another shape: the iterations from qiskit's grover_operator around a
    circuit holding the oracle gate."""
    code = task.canonical_solution
    return code.replace(
        code[code.index("    for _ in range(iterations)") :],
        "    from qiskit.circuit.library import grover_operator\n"
        "    wrapper = QuantumCircuit(n)\n"
        "    wrapper.append(oracle, range(n))\n"
        "    step = grover_operator(wrapper)\n"
        "    for _ in range(iterations):\n"
        "        qc.compose(step, inplace=True)\n"
        "    return qc\n",
    )


def test_an_answer_built_with_the_library_grover_operator_passes(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:6]
    answers = [with_the_library_grover_operator(task) for task in tasks]
    assert all(a != t.canonical_solution for a, t in zip(answers, tasks, strict=True))
    verdicts = verifier.verify_many(list(zip(tasks, answers, strict=True)))
    assert [v.outcome.value for v in verdicts] == ["passed"] * 6, [v.detail for v in verdicts]
