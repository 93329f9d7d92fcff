"""`qsandbox train sft` (`agents.sft`), and the whole recipe end to end on a CPU.

distil (a localhost teacher, real sandbox verdicts) -> SFT of a tiny model built from a config
-> two GRPO steps from the result -> ``bench`` on it. The tiny model reads characters, so any
text (reasoning, code) tokenizes; its chat template is a plain Jinja one.
"""

from __future__ import annotations

import json
import os
import re

import pytest

pytest.importorskip("trl")
pytest.importorskip("peft")

from agents.distill import DistillConfig, run_distill
from agents.sft import SFTError, SFTOptions, load_examples, run_sft
from qsandbox_env import load_tasks
from qsandbox_env.cli import main
from tests.teacher_server import TeacherServer

KINDS = ("think", "field", "repair", "wrong")
TASKS = dict(list(load_tasks("bundled").items())[: len(KINDS)])
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def char_tokenizer():
    """Every printable ASCII character is a token, plus the chat markers."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<eos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    chars = [chr(code) for code in range(32, 127)] + ["\n", "\t"]
    core = Tokenizer(
        models.WordLevel({t: i for i, t in enumerate(specials + chars)}, unk_token="<unk>")
    )
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<eos>",
        pad_token="<eos>",
        unk_token="<unk>",
        additional_special_tokens=specials[2:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_model(vocab_size: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def base_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("base")
    tokenizer = char_tokenizer()
    tiny_model(len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, verifier):
    """A distillation run's directory: three kept examples, one of them repaired."""
    out = tmp_path_factory.mktemp("distilled")
    with TeacherServer(TASKS, dict(zip(TASKS, KINDS, strict=True))) as server:
        config = DistillConfig(
            teacher=f"openai:teacher@{server.url}",
            tasks="bundled",
            limit=len(KINDS),
            n=1,
            repair=1,
        )
        stats = run_distill(config, str(out), verifier=verifier, progress=False)
    assert stats["kept"] == 3 and stats["kept_after_repair"] == 1
    return out


def options(data, model, out, **changes) -> SFTOptions:
    base = {"max_steps": 2, "batch_size": 1, "gradient_accumulation_steps": 1, "device": "cpu"}
    return SFTOptions(data=str(data), model=model, out=str(out), **{**base, **changes})


def test_trls_sft_trainer_takes_the_kept_set_as_it_is(distilled, base_model, tmp_path) -> None:
    import datasets
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer

    data = datasets.load_dataset("json", data_files=str(distilled / "train.jsonl"), split="train")
    trainer = trl.SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base_model),
        args=trl.SFTConfig(
            output_dir=str(tmp_path),
            max_steps=1,
            per_device_train_batch_size=1,
            report_to="none",
            use_cpu=True,
        ),
        train_dataset=data,
        processing_class=AutoTokenizer.from_pretrained(base_model),
    )
    assert trainer.train().global_step == 1


