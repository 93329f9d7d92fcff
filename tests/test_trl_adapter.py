"""Tests for agents.trl_adapter: TRL's reward contract, datasets and environments, on the real
Verifier, and two steps of the real ``trl.GRPOTrainer`` on a tiny model built here.
"""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys

import pytest

from agents.trl_adapter import (
    PASSED_MESSAGE,
    QiskitToolEnvironment,
    VerifierReward,
    make_dataset,
    prompt_for,
)
from qsandbox_env import Task, TaskSet, load_tasks
from qsandbox_env.env import task_messages
from tests.conftest import ROOT

BUNDLED = load_tasks("bundled")
GHZ = BUNDLED["qsandbox/ghz_circuit"]
ZZ = BUNDLED["qsandbox/zz_expectation_from_counts"]
GHZ_WRONG = "\n    return QuantumCircuit(num_qubits)\n"
ZZ_WRONG = "\n    return 0.0\n"
ONE_TEST = "def check(candidate):\n    assert candidate() == 1\n"
# Completion tasks whose prompt is already a passing function: the completion decides.
TINY_TASKS = TaskSet(
    Task(f"tiny/{i}", f"def one_{i}():\n    return 1\n", ONE_TEST, f"one_{i}") for i in range(4)
)
SIMPLE_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
PROGRAM = Task(
    "demo/one",
    "Return 1. You must implement this using a function named `one`.",
    "def check(candidate):\n    assert candidate() == 1\n\ncheck(one)\n",
    "one",
    format="program",
)


def score(reward: VerifierReward, completions: list, task_ids: list[str], **columns) -> list:
    prompts = [""] * len(completions)
    call = reward(prompts=prompts, completions=completions, task_id=task_ids, **columns)
    return asyncio.run(call)


def as_chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": f"Here it is:\n```python\n{text}```\n"}]


# --- reward function ------------------------------------------------------------------------------


def test_the_reward_is_one_for_passing_and_zero_for_failing_completions_in_order(verifier) -> None:
    reward = VerifierReward(BUNDLED, verifier=verifier)
    completions = [GHZ_WRONG, GHZ.canonical_solution, ZZ.canonical_solution, ZZ_WRONG]
    task_ids = [GHZ.task_id, GHZ.task_id, ZZ.task_id, ZZ.task_id]
    assert score(reward, completions, task_ids) == [0.0, 1.0, 1.0, 0.0]
    assert [verdict.task_id for verdict in reward.verdicts] == task_ids
    assert reward.calls == 1


def test_conversational_completions_are_scored_from_the_assistant_message(verifier) -> None:
    reward = VerifierReward(BUNDLED, verifier=verifier)
    completions = [as_chat(ZZ_WRONG.lstrip("\n")), as_chat(ZZ.canonical_solution.lstrip("\n"))]
    assert score(reward, completions, [ZZ.task_id, ZZ.task_id]) == [0.0, 1.0]


def test_an_unknown_task_id_raises_before_anything_runs(verifier) -> None:
    reward = VerifierReward(BUNDLED, verifier=verifier)
    with pytest.raises(ValueError, match=r"^unknown task_id 'qsandbox/ghz' in .*close matches"):
        score(reward, ["x", "y"], [GHZ.task_id, "qsandbox/ghz"])
    assert (reward.calls, list(reward.verdicts)) == (0, [])


def test_a_dataset_without_task_id_is_a_value_error() -> None:
    reward = VerifierReward(BUNDLED)
    message = (
        r"^VerifierReward: the dataset has no 'task_id' column; build it with "
        r"agents\.trl_adapter\.make_dataset\(\.\.\.\) or add the column$"
    )
    with pytest.raises(ValueError, match=message):
        asyncio.run(reward(prompts=["p"], completions=["c"]))


def test_one_task_id_per_completion_is_required() -> None:
    reward = VerifierReward(BUNDLED)
    message = r"^VerifierReward: 2 completions but 1 task ids; expected one task_id per completion$"
    with pytest.raises(ValueError, match=message):
        score(reward, ["a", "b"], [GHZ.task_id])


def test_outcomes_are_logged_through_trls_callbacks(verifier) -> None:
    reward = VerifierReward(BUNDLED, verifier=verifier)
    extra: dict[str, list] = {}
    metrics: dict[str, float] = {}
    completions = [GHZ.canonical_solution, "    return (\n"]
    score(
        reward,
        completions,
        [GHZ.task_id, GHZ.task_id],
        log_extra=extra.__setitem__,
        log_metric=metrics.__setitem__,
    )
    assert extra == {"outcome": ["passed", "syntax"]}
    assert metrics["outcome/passed"] == metrics["outcome/syntax"] == 0.5
    assert metrics["outcome/timeout"] == 0.0


