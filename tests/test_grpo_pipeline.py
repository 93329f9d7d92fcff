"""Pipelined GRPO steps: each generation chunk is verified while the next one generates.

The trainer is the real one (the demo's tiny Llama and line tokenizer), the verifier a real
`Verifier` whose sandboxes run every completion (preloading only ``qiskit``, which the tasks'
tests use, so they start in a moment). Wrappers around the generator and the verifier only
record when each call starts and ends.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.grpo import demo
from agents.grpo.config import GRPOConfig
from agents.grpo.pipeline import VerificationPipeline
from agents.grpo.trainer import GenerationError, GRPOTrainer, HFGenerator
from qsandbox_env import Verifier
from qsandbox_env.tasks import Task, TaskSet

pytestmark = pytest.mark.torch

CHUNK_SECONDS = 0.4  # what the slow generator adds to each chunk
CONFIG = GRPOConfig(
    steps=1,
    prompts_per_step=2,
    group_size=8,
    micro_batch_size=16,
    learning_rate=1e-2,
    max_new_tokens=3,
    generation_batch_size=1,  # two chunks a step
    use_chat_template=False,
    tensorboard=False,
)
TEST = """from qiskit import QuantumCircuit


def check(candidate):
    qc = QuantumCircuit(2)
    candidate(qc)
    assert {assertion}
"""
# Random completions pass these about half the time: rewards vary within a group.
ASSERTIONS = {
    "any_gate": "len(qc.data) > 0",
    "no_cx": "all(item.operation.name != 'cx' for item in qc.data)",
}


def tasks() -> TaskSet:
    return TaskSet(
        Task(
            f"pipeline/{name}",
            demo.HEADER + f'    """{name}"""\n',
            TEST.format(assertion=assertion),
            "build",
        )
        for name, assertion in ASSERTIONS.items()
    )


@pytest.fixture(scope="module")
def verifier():
    with Verifier(2, preload=("qiskit",)) as verifier:
        yield verifier


class RecordingVerifier:
    """A real verifier whose ``verify_many`` calls are timed: ``calls`` holds (start, end,
    pairs)."""

    def __init__(self, verifier) -> None:
        self.verifier = verifier
        self.calls: list[tuple[float, float, int]] = []

    def verify_many(self, pairs):
        pairs = list(pairs)
        started = time.perf_counter()
        verdicts = self.verifier.verify_many(pairs)
        self.calls.append((started, time.perf_counter(), len(pairs)))
        return verdicts


class SlowGenerator:
    """The model's own generation plus ``CHUNK_SECONDS`` per chunk; ``chunks`` holds each
    chunk's (start, end). ``fail_on`` makes that chunk (1-based) raise instead."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.chunks: list[tuple[float, float]] = []
        self.fail_on = fail_on

    def sample(self, trainer, prompts, n, temperature):
        started = time.perf_counter()
        if len(self.chunks) + 1 == self.fail_on:
            raise RuntimeError("the server fell over")
        samples = HFGenerator().sample(trainer, prompts, n, temperature)
        time.sleep(CHUNK_SECONDS)
        self.chunks.append((started, time.perf_counter()))
        return samples


def make_trainer(verifier, generator=None, **changes) -> GRPOTrainer:
    config = dataclasses.replace(CONFIG, **changes)
    task_set = tasks()
    tokenizer = demo.demo_tokenizer(task_set)
    model = demo.demo_model(len(tokenizer), config.seed)
    return GRPOTrainer(
        config, model, tokenizer, task_set, verifier, echo=lambda line: None, generator=generator
    )


def rewards_of_one_step(verifier, pipeline: bool) -> tuple[list[float], list[str], dict]:
    trainer = make_trainer(verifier, pipeline=pipeline)
    seen: list = []
    original = trainer.optimize
    trainer.optimize = lambda rollouts: (seen.append(rollouts), original(rollouts))[1]
    metrics = trainer.train_step()
    return seen[0].rewards, seen[0].texts, metrics


def test_pipelined_and_sequential_steps_give_the_same_rewards_in_the_same_order(verifier) -> None:
    pipelined = rewards_of_one_step(verifier, pipeline=True)
    sequential = rewards_of_one_step(verifier, pipeline=False)
    assert pipelined[1] == sequential[1]  # the same completions...
    assert pipelined[0] == sequential[0]  # ...rewarded alike, row by row
    assert 0 < sum(pipelined[0]) < len(pipelined[0])  # rewards that can tell a mix-up
    untimed = [name for name in pipelined[2] if not name.startswith("time/")]
    assert {name: pipelined[2][name] for name in untimed} == {
        name: sequential[2][name] for name in untimed
    }


def test_chunk_one_is_verified_while_chunk_two_generates(verifier) -> None:
    recording, generator = RecordingVerifier(verifier), SlowGenerator()
    make_trainer(recording, generator).train_step()
    (_, first_chunk_end), (_, second_chunk_end) = generator.chunks
    first_call_start = recording.calls[0][0]
    assert first_chunk_end <= first_call_start < second_chunk_end
    assert len(recording.calls) == 2  # one call a chunk


