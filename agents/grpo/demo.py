"""A GRPO run small enough for a laptop CPU that visibly learns: ``qsandbox train grpo --demo``.

The policy is a tiny Llama built from a config (no download) over a word-level tokenizer whose
"words" are whole code lines, so an action is one line such as ``    qc.h(0)``. The tasks ask for
small two-qubit states (|1> on a qubit, |+>, |->, |11>, a Bell pair); a correct body is one or two
lines. Rewards are real: every distinct completion runs once through the `Verifier` sandbox
against the task's test, which compares the circuit's statevector with the target (up to global
phase); repeats reuse its verdict (``reuse_verdicts``: these tests are deterministic).

At initialisation the policy is close to uniform over the 14 tokens, so it passes a few percent
of the time (chance); GRPO takes it above 90% in a few dozen steps.

This module must never ship these tasks as a benchmark: they exist to show that the trainer
learns, quickly and reproducibly.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agents.grpo.config import GRPOConfig
from qsandbox_env.tasks import Task, TaskSet

__all__ = ["DEMO_CONFIG", "DemoResult", "demo_model", "demo_tasks", "demo_tokenizer", "run_demo"]

EOS = "<eos>"
HEADER = "def build(qc):\n"
ACTIONS = (
    "    qc.x(0)\n",
    "    qc.x(1)\n",
    "    qc.h(0)\n",
    "    qc.h(1)\n",
    "    qc.z(0)\n",
    "    qc.cx(0, 1)\n",
)
# name -> (what the docstring asks for, target label in Qiskit's order "q1 q0", a solution).
# The Bell task's prompt already applies H to qubit 0 (`PROMPT_BODIES`): its completion is the
# entangling line. With both lines to find, a random policy hits it once in ~200 samples, and
# in about half of the seeds tried GRPO never saw it before the other tasks shaped the policy.
TARGETS = {
    "one": ("|1> on qubit 0", "01", "    qc.x(0)\n"),
    "plus": ("|+> on qubit 0", "0+", "    qc.h(0)\n"),
    "one_q1": ("|1> on qubit 1", "10", "    qc.x(1)\n"),
    "minus": ("|-> on qubit 0", "0-", "    qc.x(0)\n    qc.h(0)\n"),
    "both": ("|11>", "11", "    qc.x(0)\n    qc.x(1)\n"),
    "bell": ("the Bell pair (|00> + |11>)/sqrt(2)", "00", "    qc.cx(0, 1)\n"),
}
PROMPT_BODIES = {"bell": "    qc.h(0)\n"}
_TEST = """from qiskit import QuantumCircuit
from qiskit.quantum_info import Statevector


def check(candidate):
    qc = QuantumCircuit(2)
    candidate(qc)
    assert Statevector(qc).equiv({target}), "wrong state"
"""

DEMO_CONFIG = GRPOConfig(
    steps=80,
    prompts_per_step=6,
    group_size=32,
    iterations=2,
    micro_batch_size=96,
    learning_rate=3e-3,
    lr_schedule="linear",
    epsilon_low=0.2,
    epsilon_high=0.28,
    loss_type="dapo",
    max_new_tokens=3,
    generation_batch_size=6,
    use_chat_template=False,
    reuse_verdicts=True,
    tensorboard=False,
)
EVAL_SAMPLES = 32  # sampled completions per task for the initial and final pass rate


def demo_tasks() -> TaskSet:
    """The six demo tasks, in completion format (the body continues ``def build(qc):``).

    Example:
        >>> tasks = demo_tasks()
        >>> len(tasks), tasks["demo/both"].canonical_solution
        (6, '    qc.x(0)\\n    qc.x(1)\\n')
    """
    tasks = []
    for name, (wanted, label, solution) in TARGETS.items():
        target = _bell_target() if name == "bell" else f'Statevector.from_label("{label}")'
        tasks.append(
            Task(
                f"demo/{name}",
                HEADER
                + f'    """Prepare {wanted} on the 2-qubit circuit qc."""\n'
                + PROMPT_BODIES.get(name, ""),
                _TEST.format(target=target),
                "build",
                canonical_solution=solution,
                difficulty="demo",
                timeout=30.0,
            )
        )
    return TaskSet(tasks, source="grpo-demo")


def _bell_target() -> str:
    return "Statevector([2 ** -0.5, 0, 0, 2 ** -0.5])"


def demo_tokenizer(tasks: TaskSet | None = None) -> Any:
    """A word-level tokenizer whose words are whole lines: EOS, the prompt lines, the actions.

    Example:
        >>> tokenizer = demo_tokenizer()
        >>> tokenizer.decode(tokenizer("    qc.h(0)\\n    qc.cx(0, 1)\\n")["input_ids"])
        '    qc.h(0)\\n    qc.cx(0, 1)\\n'
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    prompt_lines = [
        line
        for task in (tasks or demo_tasks()).values()
        for line in task.prompt.splitlines(keepends=True)
    ]
    words = list(dict.fromkeys([EOS, *prompt_lines, *ACTIONS]))
    core = Tokenizer(models.WordLevel({word: i for i, word in enumerate(words)}, unk_token=EOS))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[^\n]*\n|[^\n]+"), behavior="isolated")
    core.decoder = decoders.Fuse()  # lines carry their own indentation and newline
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=EOS)