def test_only_the_most_recent_verdicts_are_kept(verifier) -> None:
    reward = VerifierReward(BUNDLED, verifier=verifier, keep=2)
    completions = [GHZ_WRONG, ZZ_WRONG, ZZ.canonical_solution]
    score(reward, completions, [GHZ.task_id, ZZ.task_id, ZZ.task_id])
    assert [verdict.task_id for verdict in reward.verdicts] == [ZZ.task_id, ZZ.task_id]
    assert reward.outcomes == {"failed": 2, "passed": 1}


def test_a_reward_function_without_a_verifier_starts_and_closes_its_own() -> None:
    reward = VerifierReward(TaskSet([PROGRAM]), workers=1)
    assert score(reward, ["def one():\n    return 1\n"], [PROGRAM.task_id]) == [1.0]
    started = reward.verifier
    reward.close()
    with pytest.raises(ValueError, match="this Verifier is closed"):
        started.verify(PROGRAM, "")


# --- dataset --------------------------------------------------------------------------------------


def test_a_chat_dataset_holds_the_environments_messages_and_task_ids() -> None:
    dataset = make_dataset("bundled")
    assert dataset.column_names == ["prompt", "task_id"]
    assert dataset["task_id"] == list(BUNDLED)
    assert dataset[0]["prompt"] == task_messages(BUNDLED[dataset[0]["task_id"]])


def test_a_text_dataset_holds_the_prompt_a_base_model_continues() -> None:
    dataset = make_dataset(TaskSet([GHZ, PROGRAM]), prompt_format="text")
    assert dataset["prompt"] == [GHZ.prompt, task_messages(PROGRAM)[-1]["content"] + "\n"]


def test_source_options_reach_the_task_loader(tmp_path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"task_id": "a", "prompt": "p", "test": "t", "entry_point": "f"}\n')
    with pytest.raises(ValueError, match=r"a task file takes no options, got 'n'"):
        make_dataset(str(path), n=3)


def test_source_options_with_a_task_set_are_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^source options \['n'\] apply only when tasks is a "):
        make_dataset(BUNDLED, n=3)


def test_an_unknown_prompt_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^prompt_format: expected 'chat' or 'text', got 'raw'$"):
        prompt_for(GHZ, "raw")


def test_without_datasets_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    message = r'^agents\.trl_adapter needs the `datasets` library: pip install "qsandbox\[grpo\]"$'
    with pytest.raises(ImportError, match=message):
        make_dataset("bundled")


