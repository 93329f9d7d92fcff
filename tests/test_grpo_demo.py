"""The demo learns: from near chance to a pass rate of at least 0.9, with real sandbox rewards."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.grpo.demo import DEMO_CONFIG, demo_tasks, demo_tokenizer, run_demo

pytestmark = pytest.mark.torch


def test_demo_tasks_canonical_solutions_pass(verifier) -> None:
    tasks = demo_tasks()
    verdicts = verifier.verify_many([(task, task.canonical_solution) for task in tasks.values()])
    assert [verdict.outcome.value for verdict in verdicts] == ["passed"] * len(tasks)


def test_demo_tokenizer_spells_every_solution_in_a_few_tokens() -> None:
    tasks = demo_tasks()
    tokenizer = demo_tokenizer(tasks)
    for task in tasks.values():
        ids = tokenizer(task.canonical_solution, add_special_tokens=False)["input_ids"]
        assert 1 <= len(ids) < DEMO_CONFIG.max_new_tokens
        assert tokenizer.decode(ids) == task.canonical_solution


def test_demo_goes_from_near_chance_to_at_least_0_9() -> None:
    lines: list[str] = []
    result = run_demo(DEMO_CONFIG, echo=lines.append)
    assert result.initial_pass_rate <= 0.2  # a near-uniform policy over the tokens
    assert result.final_pass_rate >= 0.9
    assert len(result.pass_rates) == DEMO_CONFIG.steps
    assert lines[-1] == f"final pass rate: {result.final_pass_rate:.2f}"
    assert lines[0].startswith(f"initial pass rate: {result.initial_pass_rate:.2f}")
