"""QiskitCodeEnv: the Gymnasium environment (prompt in, code out, reward from the Verifier).

Every step runs the action through :class:`~qsandbox_env.verifier.Verifier`, the project's one
execution path; this module never executes code itself.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium
from gymnasium import spaces

from qsandbox_env.prompts import (  # noqa: F401 - still importable from here, as before
    COMPLETION_INSTRUCTION,
    FEEDBACK_LIMIT,
    PROGRAM_INSTRUCTION,
    SYSTEM_PROMPT,
    feedback,
    task_messages,
)
from qsandbox_env.sources import load_tasks
from qsandbox_env.targets import Target, parse_target
from qsandbox_env.tasks import Task, TaskSet
from qsandbox_env.verifier import Verdict, Verifier

MAX_TEXT = 1 << 20  # characters: longer prompts or programs are not Qiskit tasks


class UnicodeText(spaces.Text):
    """A text space that contains every ``str`` up to ``max_length`` characters.

    Gymnasium's ``Text`` checks membership against a finite character set; real prompts and
    programs hold any Unicode (Qiskit-HumanEval prompts contain ε and √), so membership here is by
    length alone. Samples still draw from a small alphabet, plus some non-ASCII characters.
    """

    def __init__(self, max_length: int = MAX_TEXT, *, min_length: int = 0, seed=None) -> None:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()[]:=.,\n√ε"
        super().__init__(max_length, min_length=min_length, charset=alphabet, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


class QiskitCodeEnv(gymnasium.Env[str, str]):
    """A Qiskit coding task per episode; the reward says whether the code passed its tests.

    ## Description
    Each episode presents one task (a Qiskit coding prompt). The agent answers with code, raw
    model text being fine: fenced blocks are unwrapped. The code runs with the task's unit tests
    in the isolated sandbox of :class:`~qsandbox_env.verifier.Verifier`.

    ## Action Space
    ``UnicodeText``: any ``str`` up to 1 MiB characters (model output, fenced or not).

    ## Observation Space
    ``UnicodeText``: the task prompt after ``reset``; after a failed attempt in repair mode, the
    execution feedback (outcome and trimmed error).

    ## Rewards
    1.0 when the code passes the task's tests (outcome ``passed``), else 0.0. In repair mode
    (``max_attempts > 1``) each attempt is rewarded the same way, so an episode's return is 1.0
    if any attempt passed and the episode ends at the first pass.

    ## Starting State
    A task drawn uniformly from the source with the environment's seeded generator, or the one
    named by ``options={"task_id": ...}``.

    ## Episode End
    Terminated when the code passes, or when ``max_attempts`` attempts have failed. Never
    truncated.

    ## Arguments
    ``source``: a task file, a named task set (``"bundled"``) or a :class:`TaskSet`.
    ``max_attempts``: attempts per episode (1 = single turn). ``verifier``: a shared
    :class:`Verifier` (by default the environment starts its own, with one worker, on first step).
    ``timeout``: per-program wall-clock limit for the default verifier.
    ``target``: where the code's primitives run (``"aer"``, ``"fake:<device>"``,
    ``"ibm:<backend>"``; see :mod:`qsandbox_env.targets`); default the verifier's, else ``"aer"``.
    A given ``verifier`` must have this target.

    Vectorised: ``SyncVectorEnv`` works as is; ``AsyncVectorEnv`` needs ``shared_memory=False``
    (text has no fixed size) and, with the spawn context, the id ``"qsandbox_env:qsandbox/…"``
    so that workers import the package and its registrations.

    ## Version History
    * v0: initial version.

    Examples:
        >>> import gymnasium, qsandbox_env
        >>> env = gymnasium.make("qsandbox/QiskitCode-v0")
        >>> prompt, info = env.reset(seed=0)
        >>> sorted(info)[:3]
        ['difficulty', 'entry_point', 'format']
        >>> env.close()
    """

    metadata = {"render_modes": ["ansi"]}  # noqa: RUF012 - Gymnasium's own convention

    def __init__(
        self,
        source: str | TaskSet = "bundled",
        *,
        max_attempts: int = 1,
        verifier: Verifier | None = None,
        timeout: float = 60.0,
        render_mode: str | None = None,
        target: str | Target | None = None,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"max_attempts: expected a positive int, got {max_attempts!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode: expected None or 'ansi', got {render_mode!r}")
        self.target = _choose_target(target, verifier)
        self.tasks = source if isinstance(source, TaskSet) else load_tasks(source)
        if not len(self.tasks):
            raise ValueError(f"source {source!r} holds no tasks")
        self.task_ids = list(self.tasks)
        self.max_attempts = max_attempts
        self.render_mode = render_mode
        self.observation_space = UnicodeText()
        self.action_space = UnicodeText()
        self._verifier = verifier
        self._owns_verifier = verifier is None
        self._timeout = timeout
        self._task: Task | None = None
        self._attempts = 0
        self._last: Verdict | None = None

    # -- Gymnasium API ----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        task_id = (options or {}).get("task_id")
        if task_id is None:
            task_id = self.task_ids[int(self.np_random.integers(len(self.task_ids)))]
        elif task_id not in self.tasks:
            close = difflib.get_close_matches(str(task_id), self.task_ids, n=5)
            raise ValueError(f"unknown task_id {task_id!r}; close matches: {close or 'none'}")
        self._task = self.tasks[task_id]
        self._attempts = 0
        self._last = None
        return self._task.prompt, self._task_info(self._task)

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._task is None:
            raise gymnasium.error.ResetNeeded("Cannot call env.step() before calling env.reset()")
        if not isinstance(action, str):
            hint = ""
            if isinstance(action, list | tuple) and any(isinstance(m, dict) for m in action):
                hint = (
                    "; for chat messages, pass the reply's text: "
                    "env.step(qsandbox_env.extract.completion_text(messages)) reads the last "
                    "assistant message"
                )
            raise TypeError(
                f"action: expected str (the model's reply or code), got {type(action).__name__}"
                + hint
            )
        if self._attempts >= self.max_attempts or (self._last is not None and self._last.passed):
            raise gymnasium.error.ResetNeeded("the episode has ended; call env.reset()")
        verdict = self.verifier.verify(self._task, action)
        self._attempts += 1
        self._last = verdict
        terminated = verdict.passed or self._attempts >= self.max_attempts
        observation = "" if terminated else feedback(verdict)
        # Wall time stays out of info (same seed and action must give the same info); it is on
        # ``last_verdict``.
        result = {k: v for k, v in verdict.to_dict().items() if k != "seconds"}
        info = {**self._task_info(self._task), **result, "attempt": self._attempts}
        return observation, verdict.reward, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._task is None:
            return None
        last = f"\n[attempt {self._attempts}: {self._last.outcome.value}]" if self._last else ""
        return f"[{self._task.task_id}]\n{self._task.prompt}{last}"

    def close(self) -> None:
        if self._owns_verifier and self._verifier is not None:
            self._verifier.close()
            self._verifier = None

    # -- helpers ----------------------------------------------------------------------------
    @property
    def last_verdict(self) -> Verdict | None:
        """The full verdict of the last step (with its wall time), or None after a reset."""
        return self._last

    @property
    def verifier(self) -> Verifier:
        if self._verifier is None:
            self._verifier = Verifier(workers=1, timeout=self._timeout, target=self.target)
        return self._verifier

    @staticmethod
    def _task_info(task: Task) -> dict[str, Any]:
        return {
            "task_id": task.task_id,
            "difficulty": task.difficulty,
            "entry_point": task.entry_point,
            "format": task.format,
            "messages": task_messages(task),
        }


def _choose_target(target: str | Target | None, verifier: Verifier | None) -> Target:
    """The environment's target: the one asked for, which a shared verifier must run."""
    if target is None:
        return verifier.target if verifier is not None else parse_target("aer")
    chosen = parse_target(target)
    if verifier is not None and verifier.target != chosen:
        raise ValueError(
            f"target: the given verifier runs target {verifier.target.spec!r}, not "
            f"{chosen.spec!r}; pass a Verifier(target={chosen.spec!r}) or leave target unset"
        )
    return chosen