def demo_model(vocab_size: int, seed: int = 0, max_positions: int = 16) -> Any:
    """A 2-layer Llama with 32-wide hidden states, initialised from ``seed`` (no download);
    ``max_positions`` tokens of prompt and completion at most.

    Llama rather than GPT-2: without learned absolute position embeddings, the last prompt
    position's state is dominated by its own token (the task's docstring), so the policy can
    tell the tasks apart from the first step.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,  # the trainer passes the pad id; padding is always masked
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


@dataclass
class DemoResult:
    """What a demo run measured."""

    initial_pass_rate: float
    final_pass_rate: float
    pass_rates: list[float] = field(default_factory=list)  # training batch pass rate per step
    seconds: float = 0.0
    generation_s: float = 0.0
    verification_s: float = 0.0
    generated_tokens: int = 0
    completions: int = 0
    sandbox_runs: int = 0  # distinct programs run in the sandbox during training
    peak_rss_mib: float = 0.0
    cpu_s: float = 0.0  # CPU time of this process (the sandboxes' is not included)


def run_demo(
    config: GRPOConfig = DEMO_CONFIG,
    *,
    out_dir: str | None = None,
    workers: int = 2,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Train the tiny model on the demo tasks with real sandbox rewards; report pass rates.

    Args:
        config: The hyper-parameters; its seed also seeds the model's initialisation.
        out_dir: Where metrics and checkpoints go; None writes nothing.
        workers: Verifier sandboxes running programs at once.
        echo: Where progress lines go.

    Returns:
        The initial and final pass rates (sampled completions, ``EVAL_SAMPLES`` per task, at
        the training temperature) and the run's timings.
    """
    from agents.grpo.trainer import GRPOTrainer
    from qsandbox_env.verifier import Verifier

    started, cpu_started = time.perf_counter(), time.process_time()
    tasks = demo_tasks()
    tokenizer = demo_tokenizer(tasks)
    model = demo_model(len(tokenizer), config.seed)
    with Verifier(workers=workers, preload=("qiskit", "qiskit.quantum_info")) as verifier:
        counting = _CountingVerifier(verifier)
        trainer = GRPOTrainer(config, model, tokenizer, tasks, counting, out_dir=out_dir, echo=echo)
        initial = trainer.evaluate(tasks, EVAL_SAMPLES, temperature=config.temperature)
        echo(f"initial pass rate: {initial.pass_rate:.2f}  (outcomes {initial.outcomes})")
        result = DemoResult(initial.pass_rate, 0.0)
        counting.runs = 0  # count the training steps' programs only
        trainer.train(on_step=lambda metrics: _accumulate(result, metrics, config.batch_size))
        result.sandbox_runs = counting.runs
        final = trainer.evaluate(tasks, EVAL_SAMPLES, temperature=config.temperature)
    result.final_pass_rate = final.pass_rate
    result.seconds = time.perf_counter() - started
    result.cpu_s = time.process_time() - cpu_started
    result.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    echo(f"final outcomes: {final.outcomes}")
    echo(_summary(result, config))
    echo(f"final pass rate: {final.pass_rate:.2f}")
    return result


def _accumulate(result: DemoResult, metrics: dict[str, Any], batch_size: int) -> None:
    result.pass_rates.append(float(metrics["train/pass_rate"]))
    result.generation_s += float(metrics["time/generation_s"])
    result.verification_s += float(metrics["time/verification_s"])
    result.generated_tokens += round(float(metrics["train/completion_length"]) * batch_size)
    result.completions += batch_size


class _CountingVerifier:
    """Counts the programs that really ran in the sandbox (the trainer reuses repeated ones)."""

    def __init__(self, verifier: Any) -> None:
        self.verifier = verifier
        self.runs = 0

    def verify_many(self, pairs: Any) -> list[Any]:
        pairs = list(pairs)
        self.runs += len(pairs)
        return self.verifier.verify_many(pairs)


def _summary(result: DemoResult, config: GRPOConfig) -> str:
    steps = max(len(result.pass_rates), 1)
    return (
        f"{steps} steps in {result.seconds:.1f} s, {result.cpu_s:.1f} s CPU in this process "
        "(start-up and evaluations included); "
        f"per step: generation {result.generation_s / steps:.3f} s, verification "
        f"{result.verification_s / steps:.3f} s; {result.completions} completions, "
        f"{result.generated_tokens / max(result.generation_s, 1e-9):.0f} generated tokens/s, "
        f"{result.sandbox_runs} sandbox runs "
        f"({result.sandbox_runs / max(result.verification_s, 1e-9):.0f} programs verified/s); "
        f"peak RSS {result.peak_rss_mib:.0f} MiB"
    )
