"""The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models Trained
on Code", and its mean over tasks.

For one task with ``n`` samples of which ``c`` passed, pass@k is the probability that at least one
of ``k`` samples drawn without replacement passes: ``1 - C(n-c, k) / C(n, k)``. The binomials
overflow floats for large ``n``, so it is computed in the product form
``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms them.

This module only does arithmetic: it never reads files or runs code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["mean_pass_at_k", "pass_at_k", "reportable_ks"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k for one task with ``c`` passes out of ``n`` samples.

    Args:
        n: Samples drawn for the task.
        c: How many of them passed (``0 <= c <= n``).
        k: The budget (``1 <= k <= n``).

    Raises:
        ValueError: ``k > n`` (not estimable from ``n`` samples), or counts out of range.

    Example:
        >>> round(pass_at_k(10, 3, 1), 6)
        0.3
        >>> round(pass_at_k(10, 3, 5), 6)
        0.916667
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name}: expected an int, got {value!r}")
    if n < 1 or k < 1:
        raise ValueError(f"expected n >= 1 and k >= 1, got n={n}, k={k}")
    if not 0 <= c <= n:
        raise ValueError(f"c: expected 0 <= c <= n={n}, got {c}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got n={n}")
    if n - c < k:
        return 1.0  # every draw of k samples contains a pass
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over tasks, from ``(n, c)`` per task.

    Raises:
        ValueError: No tasks, or a task with fewer than ``k`` samples.

    Example:
        >>> mean_pass_at_k([(2, 2), (2, 0)], 1)
        0.5
    """
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values:
        raise ValueError("mean_pass_at_k: expected at least one task, got none")
    return math.fsum(values) / len(values)


def reportable_ks(ks: Sequence[int], n: int) -> list[int]:
    """The budgets in ``ks`` that ``n`` samples per task can estimate (``k <= n``), sorted.

    Example:
        >>> reportable_ks([10, 1, 5], 5)
        [1, 5]
    """
    return sorted({k for k in ks if k <= n})
