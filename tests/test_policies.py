"""Policies: oracle, stale-api, hf (a tiny model built here), openai (a real localhost server)."""

from __future__ import annotations

import ast
import json
import pickle
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agents.policies.openai_api import OpenAIPolicy
from agents.policies.stale_api import RULES, stale_rewrite
from agents.policy import (
    POLICIES,
    PolicyError,
    Query,
    SamplingParams,
    make_policy,
    policy_builder,
    query_for,
)
from qsandbox_env import load_tasks
from qsandbox_env.extract import extract_code

BUNDLED = load_tasks("bundled")


def queries(count: int | None = None) -> list[Query]:
    return [query_for(task) for task in list(BUNDLED.values())[:count]]


# -- a real OpenAI-compatible HTTP server on localhost ---------------------------------------


class ChatServer:
    """``POST /v1/chat/completions`` on 127.0.0.1, answering with ``answer(body, index)``.

    ``faults`` are consumed one per request before normal answers: ``("status", code, headers)``
    or ``("sleep", seconds)`` (answer late). Every request body is kept in ``requests``.
    """

    def __init__(self, answer: Callable[[dict, int], str], delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay
        self.faults: list[tuple] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with chat.lock:
                    chat.requests.append(body)
                    chat.headers.append(dict(self.headers))
                    chat.times.append(time.monotonic())
                    fault = chat.faults.pop(0) if chat.faults else None
                if self.path != "/v1/chat/completions" or body["model"] != "tiny-coder":
                    return self._send(404, {"error": {"message": "The model does not exist"}})
                if fault and fault[0] == "status":
                    return self._send(fault[1], {"error": {"message": "slow down"}}, fault[2])
                if fault and fault[0] == "sleep":
                    time.sleep(fault[1])
                time.sleep(chat.delay)
                choices = [
                    {"index": i, "message": {"role": "assistant", "content": chat.answer(body, i)}}
                    for i in range(body.get("n", 1))
                ]
                self._send(200, {"choices": choices})

            def _send(self, status: int, data: dict, headers: dict | None = None) -> None:
                payload = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler


def canonical_answer(body: dict, index: int) -> str:
    """The canonical solution of the bundled task whose prompt is in the user message."""
    user = body["messages"][-1]["content"]
    task = next(task for task in BUNDLED.values() if task.prompt in user)
    return f"```python\n{task.prompt}{task.canonical_solution}```"


@pytest.fixture
def server():
    chat = ChatServer(lambda body, index: f"answer {index}")
    yield chat
    chat.close()


def openai(server: ChatServer, **options: Any) -> OpenAIPolicy:
    return make_policy(f"openai:tiny-coder@{server.base_url}", **options)  # type: ignore[return-value]


# -- oracle -------------------------------------------------------------------------------------


def test_oracle_answers_n_copies_of_each_canonical_solution():
    answers = make_policy("oracle").generate(queries(3), n=2)
    assert answers == [[task.canonical_solution] * 2 for task in list(BUNDLED.values())[:3]]


def test_oracle_rejects_options():
    with pytest.raises(ValueError, match=r"^agent 'oracle' takes no options, got device$"):
        make_policy("oracle", device="cpu")


def test_policies_reject_a_non_positive_n():
    with pytest.raises(ValueError, match=r"^n: expected a positive int, got 0$"):
        make_policy("oracle").generate(queries(1), n=0)


def test_query_for_uses_the_environment_messages():
    from qsandbox_env.env import QiskitCodeEnv

    task = next(iter(BUNDLED.values()))
    env = QiskitCodeEnv(BUNDLED)
    _, info = env.reset(options={"task_id": task.task_id})
    assert list(query_for(task).messages) == info["messages"]


def test_unknown_agent_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown agent 'gpt'; expected one of: .*oracle"):
        make_policy("gpt")


# -- stale-api ----------------------------------------------------------------------------------


def test_stale_answers_parse_and_differ_from_the_canonical_solution():
    for query, (answer,) in zip(
        queries(), make_policy("stale-api").generate(queries()), strict=True
    ):
        code = extract_code(answer, query.task)
        ast.parse(code)
        assert code != query.task.prompt + query.task.canonical_solution


def test_every_stale_answer_uses_a_removed_api():
    for task in BUNDLED.values():
        _, names = stale_rewrite(task)
        removed = {rule.name for rule in RULES if rule.removed} | {"legacy-import"}
        assert removed & set(names), task.task_id


def test_stale_rewrites_teleportation_with_c_if():
    code, names = stale_rewrite(BUNDLED["qsandbox/teleport_circuit"])
    assert "c-if" in names
    assert "qc.x(2).c_if(cr[1], 1)" in code and "with qc.if_test" not in code


def test_stale_falls_back_to_a_legacy_import_when_no_rule_matches():
    code, names = stale_rewrite(BUNDLED["qsandbox/werner_state"])
    assert names == ["legacy-import"]
    assert code.splitlines()[0].startswith(("from qiskit", "import qiskit"))


def test_stale_transpile_rule_drops_the_backend():
    from qsandbox_env import Task

    task = Task(
        "t/0",
        "from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager\n"
        "def f(qc, backend):\n",
        "def check(c):\n    pass\n",
        "f",
        canonical_solution=(
            "    pm = generate_preset_pass_manager(optimization_level=2, backend=backend)\n"
            "    return pm.run(qc)\n"
        ),
    )
    code, names = stale_rewrite(task)
    assert "transpile-without-target" in names and "legacy-import" in names
    assert "return transpile(qc, optimization_level=2)" in code


# -- openai: a real HTTP server on localhost ------------------------------------------------


def test_openai_sends_chat_messages_and_sampling_and_returns_n_choices(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    params = SamplingParams(temperature=0.5, top_p=0.9, max_new_tokens=64, seed=7, stop=("END",))
    with openai(server) as policy:
        answers = policy.generate(queries(2), n=3, params=params)
    assert answers == [["answer 0", "answer 1", "answer 2"]] * 2
    # Requests run concurrently: find the first query's.
    body = next(b for b in server.requests if b["messages"] == list(queries(1)[0].messages))
    assert (body["n"], body["temperature"], body["top_p"]) == (3, 0.5, 0.9)
    assert (body["max_tokens"], body["seed"], body["stop"]) == (64, 7, ["END"])
    assert server.headers[0]["Authorization"] == "Bearer sk-test"


def test_openai_cuts_text_at_stop_strings(server):
    server.answer = lambda body, index: "x = 1\n```\nprose"
    with openai(server) as policy:
        assert policy.generate(queries(1), params=SamplingParams(stop=("```",))) == [["x = 1\n"]]


def test_openai_asks_again_when_the_server_returns_fewer_choices(server):
    server.answer = lambda body, index: f"n={body['n']}"
    real_handler = server.server.RequestHandlerClass

    class OneChoice(real_handler):  # type: ignore[misc, valid-type]
        def _send(self, status, data, headers=None):
            data["choices"] = data.get("choices", [])[:1]
            super()._send(status, data, headers)

    server.server.RequestHandlerClass = OneChoice
    with openai(server) as policy:
        assert policy.generate(queries(1), n=3) == [["n=3", "n=2", "n=1"]]


def test_openai_retries_429_after_the_retry_after_delay(server):
    server.faults = [("status", 429, {"Retry-After": "1"})]
    with openai(server, backoff=0.01) as policy:
        assert policy.generate(queries(1)) == [["answer 0"]]
    assert len(server.requests) == 2
    assert server.times[1] - server.times[0] >= 0.95


def test_openai_retries_5xx_with_backoff_and_gives_up_after_max_retries(server):
    server.faults = [("status", 503, {})] * 3
    with openai(server, backoff=0.01, max_retries=2) as policy, pytest.raises(PolicyError) as info:
        policy.generate(queries(1))
    assert str(info.value).endswith("HTTP 503 slow down after 3 attempts; giving up")
    assert len(server.requests) == 3


def test_openai_retries_a_timed_out_request(server):
    server.faults = [("sleep", 1.5)]
    with openai(server, timeout=0.5, backoff=0.01) as policy:
        assert policy.generate(queries(1)) == [["answer 0"]]
    assert len(server.requests) == 2


def test_openai_timeout_error_says_how_long_it_waited(server):
    server.faults = [("sleep", 1.5)]
    with openai(server, timeout=0.5, max_retries=0) as policy, pytest.raises(PolicyError) as info:
        policy.generate(queries(1))
    assert str(info.value) == (
        f"{server.base_url}/chat/completions: no response within 0.5 s after 1 attempts; giving up"
    )


def test_openai_401_names_the_key_variable(server, monkeypatch):
    monkeypatch.delenv("MY_KEY", raising=False)
    server.faults = [("status", 401, {})]
    with openai(server, api_key_env="MY_KEY") as policy, pytest.raises(PolicyError) as info:
        policy.generate(queries(1))
    assert "HTTP 401: the server rejected the API key" in str(info.value)
    assert "environment variable MY_KEY, which is not set" in str(info.value)


def test_openai_404_names_the_model_and_url(server):
    policy = make_policy(f"openai:other-model@{server.base_url}")
    with policy, pytest.raises(PolicyError) as info:
        policy.generate(queries(1))
    assert str(info.value).startswith(
        f"{server.base_url}/chat/completions: HTTP 404: model 'other-model' not found at "
        f"{server.base_url}"
    )


def test_openai_connection_refused_names_the_url(server):
    url = server.base_url
    server.close()
    with make_policy(f"openai:tiny-coder@{url}") as policy, pytest.raises(PolicyError) as info:
        policy.generate(queries(1))
    assert str(info.value) == f"cannot connect to {url}: connection refused; is the server running?"


# -- hf: a tiny model and tokenizer built in the test --------------------------------------

CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Two saved tiny models (Llama with a chat template, GPT-2 without) and their paths."""
    pytest.importorskip("torch")
    kinds = ("chat", "plain")
    return {kind: build_tiny_model(tmp_path_factory.mktemp(kind), kind) for kind in kinds}


def build_tiny_model(path, kind: str) -> str:
    """Save a tiny random causal LM and a BPE tokenizer trained on the bundled tasks to ``path``:
    ``kind="chat"`` is a Llama with a chat template, ``"plain"`` a GPT-2 without one."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    corpus = [task.prompt + task.canonical_solution for task in BUNDLED.values()]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<|end|>")
    torch.manual_seed(0)
    end = tokenizer.eos_token_id
    if kind == "chat":
        tokenizer.chat_template = CHAT_TEMPLATE
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
            max_position_embeddings=2048, bos_token_id=end, eos_token_id=end,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    else:
        config = GPT2Config(
            vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=2048,
            bos_token_id=end, eos_token_id=end,
        )  # fmt: skip
        model = GPT2LMHeadModel(config)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def chat_model(tiny_models):
    with make_policy(f"hf:{tiny_models['chat']}", device="cpu") as policy:
        yield policy


SHORT = SamplingParams(max_new_tokens=12, seed=3)


@pytest.mark.torch
def test_hf_renders_chat_messages_through_the_template(chat_model):
    query = queries(1)[0]
    text = chat_model.render(query)
    assert text.startswith("<system>" + query.messages[0]["content"])
    assert text.endswith(f"{query.messages[1]['content']}\n<assistant>")


@pytest.mark.torch
def test_hf_without_a_template_continues_the_plain_prompt(tiny_models):
    with make_policy(f"hf:{tiny_models['plain']}") as policy:
        assert not policy.chat
        assert policy.render(queries(1)[0]) == queries(1)[0].prompt
        answers = policy.generate(queries(3), n=2, params=SHORT)
    assert [len(row) for row in answers] == [2, 2, 2]


@pytest.mark.torch
def test_hf_batches_with_left_padding_and_returns_n_samples_per_query(chat_model):
    answers = chat_model.generate(queries(3), n=2, params=SHORT)
    assert chat_model.tokenizer.padding_side == "left"
    assert [len(row) for row in answers] == [2, 2, 2]
    assert all(isinstance(text, str) for row in answers for text in row)


@pytest.mark.torch
def test_hf_same_seed_gives_the_same_samples_and_batching_does_not_change_greedy(chat_model):
    assert chat_model.generate(queries(2), 2, SHORT) == chat_model.generate(queries(2), 2, SHORT)
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    together = chat_model.generate(queries(3), 2, greedy)
    alone = [chat_model.generate([query], 2, greedy)[0] for query in queries(3)]
    assert together == alone
    assert all(row[0] == row[1] for row in together)


@pytest.mark.torch
def test_hf_stops_at_a_stop_string(chat_model):
    greedy = SamplingParams(temperature=0, max_new_tokens=40)
    [[full]] = chat_model.generate(queries(1), 1, greedy)
    # An ASCII character is a whole byte-level token, never part of a multi-byte sequence.
    stop = next(c for c in full[1:] if c.isascii() and c.isprintable() and not c.isspace())
    stopped = SamplingParams(temperature=0, max_new_tokens=40, stop=(stop,))
    assert chat_model.generate(queries(1), 1, stopped) == [[full[: full.index(stop)]]]


@pytest.mark.torch
def test_hf_chooses_cpu_and_float32_without_a_gpu(chat_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from agents.policies.hf import choose_device, choose_dtype

    assert (choose_device(torch), choose_dtype(torch, "cpu")) == ("cpu", torch.float32)
    assert choose_dtype(torch, "cpu", "bfloat16") is torch.bfloat16


def test_hf_rejects_an_unknown_dtype():
    torch = pytest.importorskip("torch")
    from agents.policies.hf import choose_dtype

    with pytest.raises(ValueError, match=r"^dtype: expected one of bfloat16, float16, float32, "):
        choose_dtype(torch, "cpu", "int3")


@pytest.mark.parametrize("written", ["./no-such-model", "../no-such-model", "{tmp}/absent"])
def test_hf_a_path_that_does_not_exist_is_named_as_a_missing_directory(tmp_path, written):
    # Not transformers' "Repo id must use alphanumeric chars": the spec was a path.
    spec = written.format(tmp=tmp_path)
    with pytest.raises(PolicyError, match=r"^hf agent: no model directory at ") as info:
        make_policy(f"hf:{spec}")
    assert "does not exist" in str(info.value) and "save_pretrained" in str(info.value)


def test_hf_a_directory_that_holds_no_model_is_refused_before_loading(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(PolicyError, match=r"without config\.json"):
        make_policy(f"hf:{tmp_path}")


@pytest.mark.torch
def test_hf_a_directory_that_cannot_be_loaded_is_a_policy_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PolicyError, match=r"^hf agent: cannot load "):
        make_policy(f"hf:{tmp_path}")


def test_openai_without_a_server_or_a_key_is_refused_at_once(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    started = time.monotonic()
    with pytest.raises(PolicyError) as info:
        make_policy("openai:foo")
    assert time.monotonic() - started < 1.0
    message = str(info.value)
    assert "https://api.openai.com/v1" in message and "$OPENAI_API_KEY is not set" in message
    assert "openai:foo@http://localhost:8000/v1" in message


def test_openai_without_a_server_says_which_it_uses(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with make_policy("openai:foo") as policy:
        assert policy.base_url == "https://api.openai.com/v1"
    assert "using https://api.openai.com/v1" in capsys.readouterr().err
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with make_policy("openai:foo") as policy:
        assert policy.base_url == "http://127.0.0.1:9/v1"


def test_a_policy_builder_travels_by_pickle_to_a_process_whose_registry_lacks_its_prefix(
    monkeypatch,
):
    monkeypatch.setitem(POLICIES, "mine:", "agents.policies.openai_api:make")
    wire = pickle.dumps(policy_builder("mine:tiny@http://127.0.0.1:9/v1", timeout=5))
    monkeypatch.delitem(POLICIES, "mine:")  # as in a Ray worker that never registered it
    with pytest.raises(ValueError, match="unknown agent 'mine:tiny@"):
        make_policy("mine:tiny@http://127.0.0.1:9/v1")
    policy = pickle.loads(wire)()
    assert isinstance(policy, OpenAIPolicy)
    assert (policy.model, policy.timeout) == ("tiny", 5.0)


def test_api_and_rule_based_agents_are_replicable_and_a_local_model_is_not():
    from agents.policies.hf import HFPolicy

    replicable = {spec: make_policy(spec).replicable for spec in ("oracle", "stale-api")}
    replicable["openai"] = make_policy("openai:m@http://127.0.0.1:9/v1").replicable
    assert replicable == {"oracle": True, "stale-api": True, "openai": True}
    assert HFPolicy.replicable is False  # a model is loaded once, on the driver
