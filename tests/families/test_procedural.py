"""Tests for load_procedural and the family registry (qsandbox_env.families)."""

from __future__ import annotations

import collections
import json
import random

import pytest

from qsandbox_env import load_tasks
from qsandbox_env.families import (
    DIFFICULTIES,
    FAMILIES,
    Family,
    GeneratedTask,
    family_names,
    load_procedural,
    make_task,
    register_family,
)
from qsandbox_env.families.basis_state import BasisStateConfig
from tests.families.helpers import assert_canonical_solutions_pass

VALID = ", ".join(sorted(FAMILIES))


def test_at_least_ten_families_are_registered():
    assert len(family_names()) >= 10
    assert family_names() == tuple(sorted(FAMILIES))


def test_unknown_family_is_refused_with_the_valid_names():
    with pytest.raises(ValueError) as error:
        load_procedural(n=5, families=["basis_state", "teleportation"])
    assert str(error.value) == f"families: unknown family 'teleportation'; valid families: {VALID}"


def test_a_single_family_name_is_accepted_as_a_string():
    tasks = load_procedural(n=3, families="grover_search")
    assert list(tasks) == [f"procedural/grover_search/{i}" for i in range(3)]


@pytest.mark.parametrize("n", [0, -4])
def test_n_below_one_is_refused(n):
    with pytest.raises(ValueError, match=rf"^n: expected a positive number of tasks, got {n}$"):
        load_procedural(n=n)


def test_n_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match=r"^n: expected an int number of tasks, got float$"):
        load_procedural(n=2.0)


def test_bool_seed_is_refused():
    with pytest.raises(TypeError, match=r"^seed: expected an int, got bool$"):
        load_procedural(n=2, seed=True)


def test_unknown_difficulty_is_refused():
    message = "difficulty: expected one of basic, intermediate, difficult or None, got 'hard'"
    with pytest.raises(ValueError) as error:
        load_procedural(n=2, difficulty="hard")
    assert str(error.value) == message


def test_empty_and_repeated_family_lists_are_refused():
    with pytest.raises(ValueError, match=r"^families: expected at least one family name"):
        load_procedural(n=2, families=[])
    with pytest.raises(ValueError) as error:
        load_procedural(n=2, families=["qft_variants", "qft_variants"])
    assert str(error.value) == (
        "families: each family may appear once, got 'qft_variants' more than once"
    )


def test_non_string_family_is_refused():
    with pytest.raises(TypeError, match=r"^families: expected family names \(str\), got int$"):
        load_procedural(n=2, families=[3])


def test_tasks_spread_round_robin_over_the_families_with_cycling_difficulty():
    tasks = load_procedural(n=7, seed=1, families=["single_qubit", "basis_state"])
    assert list(tasks) == [
        "procedural/single_qubit/0", "procedural/basis_state/0",
        "procedural/single_qubit/1", "procedural/basis_state/1",
        "procedural/single_qubit/2", "procedural/basis_state/2",
        "procedural/single_qubit/3",
    ]  # fmt: skip
    levels = [tasks[f"procedural/single_qubit/{i}"].difficulty for i in range(4)]
    assert levels == ["basic", "intermediate", "difficult", "basic"]


def test_a_fixed_difficulty_applies_to_every_task():
    tasks = load_procedural(n=6, difficulty="difficult")
    assert {task.difficulty for task in tasks.values()} == {"difficult"}


def test_a_familys_tasks_do_not_depend_on_n_or_the_other_families():
    alone = load_procedural(n=4, seed=9, families="deutsch_jozsa")
    mixed = load_procedural(n=40, seed=9, families=["basis_state", "deutsch_jozsa"])
    for task_id, task in alone.items():
        assert mixed[task_id].prompt == task.prompt
        assert mixed[task_id].test == task.test


def test_same_arguments_give_identical_task_sets():
    first = load_procedural(n=30, seed=4)
    second = load_procedural(n=30, seed=4)
    assert list(first) == list(second)
    for task_id, task in first.items():
        assert second[task_id] == task


def test_different_seeds_give_different_task_sets():
    first = {task.prompt for task in load_procedural(n=44, seed=0).values()}
    second = {task.prompt for task in load_procedural(n=44, seed=1).values()}
    assert len(first & second) <= 4, len(first & second)


def test_metadata_records_family_seed_index_difficulty_and_parameters():
    task = load_procedural(n=1, seed=21, families="bernstein_vazirani")[
        "procedural/bernstein_vazirani/0"
    ]
    assert task.metadata["source"] == "procedural"
    assert task.metadata["family"] == "bernstein_vazirani"
    assert (task.metadata["seed"], task.metadata["index"]) == (21, 0)
    assert task.metadata["difficulty"] == task.difficulty == "basic"
    assert set(task.metadata["parameters"]) == {
        "secret",
        "other_secrets",
        "num_bits",
        "target_qubit",
        "oracle_given",
        "oracle_gate",
    }
    assert task.format == "completion"
    assert task.prompt.rstrip().endswith('"""')


def test_metadata_is_plain_json():
    tasks = load_procedural(n=33, seed=2)
    for task in tasks.values():
        record = json.loads(json.dumps(dict(task.metadata)))
        assert record["family"] == task.metadata["family"]


def test_load_tasks_dispatches_procedural_with_its_options():
    tasks = load_tasks("procedural", n=5, seed=3, families=["qft_variants"], difficulty="basic")
    assert list(tasks) == [f"procedural/qft_variants/{i}" for i in range(5)]
    assert tasks.source == "procedural(n=5, seed=3, families=qft_variants, difficulty=basic)"


def test_registering_a_taken_name_is_refused():
    family = FAMILIES["basis_state"]
    with pytest.raises(ValueError, match=r"^family 'basis_state' is already registered"):
        register_family(family)


def test_a_family_needs_one_preset_per_difficulty():
    def generate(rng: random.Random, config: BasisStateConfig) -> GeneratedTask:
        raise AssertionError("never called")

    with pytest.raises(ValueError) as error:
        Family("demo", "demo", BasisStateConfig, {"basic": BasisStateConfig()}, generate)
    assert str(error.value) == (
        "family 'demo': expected one preset per difficulty "
        "['basic', 'intermediate', 'difficult'], got ['basic']"
    )


def test_make_task_refuses_an_unknown_difficulty():
    with pytest.raises(ValueError, match=r"^difficulty: expected one of basic, intermediate"):
        make_task("basis_state", 0, 0, "easy")


def test_two_hundred_default_tasks_cover_every_family_and_all_pass(verifier):
    tasks = load_tasks("procedural", n=200, seed=0)
    assert len(tasks) == 200
    counts = collections.Counter(task.metadata["family"] for task in tasks.values())
    assert set(counts) == set(FAMILIES)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert {task.difficulty for task in tasks.values()} == set(DIFFICULTIES)
    assert_canonical_solutions_pass(verifier, list(tasks.values()))
