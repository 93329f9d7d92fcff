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
