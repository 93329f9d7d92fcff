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


def program_task(
    test_body: str, entry_point: str = "solve", task_id: str = "t/0", timeout: float | None = None
) -> Task:
    """A program-format task whose test calls ``check(entry_point)`` itself, like the hard set."""
    test = f"def check(candidate):\n{test_body}\n\ncheck({entry_point})\n"
    return Task(task_id, "Write solve().", test, entry_point, format="program", timeout=timeout)


@pytest.fixture(scope="session")
def verifier():
    with Verifier(parallelism=2) as v:
        yield v
