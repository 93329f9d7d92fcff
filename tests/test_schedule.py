"""`verify_many` starts the longest work first, and still answers in input order."""

from __future__ import annotations

import pytest

from qsandbox_env import Verifier
from tests.conftest import program_task

# Each program prints when it started, then takes its task's time.
SLEEPS = {"short": 0.05, "long": 0.6, "middle": 0.3}


def timed_task(name: str, timeout: float | None = None):
    return program_task("    candidate()\n", entry_point="solve", task_id=name, timeout=timeout)


def program(seconds: float) -> str:
    return (
        "import time\n"
        "def solve():\n"
        "    print(time.time())\n"
        f"    time.sleep({seconds})\n"
    )


def started(verdict) -> float:
    return float(verdict.output.split()[0])


@pytest.fixture(scope="module")
def one_lane():
    with Verifier(workers=1, preload=()) as verifier:
        yield verifier


def test_known_long_tasks_start_first_and_verdicts_keep_input_order(one_lane):
    pairs = [(timed_task(name), program(seconds)) for name, seconds in SLEEPS.items()]
    first = one_lane.verify_many(pairs)  # nothing known yet: every task's prior is its limit
    assert [v.task_id for v in first] == list(SLEEPS)
    second = one_lane.verify_many(pairs)
    assert [v.task_id for v in second] == list(SLEEPS)  # input order
    assert all(v.passed for v in first + second), [v.detail for v in first + second]
    by_start = [v.task_id for v in sorted(second, key=started)]
    assert by_start == ["long", "middle", "short"], by_start


def test_a_task_never_seen_goes_by_its_time_limit(one_lane):
    pairs = [
        (timed_task("unseen-10", timeout=10), program(0.01)),
        (timed_task("unseen-90", timeout=90), program(0.01)),
    ]
    verdicts = one_lane.verify_many(pairs)
    assert [v.task_id for v in sorted(verdicts, key=started)] == ["unseen-90", "unseen-10"]


def test_input_order_when_asked():
    pairs = [(timed_task(name), program(seconds)) for name, seconds in SLEEPS.items()]
    with Verifier(workers=1, preload=(), schedule="input") as verifier:
        verifier.verify_many(pairs)
        verdicts = verifier.verify_many(pairs)
    assert [v.task_id for v in sorted(verdicts, key=started)] == list(SLEEPS)


def test_an_unknown_schedule_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match="schedule: expected one of longest_first, input"):
        Verifier(workers=1, schedule="shortest")
