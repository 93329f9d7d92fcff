"""pass@k: the product form against exact combinatorics, and what it refuses."""

from __future__ import annotations

import math

import pytest

from agents.bench.passk import mean_pass_at_k, pass_at_k, reportable_ks


def exact(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 50])
def test_pass_at_k_matches_exact_combinatorics_for_every_c_and_k(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(exact(n, c, k), abs=1e-12), (n, c, k)


def test_no_pass_gives_zero():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0


def test_all_passes_gives_one():
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 10, 10) == 1.0


def test_k_equal_to_n_is_one_when_any_sample_passed():
    assert pass_at_k(7, 1, 7) == 1.0


def test_pass_at_1_is_the_pass_fraction():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_large_n_stays_finite_where_binomials_overflow_floats():
    value = pass_at_k(2000, 3, 100)
    assert value == pytest.approx(exact(2000, 3, 100), rel=1e-9)


def test_k_greater_than_n_is_rejected():
    with pytest.raises(ValueError, match=r"^pass@5 needs at least 5 samples per task, got n=4$"):
        pass_at_k(4, 1, 5)


def test_c_greater_than_n_is_rejected():
    with pytest.raises(ValueError, match=r"^c: expected 0 <= c <= n=3, got 4$"):
        pass_at_k(3, 4, 1)


def test_non_int_counts_are_rejected():
    with pytest.raises(TypeError, match=r"^k: expected an int, got 1.0$"):
        pass_at_k(3, 1, 1.0)  # type: ignore[arg-type]


def test_mean_pass_at_k_averages_tasks():
    assert mean_pass_at_k([(5, 5), (5, 0), (5, 1)], 1) == pytest.approx((1 + 0 + 0.2) / 3)


def test_mean_pass_at_k_of_no_tasks_is_rejected():
    with pytest.raises(ValueError, match="expected at least one task, got none"):
        mean_pass_at_k([], 1)


def test_reportable_ks_drops_budgets_above_n():
    assert reportable_ks([1, 5, 10], 5) == [1, 5]
