"""GRPOConfig validation, the trainer's loop, checkpoints and resume, and `qsandbox train grpo`.

Trainer tests use the demo's tiny GPT-2 and tasks with real sandbox rewards (the session
``verifier`` fixture).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re

import pytest

from agents.grpo.config import GRPOConfig
from qsandbox_env.cli import main

# -- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"group_size": 1},
            "group_size: expected an int >= 2 (advantages compare completions of a group), got 1",
        ),
        ({"steps": 0}, "steps: expected a positive int, got 0"),
        ({"iterations": True}, "iterations: expected a positive int, got True"),
        ({"learning_rate": 0}, "learning_rate: expected a number in (0, inf), got 0"),
        ({"epsilon_low": 1.0}, "epsilon_low: expected a number in [0, 1), got 1.0"),
        ({"top_p": 1.5}, "top_p: expected a number in (0, 1], got 1.5"),
        ({"temperature": 0.0}, "temperature: expected a number in (0, inf), got 0.0"),
        ({"beta": float("nan")}, "beta: expected a number in [0, inf), got nan"),
        ({"loss_type": "ppo"}, "loss_type: expected one of grpo, dr_grpo, dapo, got 'ppo'"),
        (
            {"advantage_scale": "std"},
            "advantage_scale: expected one of group, batch, none, got 'std'",
        ),
        ({"precision": "fp16"}, "precision: expected one of auto, bf16, fp32, got 'fp16'"),
        ({"lora": "yes"}, "lora: expected True or False, got 'yes'"),
        (
            {"lora_target_modules": "q_proj"},
            "lora_target_modules: expected a non-empty sequence "
            "of module names such as ('q_proj', 'v_proj') or ('all-linear',), got 'q_proj'",
        ),
    ],
)
def test_config_rejects_a_bad_value_naming_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        GRPOConfig(**changes)


def test_config_requires_whole_optimizer_steps_per_batch() -> None:
    message = (
        "batch: expected prompts_per_step * group_size to be a multiple of micro_batch_size * "
        "gradient_accumulation_steps, got 2 * 4 = 8 and 3 * 1 = 3"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        GRPOConfig(prompts_per_step=2, group_size=4, micro_batch_size=3)


def test_config_survives_a_round_trip_through_a_dict() -> None:
    config = GRPOConfig(loss_type="dapo", lora=True, lora_target_modules=("q_proj", "v_proj"))
    assert GRPOConfig.from_dict(config.to_dict()) == config


def test_config_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(
        ValueError, match=r"GRPOConfig: expected fields among .*got unknown \['lr'\]"
    ):
        GRPOConfig.from_dict({"lr": 1.0})


# -- the command line (no torch needed before validation) -------------------------------------


def test_cli_without_model_tasks_or_out_says_what_is_missing(capsys) -> None:
    assert main(["train", "grpo"]) == 2
    assert "expected --model, --tasks, --out (or --demo), got none" in capsys.readouterr().err


def test_cli_reports_a_bad_hyper_parameter_before_loading_anything(capsys) -> None:
    assert main(["train", "grpo", "--demo", "--group-size", "1"]) == 2
    assert "group_size: expected an int >= 2" in capsys.readouterr().err


def test_cli_refuses_server_generation_without_lora(capsys) -> None:
    code = main(
        [
            "train",
            "grpo",
            "--model",
            "m",
            "--tasks",
            "bundled",
            "--out",
            "o",
            "--generator",
            "openai:qwen@http://localhost:8000/v1",
        ]
    )
    assert code == 2
    assert "--lora: expected True with an openai:<model>@<url> generator, got False" in (
        capsys.readouterr().err
    )


# -- the trainer ------------------------------------------------------------------------------

SMALL = GRPOConfig(
    steps=2,
    prompts_per_step=2,
    group_size=8,
    iterations=2,
    micro_batch_size=8,
    gradient_accumulation_steps=2,
    learning_rate=1e-2,
    max_new_tokens=3,
    use_chat_template=False,
    tensorboard=False,
)


@pytest.fixture(scope="module")
def demo():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agents.grpo import demo

    return demo


# Tasks that random completions pass about half the time, so groups have reward spread and
# every step moves the weights.
SPREAD_TESTS = {
    "any_gate": "assert len(qc.data) > 0",
    "no_cx": "assert all(item.operation.name != 'cx' for item in qc.data)",
}


def spread_tasks(demo):
    from qsandbox_env.tasks import Task, TaskSet

    test = "def check(candidate):\n    qc = QuantumCircuit(2)\n    candidate(qc)\n    {}\n"
    return TaskSet(
        Task(
            f"test/{name}",
            demo.HEADER + f'    """{name}"""\n',
            "from qiskit import QuantumCircuit\n\n\n" + test.format(assertion),
            "build",
        )
        for name, assertion in SPREAD_TESTS.items()
    )


def make_trainer(demo, verifier, config=SMALL, out_dir=None, width=32):
    from agents.grpo.trainer import GRPOTrainer

    tasks = spread_tasks(demo)
    tokenizer = demo.demo_tokenizer(tasks)
    model = demo.demo_model(len(tokenizer), config.seed)
    if width != 32:
        model.config.hidden_size, model.config.intermediate_size = width, 2 * width
        model = type(model)(model.config)
    return GRPOTrainer(
        config, model, tokenizer, tasks, verifier, out_dir=out_dir, echo=lambda line: None
    )


def parameters(trainer) -> dict:
    return {name: p.detach().clone() for name, p in trainer.model.named_parameters()}


@pytest.mark.torch
def test_resumed_run_matches_an_uninterrupted_one(demo, verifier, tmp_path) -> None:
    from agents.grpo import checkpoint

    straight = make_trainer(demo, verifier, out_dir=str(tmp_path / "straight"))
    straight.train()
    first = make_trainer(demo, verifier, dataclasses.replace(SMALL, steps=1), str(tmp_path / "cut"))
    first.train()
    resumed = make_trainer(demo, verifier, out_dir=str(tmp_path / "cut"))
    resumed.resume(checkpoint.latest(str(tmp_path / "cut")))
    assert resumed.step == 1
    resumed.train()
    expected, actual = parameters(straight), parameters(resumed)
    assert all(torch_equal(expected[name], actual[name]) for name in expected)
    initial = parameters(make_trainer(demo, verifier))
    # training moved the weights, so the equality above means something
    assert any(not torch_equal(initial[name], expected[name]) for name in expected)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.mark.torch
def test_metrics_csv_has_one_row_per_step_with_namespaced_columns(demo, verifier, tmp_path) -> None:
    from agents.grpo.trainer import METRICS

    make_trainer(demo, verifier, out_dir=str(tmp_path)).train()
    with open(tmp_path / "metrics.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["step", *METRICS]
    assert [row["step"] for row in rows] == ["1", "2"]
    outcomes = [sum(int(row[name]) for name in row if name.startswith("outcomes/")) for row in rows]
    assert outcomes == [SMALL.batch_size, SMALL.batch_size]
    assert all(0.0 <= float(row["train/pass_rate"]) <= 1.0 for row in rows)
    assert float(rows[0]["time/verification_s"]) > 0


@pytest.mark.torch
def test_checkpoint_and_final_model_are_written(demo, verifier, tmp_path) -> None:
    make_trainer(demo, verifier, out_dir=str(tmp_path)).train()
    assert (tmp_path / "checkpoints" / "step-000002" / "trainer_state.pt").is_file()
    assert (tmp_path / "final" / "config.json").is_file()


@pytest.mark.torch
def test_resume_refuses_a_checkpoint_of_another_model(demo, verifier, tmp_path) -> None:
    make_trainer(demo, verifier, dataclasses.replace(SMALL, steps=1), str(tmp_path)).train()
    wider = make_trainer(demo, verifier, width=64)
    before = parameters(wider)
    with pytest.raises(
        ValueError,
        match=r"expected \S+ of shape \(10, 64\), "
        r"got \(10, 32\)",
    ):
        wider.resume(str(tmp_path / "checkpoints" / "step-000001"))
    assert all(torch_equal(before[name], p) for name, p in parameters(wider).items())


@pytest.mark.torch
def test_lora_trains_only_the_adapters(demo, verifier) -> None:
    targets = ("q_proj", "v_proj")
    config = dataclasses.replace(SMALL, steps=1, lora=True, lora_target_modules=targets)
    trainer = make_trainer(demo, verifier, config)
    before = parameters(trainer)
    trainer.train()
    after = parameters(trainer)
    trainable = {name for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    frozen_changed = [
        n for n in before if n not in trainable and not torch_equal(before[n], after[n])
    ]
    assert frozen_changed == []
    assert any(not torch_equal(before[n], after[n]) for n in trainable)


@pytest.mark.torch
def test_kl_penalty_is_measured_against_a_frozen_reference(demo, verifier) -> None:
    trainer = make_trainer(demo, verifier, dataclasses.replace(SMALL, steps=1, beta=0.1))
    metrics = trainer.train()
    assert not any(p.requires_grad for p in trainer.reference.parameters())
    # the second pass over the batch runs after an update, so the policy has left the reference
    assert metrics["losses/kl_ref"] > 0


@pytest.mark.torch
def test_reused_verdicts_run_each_distinct_completion_once(demo, verifier) -> None:
    counting = CountingVerifier(verifier)
    config = dataclasses.replace(SMALL, steps=1, reuse_verdicts=True)
    trainer = make_trainer(demo, counting, config)
    rollouts = trainer.generate(trainer.sample_tasks(0), config.group_size)
    verdicts = trainer.verify(rollouts)
    distinct = {
        (task.task_id, text) for task, text in zip(rollouts.tasks, rollouts.texts, strict=True)
    }
    assert counting.runs == len(distinct) and len(verdicts) == config.batch_size
    trainer.verify(rollouts)
    assert counting.runs == len(distinct)


class CountingVerifier:
    def __init__(self, verifier) -> None:
        self.verifier, self.runs = verifier, 0

    def verify_many(self, pairs):
        pairs = list(pairs)
        self.runs += len(pairs)
        return self.verifier.verify_many(pairs)


@pytest.mark.torch
def test_task_sampling_depends_only_on_seed_and_step(demo, verifier) -> None:
    trainer = make_trainer(demo, verifier)
    again = make_trainer(demo, verifier)
    assert trainer.sample_tasks(5) == again.sample_tasks(5)
    assert [trainer.sample_tasks(step) for step in range(4)] != [trainer.sample_tasks(0)] * 4


@pytest.mark.torch
def test_chat_template_wraps_the_prompt_with_the_system_prompt(demo, verifier) -> None:
    from qsandbox_env.env import SYSTEM_PROMPT

    trainer = make_trainer(demo, verifier, dataclasses.replace(SMALL, use_chat_template=True))
    task = trainer.tasks[0]
    assert trainer.prompt_text(task) == task.prompt  # the demo tokenizer has no template
    trainer.tokenizer.chat_template = (
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>"
    )
    text = trainer.prompt_text(task)
    assert text.startswith(f"<system>{SYSTEM_PROMPT}<user>") and text.endswith("<assistant>")
    assert task.prompt in text


@pytest.mark.torch
def test_trainer_rejects_a_verifier_without_verify_many(demo) -> None:
    with pytest.raises(
        TypeError, match="verifier: expected a Verifier or an object with verify_many, got str"
    ):
        make_trainer(demo, "verifier")


@pytest.mark.torch
def test_cli_trains_a_saved_model_and_resumes_its_run(demo, tmp_path, capsys) -> None:
    tasks = spread_tasks(demo)
    tokenizer = demo.demo_tokenizer(tasks)
    demo.demo_model(len(tokenizer)).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    lines = [
        json.dumps(
            {"task_id": t.task_id, "prompt": t.prompt, "test": t.test, "entry_point": "build"}
        )
        for t in tasks.values()
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    common = [
        "train",
        "grpo",
        "--model",
        str(tmp_path / "model"),
        "--tasks",
        str(tmp_path / "tasks.jsonl"),
        "--out",
        str(out),
        "--prompts-per-step",
        "2",
        "--group-size",
        "4",
        "--micro-batch-size",
        "8",
        "--max-new-tokens",
        "3",
        "--workers",
        "1",
        "--no-tensorboard",
    ]
    assert main([*common, "--steps", "1"]) == 0
    assert main([*common, "--steps", "2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert f"resumed from {out / 'checkpoints' / 'step-000001'} at step 1" in printed
    with open(out / "metrics.csv", encoding="utf-8") as file:
        assert [row["step"] for row in csv.DictReader(file)] == ["1", "2"]
    assert (out / "final" / "model.safetensors").is_file()


def test_resuming_a_metrics_file_without_a_new_column_widens_it_and_keeps_every_value(tmp_path):
    from agents.grpo.metrics import MetricsLogger

    # A run started before time/verification_hidden_s existed.
    (tmp_path / "metrics.csv").write_text("step,train/reward_mean,time/step_s\n1,0.25,3.5\n")
    columns = ["train/reward_mean", "time/verification_hidden_s", "time/step_s"]
    with MetricsLogger(str(tmp_path), columns, tensorboard=False) as log:
        log.write(2, {"train/reward_mean": 0.5, "time/verification_hidden_s": 1.25})
    with MetricsLogger(str(tmp_path), columns, tensorboard=False) as log:  # already wide
        log.write(3, {"time/step_s": 2.0})
    with open(tmp_path / "metrics.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [
        ["step", "train/reward_mean", "time/step_s", "time/verification_hidden_s"],
        ["1", "0.25", "3.5", ""],
        ["2", "0.5", "", "1.25"],
        ["3", "", "2.0", ""],
    ]
    assert not (tmp_path / "metrics.csv.tmp").exists()
