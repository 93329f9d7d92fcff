"""The ``oracle`` policy: answers every query with its task's canonical solution.

It validates the pipeline end to end: its pass@1 is the Verifier's pass rate on the canonical
solutions. A task without a canonical solution gets an empty completion (which fails). It must
never read a task's test.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.policy import Policy, Query, SamplingParams, check_request

__all__ = ["OraclePolicy", "make"]


class OraclePolicy(Policy):
    """``n`` copies of each task's canonical solution; sampling parameters are ignored.

    Example:
        >>> from qsandbox_env import load_tasks
        >>> from agents.policy import query_for
        >>> task = next(iter(load_tasks("bundled").values()))
        >>> OraclePolicy().generate([query_for(task)], n=2)[0] == [task.canonical_solution] * 2
        True
    """

    name = "oracle"
    replicable = True

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        check_request(queries, n)
        return [[query.task.canonical_solution] * n for query in queries]


def make(**options: object) -> OraclePolicy:
    """Build the oracle; it takes no options.

    Raises:
        ValueError: Any option given.
    """
    if options:
        raise ValueError(f"agent 'oracle' takes no options, got {', '.join(sorted(options))}")
    return OraclePolicy()