def test_examples_split_before_the_assistant_turn(distilled) -> None:
    examples = load_examples(str(distilled))
    row = examples[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert [m["role"] for m in row["completion"]] == ["assistant"]
    assert row["completion"][0]["content"].endswith("```")


def test_loss_is_on_the_assistant_turn_only(distilled, base_model) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    row = load_examples(str(distilled))[0]
    prompt = tokenizer.apply_chat_template(
        row["prompt"], tokenize=False, add_generation_prompt=True
    )
    whole = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    # TRL masks what the prompt alone renders to; it must be a prefix of the whole chat.
    assert whole.startswith(prompt) and whole[len(prompt) :].startswith(
        row["completion"][0]["content"][:40]
    )


@pytest.mark.slow
def test_the_whole_recipe_distil_sft_grpo_bench(distilled, base_model, tmp_path) -> None:
    result = run_sft(options(distilled, base_model, tmp_path / "sft"))
    assert result.steps == 2 and result.examples == 3 and result.train_loss > 0
    assert {"config.json", "model.safetensors", "tokenizer.json", "sft_log.json"} <= set(
        os.listdir(tmp_path / "sft")
    )
    grpo = [
        "train", "grpo", "--model", str(tmp_path / "sft"), "--tasks", "bundled",
        "--out", str(tmp_path / "grpo"), "--steps", "2", "--prompts-per-step", "2",
        "--group-size", "2", "--micro-batch-size", "4", "--generation-batch-size", "2",
        "--max-new-tokens", "8", "--workers", "2", "--no-tensorboard",
    ]  # fmt: skip
    assert main(grpo) == 0
    assert (tmp_path / "grpo" / "final" / "model.safetensors").is_file()
    bench = [
        "bench", "--agent", f"hf:{tmp_path / 'sft'}", "--tasks", "bundled", "--limit", "2",
        "-n", "1", "--max-new-tokens", "8", "--device", "cpu", "--workers", "2",
        "--out", str(tmp_path / "bench"), "--no-progress",
    ]  # fmt: skip
    assert main(bench) == 0
    summary = json.loads((tmp_path / "bench" / "summary.json").read_text())
    assert summary["samples"] == 2


def test_lora_is_merged_into_a_plain_model(distilled, base_model, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    run_sft(options(distilled, base_model, tmp_path, lora=True, lora_rank=4, lora_alpha=8))
    assert not (tmp_path / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_lora_without_merging_saves_the_adapter(distilled, base_model, tmp_path) -> None:
    from agents.policies.hf import HFPolicy

    run_sft(options(distilled, base_model, tmp_path, lora=True, merge=False, lora_rank=4))
    assert (tmp_path / "adapter_config.json").is_file()
    # bench's hf: agent loads the adapter over its base (transformers' PEFT integration).
    policy = HFPolicy(str(tmp_path), device="cpu")
    assert any("lora" in name for name, _ in policy.model.named_parameters())
    policy.close()


def test_a_tokenizer_without_chat_template_is_refused_for_chat_data(distilled, tmp_path) -> None:
    tokenizer = char_tokenizer()
    tokenizer.chat_template = None
    tiny_model(len(tokenizer)).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    with pytest.raises(SFTError, match=re.escape("the tokenizer has no chat template")):
        run_sft(options(distilled, str(tmp_path / "base"), tmp_path / "out"))


def test_data_of_another_shape_is_refused(tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "hello"}\n')
    with pytest.raises(SFTError, match="expected chat 'messages'"):
        load_examples(str(path))


def test_missing_data_is_refused(tmp_path) -> None:
    with pytest.raises(SFTError, match="no such file"):
        load_examples(str(tmp_path / "nothing.jsonl"))


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match=re.escape("precision: expected one of auto, bf16, fp32")):
        SFTOptions(data="d", model="m", out="o", precision="fp16")


@pytest.mark.slow
def test_sft_on_verified_demonstrations_raises_the_demo_models_pass_rate(verifier, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.grpo import demo
    from agents.grpo.trainer import GRPOTrainer

    tasks = demo.demo_tasks()
    pairs = [(task, task.canonical_solution) for task in tasks.values()]
    rows = [
        {"prompt": task.prompt, "completion": code}
        for (task, code), verdict in zip(pairs, verifier.verify_many(pairs), strict=True)
        if verdict.passed
    ]
    assert len(rows) == len(tasks)  # the demonstrations are verified before they are used
    (tmp_path / "demos.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    tokenizer = demo.demo_tokenizer(tasks)
    demo.demo_model(len(tokenizer), seed=0).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")

    def pass_rate(path) -> float:
        model = AutoModelForCausalLM.from_pretrained(path)
        trainer = GRPOTrainer(
            demo.DEMO_CONFIG,
            model,
            AutoTokenizer.from_pretrained(path),
            tasks,
            verifier,
            echo=lambda line: None,
        )
        config = demo.DEMO_CONFIG
        return trainer.evaluate(tasks, demo.EVAL_SAMPLES, temperature=config.temperature).pass_rate

    before = pass_rate(tmp_path / "base")
    run_sft(
        options(
            tmp_path / "demos.jsonl",
            str(tmp_path / "base"),
            tmp_path / "sft",
            max_steps=40,
            batch_size=6,
            learning_rate=1e-2,
            max_length=None,
        )
    )
    after = pass_rate(tmp_path / "sft")
    print(f"demo pass rate before SFT {before:.2f}, after SFT {after:.2f} (no GRPO step)")
    assert before < 0.2 and after >= before + 0.5


def test_cli_train_sft_writes_a_model_directory(distilled, base_model, tmp_path, capsys) -> None:
    args = ["train", "sft", "--data", str(distilled), "--model", base_model]
    args += ["--out", str(tmp_path), "--max-steps", "1", "--batch-size", "1", "--device", "cpu"]
    assert main(args) == 0
    assert "fine-tuned on 3 examples, 1 steps" in capsys.readouterr().out
    assert (tmp_path / "model.safetensors").is_file()


def test_cli_train_sft_reports_bad_data_as_an_error(base_model, tmp_path, capsys) -> None:
    args = ["train", "sft", "--data", str(tmp_path / "none.jsonl"), "--model", base_model]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    assert "no such file" in capsys.readouterr().err
