"""Tests for the bernstein_vazirani family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.bernstein_vazirani import BernsteinVaziraniConfig
from tests.families import helpers

FAMILY = "bernstein_vazirani"


def test_config_rejects_secrets_too_long_to_simulate():
    with pytest.raises(ValueError) as error:
        BernsteinVaziraniConfig(min_bits=3, max_bits=13)
    assert str(error.value) == (
        "BernsteinVaziraniConfig.max_bits: expected at most 12 (tests simulate the whole "
        "register), got 13"
    )


def test_config_rejects_a_non_integer_length():
    with pytest.raises(TypeError) as error:
        BernsteinVaziraniConfig(min_bits=2.5)
    assert str(error.value) == "BernsteinVaziraniConfig.min_bits: expected an int, got float"


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_config_rejects_a_given_oracle_with_an_integer_secret():
    with pytest.raises(ValueError) as error:
        BernsteinVaziraniConfig(oracle_given=True, secret_as_integer=True)
    assert str(error.value) == (
        "BernsteinVaziraniConfig.secret_as_integer: a given oracle keeps its secret hidden; "
        "expected False with oracle_given"
    )


def test_config_needs_exactly_one_oracle_mode():
    with pytest.raises(ValueError) as error:
        BernsteinVaziraniConfig(oracle_given=True, oracle_gate=True)
    assert str(error.value) == (
        "BernsteinVaziraniConfig: expected exactly one of oracle_given and oracle_gate, "
        "got True and True"
    )


def test_difficulty_moves_from_a_black_box_oracle_to_building_it_from_an_integer():
    tasks = helpers.by_difficulty(FAMILY)
    assert all("def bernstein_vazirani(oracle: Gate)" in t.prompt for t in tasks["basic"])
    assert not any(t.metadata["parameters"]["secret"] in t.prompt for t in tasks["basic"])
    assert all(t.metadata["parameters"]["oracle_gate"] for t in tasks["intermediate"])
    assert all(t.metadata["parameters"]["secret"] in t.prompt for t in tasks["intermediate"])
    assert all("given as the integer" in t.prompt for t in tasks["difficult"])
    targets = {t.metadata["parameters"]["target_qubit"] for t in tasks["basic"]}
    assert len(targets) > 3, "basic tasks place the oracle's target on various qubits"
    assert min(t.metadata["parameters"]["num_bits"] for t in tasks["difficult"]) >= 6


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def target_not_flipped(task: Task) -> str:
    """The oracle's target stays |+> instead of |->, so no phase kicks back."""
    code = task.canonical_solution
    return code.replace("    qc.x(n)\n", "").replace("    qc.x(target)\n", "")


def test_an_oracle_target_left_out_of_the_minus_state_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], target_not_flipped, 9)


def oracle_inside_a_custom_gate(task: Task) -> str:
    """A correct answer of another shape: the whole middle of the algorithm as one custom gate."""
    code = task.canonical_solution
    if task.metadata["parameters"]["oracle_given"]:
        return code.replace(
            "qc.append(oracle, [*query, target])",
            "middle = QuantumCircuit(n + 1)\n"
            "    middle.append(oracle, [*query, target])\n"
            "    qc.append(middle.to_gate(), range(n + 1))",
        )
    return code.replace(
        "qc.append(oracle.to_gate(), range(n + 1))",
        "middle = QuantumCircuit(n + 1)\n"
        "    middle.append(oracle.to_gate(), range(n + 1))\n"
        "    qc.append(middle.to_gate(), range(n + 1))",
    )


def test_an_oracle_call_wrapped_in_a_custom_gate_still_passes(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:6]
    answers = [oracle_inside_a_custom_gate(task) for task in tasks]
    assert all(a != t.canonical_solution for a, t in zip(answers, tasks, strict=True))
    verdicts = verifier.verify_many(list(zip(tasks, answers, strict=True)))
    assert [v.outcome.value for v in verdicts] == ["passed"] * 6, [v.detail for v in verdicts]


def secret_written_with_x_gates(task: Task) -> str:
    """The shortcut: read the secret, write it with X gates and measure. Where the task wants an
    oracle gate, append a correct one first, where it acts on |0...0> and changes nothing.
    The old tests passed this answer at every level: they ran the circuit for one secret only.
    """
    parameters = task.metadata["parameters"]
    lines = [
        "from qiskit import QuantumCircuit",
        f"secret = {parameters['secret']!r}",
        "n = len(secret)",
        "qc = QuantumCircuit(n + 1, n)",
    ]
    if parameters.get("oracle_gate"):
        lines += [
            'oracle = QuantumCircuit(n + 1, name="oracle")',
            "for qubit, bit in enumerate(reversed(secret)):",
            '    if bit == "1":',
            "        oracle.cx(qubit, n)",
            "qc.append(oracle.to_gate(), range(n + 1))",
        ]
    lines += [
        "for qubit, bit in enumerate(reversed(secret)):",
        '    if bit == "1":',
        "        qc.x(qubit)",
        "qc.measure(range(n), range(n))",
        "return qc",
    ]
    return helpers.whole_function(task, lines)


def test_writing_the_secret_with_x_gates_fails_at_every_level(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, secret_written_with_x_gates, 9)
