from __future__ import annotations

import os
import pathlib

import pytest

from qsandbox_env import Task, Verifier

ROOT = pathlib.Path(__file__).resolve().parents[1]
HUMANEVAL = (
    ROOT.parent
    / "shared"
    / "datasets"
    / "qiskit_humaneval"
    / ("dataset_qiskit_test_human_eval.json")
)


def humaneval_path() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("QSANDBOX_HUMANEVAL", HUMANEVAL))
    if not path.is_file():
        pytest.skip(
            f"Qiskit-HumanEval not found at {path} (set QSANDBOX_HUMANEVAL to its JSON file)"
        )
    return path


# Canonical solutions whose tests assert on unseeded shot noise: each fails now and then whatever
# runs it (a 3-sigma miss on 1,024 shots). Tests that compare whole runs settle these by running
# them again; they are data-set properties, not verdicts that differ.
SHOT_NOISE = {
    "qiskitHumanEval/28": "four bars of 1,024 shots must each round to 0.5 (about 1 run in 300)",
    "qiskitHumanEval/51": "a teleported |+> must read 0 with a share rounding to 0.5 (1 in 700)",
}


def settle_shot_noise(verifier, pairs, verdicts, tries: int = 3, **options) -> list:
    """``verdicts`` of ``pairs`` with each failed `SHOT_NOISE` task run again, up to ``tries``
    times, until it passes."""
    settled = list(verdicts)
    if len(settled) != len(pairs):
        raise ValueError(f"{len(pairs)} pairs but {len(settled)} verdicts")
    for index, (task, completion) in enumerate(pairs):
        for _ in range(tries):
            if settled[index].passed or task.task_id not in SHOT_NOISE:
                break
            settled[index] = verifier.verify(task, completion, **options)
    return settled


def program_task(
    test_body: str, entry_point: str = "solve", task_id: str = "t/0", timeout: float | None = None
) -> Task:
    """A program-format task whose test calls ``check(entry_point)`` itself, like the hard set."""
    test = f"def check(candidate):\n{test_body}\n\ncheck({entry_point})\n"
    return Task(task_id, "Write solve().", test, entry_point, format="program", timeout=timeout)


@pytest.fixture(scope="session")
def verifier():
    with Verifier(workers=2) as v:
        yield v
