"""Train with TRL's ``GRPOTrainer`` on the Verifier's reward.

Three pieces, each a thin layer over the project's one execution path, the `Verifier`:

- `VerifierReward`: a reward function following TRL's contract
  ``f(prompts, completions, **columns) -> list[float]``. It is ``async`` (TRL runs async reward
  functions on its own event loop, concurrently with any others), reads the ``task_id`` column,
  accepts plain-text and conversational completions (lists of chat messages), and scores the
  whole batch in parallel with one shared `Verifier` (`Verifier.verify_many`).
- `make_dataset`: a ``datasets.Dataset`` with the ``prompt`` (chat messages or text) and
  ``task_id`` columns the trainer and the reward need, from any task source, with the prompts the
  Gymnasium environment shows (`qsandbox_env.prompts.task_messages`).
- `QiskitToolEnvironment`: an environment for ``GRPOTrainer(environment_factory=...)``: reset
  from the dataset row, a ``run_tests`` tool the model may call, and ``get_reward`` from the last
  verdict.

Importing this module needs neither TRL nor ``datasets``; `make_dataset` imports ``datasets``
when called and, when it is missing, raises an ImportError with the install command.

What this module must never do: run a completion itself (every program goes through the
`Verifier` and its sandbox), or turn an unknown task id into a reward of 0: that is a mismatch
between dataset and task source, and it raises.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from qsandbox_env.deprecation import renamed_keyword
from qsandbox_env.extract import Completion, completion_text
from qsandbox_env.prompts import feedback, task_messages
from qsandbox_env.sources import load_tasks
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Outcome, Verdict, Verifier

__all__ = [
    "INSTALL_HINT",
    "PROMPT_FORMATS",
    "QiskitToolEnvironment",
    "VerifierReward",
    "make_dataset",
    "prompt_for",
]

INSTALL_HINT = 'pip install "qsandbox[grpo]"'
PROMPT_FORMATS = ("chat", "text")
PASSED_MESSAGE = "All tests passed."


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"agents.trl_adapter needs the `{module}` library: {INSTALL_HINT}"
        ) from None


def _task_set(tasks: TaskSet | str) -> TaskSet:
    if isinstance(tasks, TaskSet):
        return tasks
    if isinstance(tasks, str):
        return load_tasks(tasks)
    raise TypeError(f"tasks: expected a TaskSet or a task source name, got {type(tasks).__name__}")


# -- reward function ----------------------------------------------------------------------


class VerifierReward:
    """A TRL reward function: 1.0 when a completion passes its task's tests, else 0.0.

    Pass it to ``GRPOTrainer(reward_funcs=...)``; the dataset needs a ``task_id`` column (see
    `make_dataset`). The call is ``async``: TRL awaits it on its event loop while the sandbox
    runs the batch in parallel, so other (async) reward functions run at the same time.

    Attributes:
        tasks: The tasks that ``task_id`` values name.
        calls: How many batches were scored.
        verdicts: The most recent verdicts (at most ``keep``), oldest first.
        outcomes: How many completions ended with each outcome, over every batch.

    Example:
        >>> from qsandbox_env import Verifier
        >>> tasks = load_tasks("bundled")
        >>> task = tasks["qsandbox/ghz_circuit"]
        >>> with Verifier(workers=1) as verifier:
        ...     reward = VerifierReward(tasks, verifier=verifier)
        ...     asyncio.run(reward(prompts=[task.prompt], completions=[task.canonical_solution],
        ...                        task_id=[task.task_id]))
        [1.0]
    """

    __name__ = "qsandbox_verifier"  # TRL logs each reward function under its __name__

    def __init__(
        self,
        tasks: TaskSet | str = "bundled",
        *,
        verifier: Verifier | None = None,
        workers: int | None = None,
        timeout: float = 60.0,
        keep: int = 1024,
        parallelism: int | None = None,
    ) -> None:
        """Build the reward function.

        Args:
            tasks: The task set (or a source name for `load_tasks`) the ``task_id`` column names.
            verifier: A Verifier to share (the caller closes it); by default one is started on
                the first batch, with ``workers`` and ``timeout``, and closed by `close`.
            workers: Workers of the default Verifier (default: the CPU count); ``parallelism=``
                is its older name (warns).
            timeout: Per-program wall-clock limit of the default Verifier, in seconds.
            keep: How many recent verdicts `verdicts` holds (a long run scores millions; each
                verdict carries its code and output).
        """
        self.tasks = _task_set(tasks)
        self._verifier = verifier
        self._owns_verifier = verifier is None
        workers = renamed_keyword("VerifierReward", "parallelism", parallelism, "workers", workers)
        self._verifier_options = {"workers": workers, "timeout": timeout}
        self.calls = 0
        self.verdicts: collections.deque[Verdict] = collections.deque(maxlen=keep)
        self.outcomes: collections.Counter[str] = collections.Counter()

    @property
    def verifier(self) -> Verifier:
        """The Verifier that scores completions (started on first use when not given)."""
        if self._verifier is None:
            self._verifier = Verifier(**self._verifier_options)  # type: ignore[arg-type]
        return self._verifier

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Completion],
        task_id: Sequence[str] | None = None,
        **columns: Any,
    ) -> list[float]:
        """Score ``completions`` (text or chat messages) against the tasks named by ``task_id``.

        Args:
            prompts: The prompts, one per completion (unused: the task carries its prompt).
            completions: Raw model output, one per row, as TRL passes it.
            task_id: The dataset's ``task_id`` column, one per completion.
            **columns: Other dataset columns and TRL's extras; ``log_metric`` and ``log_extra``,
                when TRL passes them, receive the outcome of each completion.

        Returns:
            One reward per completion, in input order: 1.0 passed, 0.0 otherwise.

        Raises:
            ValueError: No ``task_id`` column, a length mismatch, or an id not in `tasks`.
            TypeError: A completion is neither text nor a list of chat messages.
        """
        pairs = self._pairs(completions, task_id)
        verdicts = await asyncio.to_thread(self.verifier.verify_many, pairs)
        self._record(verdicts, columns)
        return [verdict.reward for verdict in verdicts]

    def _pairs(
        self, completions: Sequence[Completion], task_ids: Sequence[str] | None
    ) -> list[tuple[Task, str]]:
        if task_ids is None:
            raise ValueError(
                "VerifierReward: the dataset has no 'task_id' column; build it with "
                "agents.trl_adapter.make_dataset(...) or add the column"
            )
        if len(task_ids) != len(completions):
            raise ValueError(
                f"VerifierReward: {len(completions)} completions but {len(task_ids)} task ids; "
                "expected one task_id per completion"
            )
        # Every id and completion is checked before anything runs: a bad batch loses nothing.
        return [
            (self.tasks.get_task(task_id), completion_text(completion))
            for task_id, completion in zip(task_ids, completions, strict=True)
        ]

    def _record(self, verdicts: list[Verdict], columns: dict[str, Any]) -> None:
        self.calls += 1
        self.verdicts.extend(verdicts)
        outcomes = [verdict.outcome.value for verdict in verdicts]
        self.outcomes.update(outcomes)
        log_extra: Callable[[str, list[Any]], None] | None = columns.get("log_extra")
        if log_extra is not None:
            log_extra("outcome", outcomes)
        log_metric: Callable[[str, float], None] | None = columns.get("log_metric")
        if log_metric is not None and outcomes:
            counts = collections.Counter(outcomes)
            # Every outcome every batch (0 when absent), so TRL's per-step average is a fraction.
            for outcome in Outcome:
                log_metric(f"outcome/{outcome.value}", counts[outcome.value] / len(outcomes))

    def reset_stats(self) -> None:
        """Forget the recorded verdicts and counts (not the Verifier)."""
        self.calls = 0
        self.verdicts.clear()
        self.outcomes.clear()

    def close(self) -> None:
        """Stop the Verifier this reward function started (a shared one is left running)."""
        if self._owns_verifier and self._verifier is not None:
            self._verifier.close()
            self._verifier = None


# -- dataset ------------------------------------------------------------------------------


def prompt_for(task: Task, prompt_format: str = "chat") -> list[dict[str, str]] | str:
    """The prompt a model is trained on for ``task``.

    Args:
        task: The task.
        prompt_format: ``"chat"``: the environment's messages (a system prompt, then the task),
            for instruction-tuned models; ``"text"``: plain text for base models: a completion
            task's prompt itself (the model continues the function), a program task's
            instruction and description.

    Example:
        >>> task = load_tasks("bundled")["qsandbox/ghz_circuit"]
        >>> prompt_for(task, "text") == task.prompt
        True
        >>> [message["role"] for message in prompt_for(task)]
        ['system', 'user']
    """
    if prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"prompt_format: expected 'chat' or 'text', got {prompt_format!r}")
    messages = task_messages(task)
    if prompt_format == "chat":
        return messages
    return task.prompt if task.format == "completion" else messages[-1]["content"] + "\n"


def make_dataset(
    tasks: TaskSet | str | Iterable[Task] = "bundled",
    *,
    prompt_format: str = "chat",
    **source_options: Any,
) -> Any:
    """A ``datasets.Dataset`` for ``GRPOTrainer``: columns ``prompt`` and ``task_id``.

    Args:
        tasks: A task source for `load_tasks` (``"bundled"``, ``"procedural"``, a file, a hub
            id), a `TaskSet`, or any iterable of tasks.
        prompt_format: ``"chat"`` (conversational dataset: lists of messages) or ``"text"``; see
            `prompt_for`.
        **source_options: Options for `load_tasks` when ``tasks`` is a source name
            (``n=``, ``seed=`` for ``"procedural"``, ...).

    Returns:
        One row per task, in task order.

    Raises:
        ImportError: ``datasets`` is not installed (the message has the pip command).
        ValueError: An unknown prompt format, or options given with a task set.
    """
    datasets = _require("datasets")
    if isinstance(tasks, str):
        task_list = list(load_tasks(tasks, **source_options).values())
    elif source_options:
        raise ValueError(
            f"source options {sorted(source_options)} apply only when tasks is a source name"
        )
    else:
        task_list = list(tasks.values()) if isinstance(tasks, TaskSet) else list(tasks)
    rows = [
        {"prompt": prompt_for(task, prompt_format), "task_id": task.task_id} for task in task_list
    ]
    return datasets.Dataset.from_list(rows)


# -- environment --------------------------------------------------------------------------


class QiskitToolEnvironment:
    """An environment for ``GRPOTrainer(environment_factory=...)`` (TRL's environment API).

    TRL makes one instance per rollout with no arguments, so pass a factory that binds the task
    set and a shared Verifier: ``QiskitToolEnvironment.factory(tasks, verifier)``. For each
    rollout TRL calls `reset` with the dataset row, exposes `run_tests` to the model as a tool
    (TRL turns every public method except ``reset`` and ``get_reward`` into a tool, which is why
    everything else here is private), and calls `get_reward` when the rollout ends.

    The reward is that of the last code the model ran through `run_tests`: 1.0 when it passed,
    0.0 otherwise or when it never called the tool. Combine it with `VerifierReward` in
    ``reward_funcs`` to score the final answer too.
    """

    def __init__(self, tasks: TaskSet | str = "bundled", verifier: Verifier | None = None) -> None:
        """Build one rollout's environment.

        Args:
            tasks: The task set (or source name) the dataset's ``task_id`` column names.
            verifier: The Verifier to run code with; share one among all instances (see
                `factory`). Without one, a one-worker Verifier is started on first use.
        """
        self._tasks = _task_set(tasks)
        self._verifier = verifier
        self._task: Task | None = None
        self._last: Verdict | None = None
        self._attempts = 0

    @classmethod
    def factory(
        cls, tasks: TaskSet | str = "bundled", verifier: Verifier | None = None
    ) -> Callable[[], QiskitToolEnvironment]:
        """A no-argument factory for ``environment_factory``, sharing ``tasks`` and ``verifier``.

        Without ``verifier``, one Verifier is started here and shared by every instance.
        """
        shared = _task_set(tasks)
        verifier = verifier if verifier is not None else Verifier()
        return functools.partial(cls, shared, verifier)

    def reset(self, **row: Any) -> str | None:
        """Start a rollout for the dataset row (it must have a ``task_id``).

        Returns:
            None when the row has a ``prompt`` (the model already sees the task); otherwise the
            task's instruction and prompt, which TRL appends to the conversation.

        Raises:
            ValueError: The row has no ``task_id``, or names an unknown task.
        """
        if "task_id" not in row:
            raise ValueError(
                "QiskitToolEnvironment.reset: the dataset row has no 'task_id'; build the "
                "dataset with agents.trl_adapter.make_dataset(...)"
            )
        self._task = self._tasks.get_task(row["task_id"])
        self._last = None
        self._attempts = 0
        return None if row.get("prompt") else task_messages(self._task)[-1]["content"]

    def run_tests(self, code: str) -> str:
        """Run Python code against the task's unit tests in the sandbox.

        Args:
            code: The code to test: the whole function with its imports (or, for a program
                task, the whole program). Markdown fences are allowed.

        Returns:
            "All tests passed." or the outcome and error message to fix.
        """
        if self._task is None:
            raise RuntimeError("QiskitToolEnvironment.run_tests: call reset(...) first")
        if self._verifier is None:
            self._verifier = Verifier(workers=1)
        self._last = self._verifier.verify(self._task, code)
        self._attempts += 1
        return PASSED_MESSAGE if self._last.passed else feedback(self._last)

    def get_reward(self) -> float:
        """The reward of the rollout: that of the last code run, 0.0 when none was run."""
        return self._last.reward if self._last is not None else 0.0

    @property
    def task(self) -> Task | None:
        """The task of the current rollout (None before the first `reset`)."""
        return self._task

    @property
    def last_verdict(self) -> Verdict | None:
        """The verdict of the last `run_tests` call since `reset`."""
        return self._last

    @property
    def attempts(self) -> int:
        """How many times the model ran its code since `reset`."""
        return self._attempts
