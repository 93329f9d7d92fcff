"""GRPO with generation on an OpenAI-compatible server that loads the trained LoRA adapter.

The server is real HTTP on localhost: a small stand-in for vLLM (``/v1/models``,
``/v1/completions``, ``/v1/load_lora_adapter``, ``/v1/unload_lora_adapter``) that loads the tiny
demo base model saved to disk and each adapter from the ``lora_path`` it is sent, with peft, and
samples from base + adapter. Rewards come from the real Verifier.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from agents.grpo import demo
from agents.grpo.config import GRPOConfig
from agents.grpo.served import LORA_REQUIRED, ServedGenerator
from agents.grpo.trainer import GRPOTrainer, HFGenerator
from agents.policy import PolicyError
from qsandbox_env.tasks import Task, TaskSet

pytestmark = pytest.mark.torch

BASE_NAME = "tiny-llama"
CONFIG = GRPOConfig(
    steps=2,
    prompts_per_step=2,
    group_size=8,
    micro_batch_size=16,
    learning_rate=3e-2,
    max_new_tokens=3,
    use_chat_template=False,
    lora=True,
    lora_target_modules=("q_proj", "v_proj"),
    tensorboard=False,
)
# Random completions pass these about half the time: groups have reward spread, so every step
# moves the adapter.
SPREAD_TESTS = {
    "any_gate": "assert len(qc.data) > 0",
    "no_cx": "assert all(item.operation.name != 'cx' for item in qc.data)",
}


def spread_tasks() -> TaskSet:
    test = "def check(candidate):\n    qc = QuantumCircuit(2)\n    candidate(qc)\n    {}\n"
    return TaskSet(
        Task(
            f"served/{name}",
            demo.HEADER + f'    """{name}"""\n',
            "from qiskit import QuantumCircuit\n\n\n" + test.format(assertion),
            "build",
        )
        for name, assertion in SPREAD_TESTS.items()
    )


class TinyLoRAServer:
    """A vLLM stand-in: serves the base model saved at ``base_dir`` and runtime-loaded adapters.

    ``requests`` records every call as ``(route, body)``; ``runtime_lora=False`` answers the
    adapter routes with 404, as vLLM does without ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``.
    """

    def __init__(self, base_dir: str, tokenizer, *, runtime_lora: bool = True) -> None:
        self.base_dir, self.tokenizer, self.runtime_lora = base_dir, tokenizer, runtime_lora
        self.adapters: dict[str, PeftModel] = {}
        self.requests: list[tuple[str, dict]] = []
        self.httpd = HTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> TinyLoRAServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def routes(self, route: str) -> list[dict]:
        return [body for name, body in self.requests if name == route]

    def answer(self, method: str, route: str, body: dict) -> tuple[int, object]:
        self.requests.append((route, body))
        if method == "GET" and route == "models":
            names = [BASE_NAME, *self.adapters]
            return 200, {"data": [{"id": name} for name in names]}
        if route in ("load_lora_adapter", "unload_lora_adapter") and not self.runtime_lora:
            return 404, {"detail": "Not Found"}
        if route == "load_lora_adapter":
            base = AutoModelForCausalLM.from_pretrained(self.base_dir)
            self.adapters[body["lora_name"]] = PeftModel.from_pretrained(base, body["lora_path"])
            return 200, f"Success: LoRA adapter '{body['lora_name']}' added successfully."
        if route == "unload_lora_adapter":
            del self.adapters[body["lora_name"]]
            return 200, f"Success: LoRA adapter '{body['lora_name']}' removed successfully."
        if route == "completions":
            return 200, self.complete(body)
        return 404, {"detail": "Not Found"}

    def complete(self, body: dict) -> dict:
        model = self.adapters[body["model"]].eval()
        prompt = torch.tensor([body["prompt"]])
        sampling = (
            {"do_sample": True, "temperature": body["temperature"], "top_p": body["top_p"]}
            if body["temperature"] > 0
            else {"do_sample": False}
        )
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(body["seed"])
            output = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=body["max_tokens"],
                num_return_sequences=body["n"],
                pad_token_id=self.tokenizer.eos_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **sampling,
            )
        choices = []
        for index, row in enumerate(output[:, prompt.shape[1] :].tolist()):
            eos = self.tokenizer.eos_token_id
            stopped = eos in row
            tokens = row[: row.index(eos)] if stopped else row
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            reason = "stop" if stopped else "length"
            choices.append({"index": index, "text": text, "finish_reason": reason})
        return {"model": body["model"], "choices": choices}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply(*server.answer("GET", self._route(), {}))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                self._reply(*server.answer("POST", self._route(), body))

            def _route(self) -> str:
                return self.path.removeprefix("/v1/")

            def _reply(self, status: int, payload: object) -> None:
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

        return Handler


@pytest.fixture
def base(tmp_path):
    """The tiny demo base model and its tokenizer, saved where the server loads them from."""
    tokenizer = demo.demo_tokenizer(spread_tasks())
    model = demo.demo_model(len(tokenizer), CONFIG.seed)
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    return str(tmp_path / "base"), tokenizer


def served_trainer(base, verifier, server, tmp_path, config=CONFIG, model_name=BASE_NAME):
    base_dir, tokenizer = base
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    generator = ServedGenerator(model_name, server.url, config, str(tmp_path / "adapters"))
    trainer = GRPOTrainer(
        config,
        model,
        tokenizer,
        spread_tasks(),
        verifier,
        echo=lambda line: None,
        generator=generator,
    )
    return trainer, generator


def test_each_step_loads_its_adapter_and_unloads_the_previous_one(base, verifier, tmp_path) -> None:
    with TinyLoRAServer(base[0], base[1]) as server:
        trainer, generator = served_trainer(base, verifier, server, tmp_path)
        metrics = trainer.train()
        generator.close()
    adapters = tmp_path / "adapters"
    assert server.routes("load_lora_adapter") == [
        {"lora_name": "qsandbox-step-0", "lora_path": str(adapters / "step-0")},
        {"lora_name": "qsandbox-step-1", "lora_path": str(adapters / "step-1")},
    ]
    assert server.routes("unload_lora_adapter") == [{"lora_name": "qsandbox-step-0"}]
    assert sorted(path.name for path in adapters.iterdir()) == ["step-1"]  # unloaded: deleted
    sampled = [body["model"] for body in server.routes("completions")]
    assert sampled == ["qsandbox-step-0"] * 2 + ["qsandbox-step-1"] * 2  # one request a prompt
    assert all(body["n"] == CONFIG.group_size for body in server.routes("completions"))
    assert trainer.step == 2 and 0.0 <= metrics["train/pass_rate"] <= 1.0


def test_served_completions_come_from_the_trained_adapter(base, verifier, tmp_path) -> None:
    with TinyLoRAServer(base[0], base[1]) as server:
        trainer, generator = served_trainer(base, verifier, server, tmp_path)
        trainer.train()
        prompts = [trainer.tokenizer(task.prompt)["input_ids"] for task in trainer.tasks]
        served = generator.sample(trainer, prompts, 1, 0.0)  # greedy, after the last update
        assert list(server.adapters) == ["qsandbox-step-2"]
        served_model = server.adapters["qsandbox-step-2"]
        generator.close()
    trainer.model.eval()
    local = HFGenerator().sample(trainer, prompts, 1, 0.0)
    assert [trainer._cut_at_eos(ids)[0] for ids in served] == [
        trainer._cut_at_eos(ids)[0] for ids in local
    ]
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        served_logits = served_model(input_ids=ids).logits
        local_logits = trainer.model(input_ids=ids).logits
        with trainer.model.disable_adapter():
            base_logits = trainer.model(input_ids=ids).logits
    assert torch.allclose(served_logits, local_logits, atol=1e-5)
    # training moved the policy, so the server is not merely serving the base model
    assert not torch.allclose(served_logits, base_logits, atol=1e-3)


class SlowServedGenerator(ServedGenerator):
    """The served generator, each chunk held ``0.5`` s longer; ``events`` records the order of
    chunk ends and verification starts."""

    def __init__(self, events: list[str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events = events

    def sample(self, trainer, prompts, n, temperature):
        samples = super().sample(trainer, prompts, n, temperature)
        time.sleep(0.5)
        self.events.append("chunk generated")
        return samples


class EventVerifier:
    def __init__(self, verifier, events: list[str]) -> None:
        self.verifier, self.events = verifier, events

    def verify_many(self, pairs):
        self.events.append("verification started")
        return self.verifier.verify_many(pairs)


def test_served_chunks_are_verified_while_the_next_one_generates(base, verifier, tmp_path) -> None:
    config = dataclasses.replace(CONFIG, steps=1, generation_batch_size=1)  # two chunks
    events: list[str] = []
    base_dir, tokenizer = base
    with TinyLoRAServer(base_dir, tokenizer) as server:
        generator = SlowServedGenerator(
            events, BASE_NAME, server.url, config, str(tmp_path / "adapters")
        )
        model = AutoModelForCausalLM.from_pretrained(base_dir)
        trainer = GRPOTrainer(
            config,
            model,
            tokenizer,
            spread_tasks(),
            EventVerifier(verifier, events),
            echo=lambda line: None,
            generator=generator,
        )
        trainer.train()
        generator.close()
    assert events == [
        "chunk generated",
        "verification started",
        "chunk generated",
        "verification started",
    ]


def test_a_404_on_load_says_how_to_start_vllm(base, verifier, tmp_path) -> None:
    with TinyLoRAServer(base[0], base[1], runtime_lora=False) as server:
        trainer, generator = served_trainer(base, verifier, server, tmp_path)
        message = (
            f"{server.url}/load_lora_adapter: HTTP 404: the server cannot load LoRA adapters at "
            "runtime; start vLLM with --enable-lora and the environment variable "
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
        )
        with pytest.raises(PolicyError, match=re.escape(message)):
            trainer.train()
        generator.close()
    assert trainer.step == 0


def test_a_server_without_the_base_model_is_refused(base, verifier, tmp_path) -> None:
    with TinyLoRAServer(base[0], base[1]) as server:
        trainer, generator = served_trainer(base, verifier, server, tmp_path, model_name="other")
        message = (
            f"{server.url}: expected the server to serve the base model 'other' (the model being "
            "trained), got ['tiny-llama']"
        )
        with pytest.raises(PolicyError, match=re.escape(message)):
            trainer.train()
        generator.close()
    assert server.routes("load_lora_adapter") == []


def test_an_unreachable_server_is_named(base, verifier, tmp_path) -> None:
    with TinyLoRAServer(base[0], base[1]) as server:
        url = server.url  # a port that was just free, and is closed again below
    generator = ServedGenerator(BASE_NAME, url, CONFIG, str(tmp_path / "adapters"))
    with pytest.raises(PolicyError, match=re.escape(f"cannot connect to {url}: ")) as error:
        generator.check_server()
    assert "is the vLLM server running?" in str(error.value)


def test_full_fine_tuning_is_refused_with_the_reason() -> None:
    config = dataclasses.replace(CONFIG, lora=False)
    with pytest.raises(ValueError, match=re.escape(LORA_REQUIRED)):
        ServedGenerator(BASE_NAME, "http://127.0.0.1:8000/v1", config, "adapters")


def test_cli_trains_with_the_served_generator(base, tmp_path, capsys) -> None:
    from qsandbox_env.cli import main

    keys = ("task_id", "prompt", "test", "entry_point")
    lines = [
        json.dumps({key: getattr(task, key) for key in keys}) for task in spread_tasks().values()
    ]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with TinyLoRAServer(base[0], base[1]) as server:
        code = main(
            [
                *("train", "grpo", "--model", base[0], "--tasks", str(tmp_path / "tasks.jsonl")),
                *("--out", str(tmp_path / "run"), "--lora", "--lora-target-modules", "q_proj"),
                *("--generator", f"openai:{BASE_NAME}@{server.url}"),
                *("--served-adapter-dir", str(tmp_path / "shared")),
                *("--steps", "1", "--prompts-per-step", "2", "--group-size", "4"),
                *("--micro-batch-size", "8", "--max-new-tokens", "3", "--workers", "1"),
                "--no-tensorboard",
            ]
        )
    assert code == 0, capsys.readouterr().err
    assert [body["lora_path"] for body in server.routes("load_lora_adapter")] == [
        str(tmp_path / "shared" / "step-0")
    ]
    assert (tmp_path / "run" / "final" / "adapter_model.safetensors").is_file()