def test_sequential_steps_verify_after_the_last_chunk(verifier) -> None:
    recording, generator = RecordingVerifier(verifier), SlowGenerator()
    make_trainer(recording, generator, pipeline=False).train_step()
    assert [calls for *_, calls in recording.calls] == [16]
    assert recording.calls[0][0] >= generator.chunks[-1][1]


def test_verification_hidden_behind_generation_is_measured(verifier) -> None:
    metrics = make_trainer(verifier, SlowGenerator()).train_step()
    assert 0 < metrics["time/verification_hidden_s"] <= metrics["time/verification_s"]
    sequential = make_trainer(verifier, SlowGenerator(), pipeline=False).train_step()
    assert sequential["time/verification_hidden_s"] == 0.0
    assert sequential["time/verification_s"] > 0


def test_a_generator_that_raises_names_the_step_and_the_chunk(verifier) -> None:
    trainer = make_trainer(verifier, SlowGenerator(fail_on=2))
    message = (
        "step 0: the generator failed on chunk 2 of 2 (prompts 2-2 of 2): "
        "RuntimeError: the server fell over"
    )
    with pytest.raises(GenerationError, match=re.escape(message)) as error:
        trainer.train_step()
    assert isinstance(error.value.__cause__, RuntimeError)
    assert trainer.step == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("grpo-verify")]


def test_a_failed_step_keeps_the_verdicts_of_the_chunks_before_it(verifier) -> None:
    recording = RecordingVerifier(verifier)
    trainer = make_trainer(recording, SlowGenerator(fail_on=2), reuse_verdicts=True)
    with pytest.raises(GenerationError):
        trainer.train_step()
    verified = sum(calls for *_, calls in recording.calls)
    assert verified > 0 and len(trainer._verdict_cache) == verified
    first_task = trainer.sample_tasks(0)[0].task_id  # chunk 1 is the first prompt's group
    assert {task_id for task_id, _ in trainer._verdict_cache} == {first_task}


def test_a_completion_repeated_across_chunks_is_verified_once(verifier) -> None:
    recording = RecordingVerifier(verifier)
    trainer = make_trainer(recording, reuse_verdicts=True, prompts_per_step=4)  # tasks twice
    seen: list = []
    original = trainer.optimize
    trainer.optimize = lambda rollouts: (seen.append(rollouts), original(rollouts))[1]
    trainer.train_step()
    keys = [(task.task_id, text) for task, text in zip(seen[0].tasks, seen[0].texts, strict=True)]
    chunks = [set(keys[start : start + CONFIG.group_size]) for start in range(0, 32, 8)]
    assert any(a & b for i, a in enumerate(chunks) for b in chunks[i + 1 :])  # a repeat
    assert sum(calls for *_, calls in recording.calls) == len(set(keys))


def test_a_verifier_that_raises_stops_the_step_with_its_error(verifier) -> None:
    class Broken:
        def verify_many(self, pairs):
            raise ValueError("this Verifier is closed; create a new one")

    trainer = make_trainer(Broken(), SlowGenerator())
    with pytest.raises(ValueError, match="this Verifier is closed"):
        trainer.train_step()
    assert not [t for t in threading.enumerate() if t.name.startswith("grpo-verify")]


def test_the_pipeline_returns_verdicts_in_submission_order(verifier) -> None:
    task_set = tasks()
    passing = [(task_set["pipeline/any_gate"], "    qc.x(0)\n")] * 2
    failing = [(task_set["pipeline/no_cx"], "    qc.cx(0, 1)\n")]
    with VerificationPipeline(verifier, None) as pipeline:
        pipeline.submit(failing)
        pipeline.submit(passing)
        pipeline.submit(failing)
        verdicts = pipeline.finish()
    assert [verdict.passed for verdict in verdicts] == [False, True, True, False]


def test_the_command_line_turns_the_pipeline_off() -> None:
    import argparse

    from agents.grpo.cli import _config_from_args, configure_grpo

    parser = argparse.ArgumentParser()
    configure_grpo(parser)
    assert _config_from_args(parser.parse_args([]), GRPOConfig()).pipeline is True
    config = _config_from_args(parser.parse_args(["--no-pipeline"]), GRPOConfig())
    assert config.pipeline is False


@pytest.mark.ray
def test_a_ray_verifier_verifies_chunk_one_while_chunk_two_generates(verifier) -> None:
    pytest.importorskip("ray")
    from agents.ray.verifier import RayVerifier

    with RayVerifier(None, 2, preload=("qiskit",)) as ray_verifier:
        recording, generator = RecordingVerifier(ray_verifier), SlowGenerator()
        make_trainer(recording, generator).train_step()
        on_ray = rewards_of_one_step(ray_verifier, pipeline=True)
    (_, first_chunk_end), (_, second_chunk_end) = generator.chunks
    assert first_chunk_end <= recording.calls[0][0] < second_chunk_end
    assert on_ray[0] == rewards_of_one_step(verifier, pipeline=False)[0]
