"""Every way into the project scores the same answer the same way.

`Verifier.verify`, `QiskitCodeEnv.step`, the TRL reward function, Ray workers (`RayVerifier`),
``bench`` (`run_benchmark`) and the GRPO trainer's reward all reach the one extraction and
assembly path; each test here runs the same answers through one entry point and compares its
outcomes with `Verifier.verify`'s. The task's prompt stops right after its docstring's quotes, as
Qiskit-HumanEval's do, so a path that skipped the fit would score the body shapes ``syntax``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from qsandbox_env import Outcome, QiskitCodeEnv, Task, TaskSet

TEST = (
    "def check(candidate):\n"
    "    from qiskit.quantum_info import Statevector\n"
    "    state = Statevector(candidate())\n"
    "    assert abs(state[0] - 2**-0.5) < 1e-9 and abs(state[3] - 2**-0.5) < 1e-9\n"
)
TASK = Task(
    "shapes/bell",
    'from qiskit import QuantumCircuit\ndef bell() -> QuantumCircuit:\n    """A Bell pair."""',
    TEST,
    "bell",
)
TASKS = TaskSet([TASK])
BODY = "qc = QuantumCircuit(2)\nqc.h(0)\nqc.cx(0, 1)\nreturn qc\n"
ANSWERS = [
    "".join(f"    {line}\n" for line in BODY.splitlines()),  # a body without its first newline
    f"Here you go:\n```python\n{BODY}```\n",  # fenced, flush left
    "<think>\nH then CX.\n</think>\n```python\ndef bell():\n"
    + "".join(f"\t{line}\n" for line in BODY.splitlines())
    + "```",
    "    return QuantumCircuit(2)\n",  # wrong: no entanglement
    "    return QuantumCircuit(2\n",  # its own syntax error
]
EXPECTED = [Outcome.PASSED, Outcome.PASSED, Outcome.PASSED, Outcome.FAILED, Outcome.SYNTAX]


@pytest.fixture(scope="module")
def reference(verifier):
    verdicts = [verifier.verify(TASK, answer) for answer in ANSWERS]
    assert [v.outcome for v in verdicts] == EXPECTED, [(v.outcome, v.detail) for v in verdicts]
    return verdicts


def scored_like_the_verifier(reference, outcomes, codes=None) -> None:
    assert list(outcomes) == [verdict.outcome for verdict in reference]
    if codes is not None:
        assert list(codes) == [verdict.code for verdict in reference]


def test_verify_many_scores_like_verify(verifier, reference):
    verdicts = verifier.verify_many([(TASK, answer) for answer in ANSWERS])
    scored_like_the_verifier(reference, [v.outcome for v in verdicts], [v.code for v in verdicts])


def test_the_environment_scores_like_the_verifier(verifier, reference):
    env = QiskitCodeEnv(TASKS, verifier=verifier)
    outcomes, rewards = [], []
    for answer in ANSWERS:
        env.reset(options={"task_id": TASK.task_id})
        _, reward, _, _, info = env.step(answer)
        outcomes.append(Outcome(info["outcome"]))
        rewards.append(reward)
    scored_like_the_verifier(reference, outcomes)
    assert rewards == [verdict.reward for verdict in reference]


def test_the_trl_reward_function_scores_like_the_verifier(verifier, reference):
    from agents.trl_adapter import VerifierReward

    reward = VerifierReward(TASKS, verifier=verifier)
    chat = [[{"role": "assistant", "content": answer}] for answer in ANSWERS]
    rewards = asyncio.run(
        reward(prompts=[TASK.prompt] * len(chat), completions=chat, task_id=[TASK.task_id] * 5)
    )
    assert rewards == [verdict.reward for verdict in reference]
    scored_like_the_verifier(reference, [v.outcome for v in reward.verdicts])


def test_bench_scores_like_the_verifier(verifier, reference, tmp_path):
    from agents.bench.runner import BenchConfig, run_benchmark
    from agents.policy import Policy

    class Fixed(Policy):
        name = "fixed"

        def generate(self, queries, n=1, params=None):
            return [list(ANSWERS[:n]) for _ in queries]

    config = BenchConfig("fixed", "shapes", n=len(ANSWERS))
    run_benchmark(
        config, str(tmp_path), tasks=TASKS, policy=Fixed(), verifier=verifier, progress=False
    )
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    by_sample = {row["sample"]: Outcome(row["outcome"]) for row in rows}
    scored_like_the_verifier(reference, [by_sample[i] for i in range(len(ANSWERS))])


@pytest.mark.torch
def test_the_grpo_trainers_reward_scores_like_the_verifier(verifier, reference):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agents.grpo import demo
    from agents.grpo.config import GRPOConfig
    from agents.grpo.trainer import GRPOTrainer, Rollouts

    tokenizer = demo.demo_tokenizer(TASKS)
    config = GRPOConfig(prompts_per_step=1, group_size=5, micro_batch_size=5, tensorboard=False)
    trainer = GRPOTrainer(
        config, demo.demo_model(len(tokenizer)), tokenizer, TASKS, verifier, echo=lambda _: None
    )
    rollouts = Rollouts([TASK] * 5, [[0]] * 5, [[0]] * 5, list(ANSWERS), [False] * 5)
    verdicts = trainer.verify(rollouts)
    scored_like_the_verifier(reference, [v.outcome for v in verdicts], [v.code for v in verdicts])


@pytest.mark.ray
def test_ray_workers_score_like_the_verifier(reference):
    ray = pytest.importorskip("ray")
    from agents.rollout import RayVerifier

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with RayVerifier(workers=1) as remote:
            verdicts = remote.verify_many([(TASK, answer) for answer in ANSWERS])
    finally:
        if started:
            ray.shutdown()
    scored_like_the_verifier(reference, [v.outcome for v in verdicts], [v.code for v in verdicts])