def test_the_module_imports_without_trl_torch_or_datasets() -> None:
    script = (
        "import sys, agents.trl_adapter\n"
        "print(sorted(m for m in ('trl', 'torch', 'datasets', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout == "[]\n"


# --- environment for environment_factory ----------------------------------------------------------


def make_environment(verifier) -> QiskitToolEnvironment:
    return QiskitToolEnvironment.factory(TaskSet([GHZ, PROGRAM]), verifier)()


def test_reset_returns_nothing_when_the_row_carries_the_prompt(verifier) -> None:
    environment = make_environment(verifier)
    assert environment.reset(prompt=task_messages(GHZ), task_id=GHZ.task_id) is None


def test_reset_returns_the_task_when_the_row_has_no_prompt(verifier) -> None:
    environment = make_environment(verifier)
    assert environment.reset(task_id=PROGRAM.task_id) == task_messages(PROGRAM)[-1]["content"]


def test_passing_code_run_through_the_tool_earns_reward_one(verifier) -> None:
    environment = make_environment(verifier)
    environment.reset(task_id=PROGRAM.task_id)
    assert environment.get_reward() == 0.0
    assert environment.run_tests("def one():\n    return 2\n").startswith(
        "Your code did not pass (failed)."
    )
    assert environment.get_reward() == 0.0
    assert environment.run_tests("```python\ndef one():\n    return 1\n```") == PASSED_MESSAGE
    assert (environment.get_reward(), environment.attempts) == (1.0, 2)


def test_reset_forgets_the_previous_rollout(verifier) -> None:
    environment = make_environment(verifier)
    environment.reset(task_id=PROGRAM.task_id)
    environment.run_tests("def one():\n    return 1\n")
    environment.reset(task_id=GHZ.task_id)
    assert (environment.get_reward(), environment.attempts, environment.last_verdict) == (
        0.0,
        0,
        None,
    )


def test_reset_without_a_task_id_is_a_value_error(verifier) -> None:
    message = r"^QiskitToolEnvironment\.reset: the dataset row has no 'task_id'; build the "
    with pytest.raises(ValueError, match=message):
        make_environment(verifier).reset(prompt="p")


def test_only_run_tests_is_exposed_to_the_model_as_a_tool() -> None:
    # TRL exposes every public function of the class except reset and get_reward.
    public = [
        name
        for name, _ in inspect.getmembers(QiskitToolEnvironment, predicate=inspect.isfunction)
        if not name.startswith("_")
    ]
    assert public == ["get_reward", "reset", "run_tests"]


@pytest.mark.torch
def test_the_tool_has_a_schema_transformers_can_render(verifier) -> None:
    from transformers.utils import get_json_schema

    schema = get_json_schema(make_environment(verifier).run_tests)
    assert schema["function"]["name"] == "run_tests"
    assert schema["function"]["parameters"]["required"] == ["code"]


# --- the real GRPOTrainer -------------------------------------------------------------------------


@pytest.mark.torch
def test_trl_sees_the_reward_function_as_async_and_names_it() -> None:
    from trl.trainer.utils import get_callable_name, is_async_callable

    reward = VerifierReward(BUNDLED)
    assert is_async_callable(reward)
    assert get_callable_name(reward) == "qsandbox_verifier"


def tiny_tokenizer(directory, chat_template: str = SIMPLE_TEMPLATE, eos: str = "<eos>"):
    """A word-level tokenizer trained here on "#" and ")". A random policy over it writes a
    comment (or nothing) about as often as a syntax error, so rewards differ within a group and
    GRPO has a gradient."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", eos, "<unk>"])
    tokenizer.train_from_iterator(["# )"] * 8, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token=eos, unk_token="<unk>"
    )
    fast.chat_template = chat_template
    fast.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory)


def tiny_model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


def tiny_grpo_config(output_dir):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=4,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
    )


@pytest.mark.torch
def test_grpo_trainer_trains_two_steps_on_verifier_rewards(verifier, tmp_path) -> None:
    import torch
    from trl import GRPOTrainer

    tokenizer = tiny_tokenizer(tmp_path / "tokenizer")
    model = tiny_model(tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    reward = VerifierReward(TINY_TASKS, verifier=verifier)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=tiny_grpo_config(tmp_path / "out"),
        train_dataset=make_dataset(TINY_TASKS),
        processing_class=tokenizer,
    )
    trainer.train()

    assert reward.calls == 2 and len(reward.verdicts) == 16
    assert {verdict.task_id for verdict in reward.verdicts} <= set(TINY_TASKS)
    logged = [entry["rewards/qsandbox_verifier/mean"] for entry in trainer.state.log_history[:2]]
    rewards = [verdict.reward for verdict in reward.verdicts]
    ours = [sum(rewards[i : i + 8]) / 8 for i in (0, 8)]
    assert logged == pytest.approx(ours)
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, before[name])]
    assert changed, "no parameter changed: every group had equal rewards"


@pytest.mark.torch
def test_grpo_trainer_runs_the_tool_environment_from_dataset_rows(verifier, tmp_path) -> None:
    from trl import GRPOTrainer
    from trl.chat_template_utils import qwen2_5_chat_template

    # TRL needs a chat template that renders tool calls and that it knows how to parse.
    tokenizer = tiny_tokenizer(tmp_path / "tokenizer", qwen2_5_chat_template, eos="<|im_end|>")
    reward = VerifierReward(TINY_TASKS, verifier=verifier)
    factory = QiskitToolEnvironment.factory(TINY_TASKS, verifier)
    environments: list[QiskitToolEnvironment] = []

    def recording_factory() -> QiskitToolEnvironment:
        environments.append(factory())
        return environments[-1]

    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        reward_funcs=reward,
        args=tiny_grpo_config(tmp_path / "out"),
        train_dataset=make_dataset(TINY_TASKS),
        processing_class=tokenizer,
        environment_factory=recording_factory,
    )
    trainer.train()

    assert len(environments) == 8  # one per rollout of a batch, reused across batches
    assert all(environment.task in TINY_TASKS.values() for environment in environments)
    steps = trainer.state.log_history[:2]
    # A random model never calls run_tests, so the environment's reward is 0 for every rollout.
    assert [entry["tools/call_frequency"] for entry in steps] == [0.0, 0.0]
    assert [entry["rewards/QiskitToolEnvironment/mean"] for entry in steps] == [0.0, 0.0]
    assert reward.calls == 2
