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


def test_difficulty_adds_the_oracle_gate_and_an_integer_secret():
    tasks = helpers.by_difficulty(FAMILY)
    assert not any(t.metadata["parameters"]["oracle_gate"] for t in tasks["basic"])
    assert all(t.metadata["parameters"]["oracle_gate"] for t in tasks["intermediate"])
    assert all("given as the integer" in t.prompt for t in tasks["difficult"])
    assert max(t.metadata["parameters"]["num_bits"] for t in tasks["basic"]) <= 6
    assert min(t.metadata["parameters"]["num_bits"] for t in tasks["difficult"]) >= 6


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def target_not_flipped(task: Task) -> str:
    """The oracle's target stays |+> instead of |->, so no phase kicks back."""
    return task.canonical_solution.replace("    qc.x(n)\n", "")


def test_an_oracle_target_left_out_of_the_minus_state_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], target_not_flipped, 9)
