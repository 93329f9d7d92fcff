"""The glossary's names are the code's: the count of sandboxes working at once is ``workers``
everywhere, and the older keywords still work for one release, warn, and name the new one."""

from __future__ import annotations

import warnings

import pytest

from agents.ray import RayVerifier, RolloutPool
from agents.ray.options import checked_verifier_options
from agents.trl_adapter import VerifierReward
from qsandbox_env import Task, TaskSet, Verifier
from qsandbox_env.deprecation import renamed_keyword

ADD = Task("demo/add", "def add(a, b):\n", "def check(f):\n    assert f(2, 3) == 5\n", "add")


def test_verifier_takes_workers_and_the_old_parallelism_still_works_with_a_warning():
    with Verifier(workers=1, preload=()) as new:
        assert new.workers == 1
        assert new.verify(ADD, "    return a + b\n").passed
    with pytest.warns(
        DeprecationWarning, match=r"Verifier\(parallelism=\.\.\.\).*Verifier\(workers="
    ):
        old = Verifier(parallelism=1, preload=())
    with old:
        assert old.workers == 1
        with pytest.warns(DeprecationWarning, match="Verifier.workers"):
            assert old.parallelism == 1
        assert old.verify(ADD, "    return a - b\n").reward == 0.0


def test_the_warning_points_at_the_callers_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Verifier(parallelism=1, preload=()).close()
    assert [w.filename for w in caught if w.category is DeprecationWarning] == [__file__]


def test_giving_both_names_is_refused_naming_both():
    with pytest.raises(TypeError, match=r"Verifier: give workers= only \(parallelism= is its"):
        Verifier(workers=2, parallelism=2)


def test_ray_verifier_takes_workers_and_the_old_actors_warns_before_ray_is_touched():
    # The unknown option stops construction before Ray starts, after the keyword was read.
    with (
        pytest.warns(DeprecationWarning, match=r"RayVerifier\(actors=\.\.\.\).*workers="),
        pytest.raises(TypeError, match="unknown Verifier option"),
    ):
        RayVerifier(actors=2, paralel=1)
    with pytest.raises(TypeError, match="give workers= only"):
        RayVerifier(workers=2, actors=2)


def test_each_workers_sandbox_count_has_its_own_name_and_the_old_one_maps_to_it():
    assert checked_verifier_options({}, "RayVerifier")["workers"] == 1
    assert checked_verifier_options({}, "RayVerifier", 3)["workers"] == 3
    with pytest.warns(DeprecationWarning, match=r"parallelism=.*sandboxes_per_worker="):
        assert checked_verifier_options({"parallelism": 2}, "RolloutPool")["workers"] == 2
    # A Ray pool's own ``workers`` is its actors: a Verifier ``workers`` cannot slip in as one.
    with pytest.raises(TypeError, match=r"unknown Verifier option\(s\) \['workers'\]"):
        checked_verifier_options({"workers": 2}, "RayVerifier")
    with pytest.raises(ValueError, match="sandboxes_per_worker: expected a positive int, got 0"):
        checked_verifier_options({}, "RayVerifier", 0)


def test_rollout_pool_maps_the_old_parallelism_before_ray_is_touched():
    with (
        pytest.warns(DeprecationWarning, match="RolloutPool"),
        pytest.raises(TypeError, match="unknown Verifier option"),
    ):
        RolloutPool("oracle", TaskSet([ADD]), parallelism=2, paralel=1)


def test_the_trl_reward_takes_workers_and_warns_on_parallelism():
    reward = VerifierReward(TaskSet([ADD]), workers=1)
    assert reward._verifier_options["workers"] == 1
    with pytest.warns(DeprecationWarning, match=r"VerifierReward\(parallelism="):
        old = VerifierReward(TaskSet([ADD]), parallelism=1)
    assert old._verifier_options["workers"] == 1


def test_renamed_keyword_passes_the_new_value_through_untouched():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_keyword("X", "old", None, "new", 5) == 5
        assert renamed_keyword("X", "old", None, "new", None) is None
