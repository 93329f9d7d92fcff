"""The Verifier: the project's one way to ask "does this completion pass this task?".

Every consumer (the environment, the TRL reward function, Ray workers, benchmarks, the CLI) calls
:meth:`Verifier.verify` or :meth:`Verifier.verify_many`. Programs run in the isolated sandbox of
:mod:`qsandbox_env.sandbox`, never in the caller's process. Misuse by the caller raises
``TypeError``/``ValueError``; anything the untrusted program does comes back as a :class:`Verdict`.
"""

from __future__ import annotations

import enum
import os
import re
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from qsandbox_env.deprecation import renamed_keyword
from qsandbox_env.extract import extract_code
from qsandbox_env.program import FIT_POLICIES, import_lines, join, judging
from qsandbox_env.sandbox.pool import SandboxError, ZygoteConfig, ZygotePool, caller_import_path
from qsandbox_env.targets import Target, parse_target
from qsandbox_env.tasks import Task

if TYPE_CHECKING:
    from qsandbox_env.broker import Broker
    from qsandbox_env.budget import Budget, BudgetLedger

__all__ = ["DEFAULT_PRELOAD", "Outcome", "SandboxError", "Verdict", "Verifier"]


class Outcome(str, enum.Enum):
    """How a program ended. Only ``PASSED`` earns reward."""

    PASSED = "passed"  #: ``check`` returned and nothing the test relies on was altered
    FAILED = "failed"  #: the test raised ``AssertionError``
    ERROR = "error"  #: any other exception (imports, attributes, ``SystemExit``, …)
    SYNTAX = "syntax"  #: the program does not compile (syntax error, NUL byte, bad surrogate)
    TIMEOUT = "timeout"  #: wall-clock or CPU-time limit reached
    MEMORY = "memory"  #: ``MemoryError`` under the memory limit
    EXITED = "exited"  #: the process ended (``os._exit``, a native abort) before the test did
    KILLED = "killed"  #: the process died from a signal
    TAMPERED = "tampered"  #: the test passed only after the program altered what it relies on
    NOT_ISA = "not_isa"  #: a primitive rejected a circuit not transpiled for its device (not ISA)
    #: the QPU broker's budget ran out before the program's jobs could run (``ibm:`` targets);
    #: the program's merit is unknown and the detail says which limit was reached
    BUDGET = "budget"
    SANDBOX = "sandbox"  #: the sandbox itself failed; the program's merit is unknown

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Verdict:
    """The result of running one completion against one task."""

    task_id: str
    outcome: Outcome
    detail: str = ""
    seconds: float = 0.0
    output: str = ""
    error_type: str = ""
    code: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def reward(self) -> float:
        return 1.0 if self.passed else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["passed"] = self.passed
        data["reward"] = self.reward
        return data


# What the zygote imports before forking: everything Qiskit tasks use, so children start warm.
DEFAULT_PRELOAD = (
    "numpy",
    "scipy",
    "scipy.linalg",
    "scipy.optimize",
    "networkx",
    "rustworkx",
    "qiskit",
    "qiskit.circuit",
    "qiskit.circuit.library",
    "qiskit.quantum_info",
    "qiskit.transpiler",
    "qiskit.transpiler.preset_passmanagers",
    "qiskit.primitives",
    "qiskit.synthesis",
    "qiskit.qasm2",
    "qiskit.qasm3",
    "qiskit_qasm3_import",
    "qiskit.result",
    "qiskit.visualization",
    "qiskit_aer",
    "qiskit_aer.primitives",
    "qiskit_aer.noise",
    "qiskit_ibm_runtime",
    "qiskit_ibm_runtime.fake_provider",
    "matplotlib",
    "matplotlib.pyplot",
)

SCHEDULES = ("longest_first", "input")
MAX_HISTORY = 100_000  # tasks whose mean time a Verifier keeps for scheduling
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: int | str, name: str) -> int:
    """``4GiB``, ``512M``, ``1048576`` → bytes."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{name}: expected an int of bytes or a string like '4GiB', got {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        if not match:
            raise ValueError(f"{name}: expected a size like '4GiB' or '512MiB', got {value!r}")
        size = int(float(match.group(1)) * _UNITS[(match.group(2) or "")[:1].upper()])
    if size <= 0:
        raise ValueError(f"{name}: expected a positive size, got {value!r}")
    return size


class Verifier:
    """Runs completions against tasks in warm, isolated sandboxes.

    Args:
        workers: programs run at once (one sandbox each); default the CPU count. The older
            keyword ``parallelism=`` still works for one release and warns.
        timeout: default wall-clock limit per program in seconds (a task's own ``timeout`` wins).
        memory: address-space limit per program (``"4GiB"`` by default). A warm child starts with
            about 1.5 GiB of address space mapped (Qiskit and its libraries), mostly shared.
        max_processes: processes a program may have at once (fork bombs stop there).
        output_limit: bytes of stdout/stderr kept per program.
        mode: ``"warm"`` (fork from a preloaded zygote) or ``"cold"`` (a fresh interpreter per
            program, as a plain HumanEval harness does; slower, for comparison and for odd
            interpreters).
        python: the interpreter that runs programs (default: this one). Point it at another
            virtual environment to run a task set under pinned package versions.
        preload: modules each zygote imports before forking.
        isolate: set False only to debug the sandbox; programs then run without namespaces.
        target: where primitives run: ``"aer"`` (ideal; the default), ``"fake:<device>"`` (a
            fake device's noise model and constraints, e.g. ``"fake:sherbrooke"``) or
            ``"ibm:<backend>"``/``"ibm:least_busy"``; see :mod:`qsandbox_env.targets`.
            ``QiskitRuntimeService()`` inside the sandbox serves the target's devices.
        broker: the :class:`~qsandbox_env.broker.Broker` that submits an ``ibm:`` target's jobs
            (default: one with the account from ``QISKIT_IBM_TOKEN``/the saved account and
            ``budget``). Programs get a credential-free proxy; the broker holds the account.
            ``Broker(QiskitRuntimeLocalService())`` serves fake devices offline.
        budget: the :class:`~qsandbox_env.budget.Budget` of the default broker (jobs, shots,
            QPU seconds), or a :class:`~qsandbox_env.budget.BudgetLedger` it shares with other
            Verifiers; a program refused for budget gets the ``budget`` outcome.
        profile: run programs in the interpreter of an execution profile made with
            ``qsandbox profile create NAME ...`` (instead of ``python=``).
        fit: how a completion becomes a program. ``"fitted"`` (the default): the code is taken
            out of the model's text (`qsandbox_env.extract`) and fitted to a completion task's
            prompt, whitespace only (`qsandbox_env.program.join`). ``"strict"``: the plain
            HumanEval convention, prompt + completion + test, nothing taken out or fitted.
        schedule: the order in which `verify_many` starts work: ``"longest_first"`` (the
            default; by each task's mean time on this Verifier so far, its time limit until it
            has run once) or ``"input"``. Verdicts come back in input order either way.

    Example:
        >>> from qsandbox_env import Task, Verifier
        >>> task = Task("demo/0", "def add(a, b):\\n", "def check(f):\\n    assert f(2, 3) == 5\\n",
        ...             "add")
        >>> with Verifier(workers=1, preload=()) as v:
        ...     v.verify(task, "    return a + b\\n").outcome
        <Outcome.PASSED: 'passed'>
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout: float = 60.0,
        memory: int | str = "4GiB",
        max_processes: int = 64,
        output_limit: int = 64 * 1024,
        mode: str = "warm",
        python: str | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        isolate: bool = True,
        target: str | Target = "aer",
        broker: Broker | None = None,
        budget: Budget | BudgetLedger | None = None,
        profile: str | None = None,
        fit: str = "fitted",
        schedule: str = "longest_first",
        parallelism: int | None = None,
    ) -> None:
        workers = renamed_keyword("Verifier", "parallelism", parallelism, "workers", workers)
        self.workers = _positive_int(os.cpu_count() or 1 if workers is None else workers, "workers")
        self.timeout = _positive_float(timeout, "timeout")
        self.memory = parse_size(memory, "memory")
        self.max_processes = _positive_int(max_processes, "max_processes")
        self.output_limit = _positive_int(output_limit, "output_limit")
        if mode not in ("warm", "cold"):
            raise ValueError(f"mode: expected 'warm' or 'cold', got {mode!r}")
        self.mode = mode
        if fit not in FIT_POLICIES:
            raise ValueError(f"fit: expected one of {', '.join(FIT_POLICIES)}, got {fit!r}")
        self.fit = fit
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule: expected one of {', '.join(SCHEDULES)}, got {schedule!r}")
        self.schedule = schedule
        self._durations: dict[str, tuple[float, int]] = {}  # task id -> (seconds, runs)
        if profile is not None:
            if python is not None:
                raise ValueError("profile: give either profile= or python=, not both")
            from qsandbox_env.profiles import profile_python

            python = profile_python(profile)
        self.python = python or sys.executable
        if not (os.path.isfile(self.python) and os.access(self.python, os.X_OK)):
            raise ValueError(f"python: {self.python!r} is not an executable file")
        if isinstance(preload, str) or not all(isinstance(m, str) for m in preload):
            raise TypeError(f"preload: expected a sequence of module names, got {preload!r}")
        self.target = parse_target(target)
        self.broker = _make_broker(self.target, broker, budget)
        self._config = ZygoteConfig(
            self.python,
            tuple(preload) if mode == "warm" else (),
            bool(isolate),
            "512m",
            (self.target.kind, self.target.device),
            caller_import_path(self.python),
        )
        self._closed = False
        self._cold_info: dict = {}
        self._lock = threading.Lock()
        self._pool: ZygotePool | None = None
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="qsandbox")
        if mode == "warm":
            self._pool = ZygotePool(self._config, self.workers)
            self._announce(self._pool.info)

    # -- public API -----------------------------------------------------------------------
    @property
    def parallelism(self) -> int:
        """The older name of `workers` (deprecated; warns)."""
        warnings.warn(
            "Verifier.parallelism is deprecated; read Verifier.workers", DeprecationWarning, 2
        )
        return self.workers

    @property
    def isolation(self) -> dict:
        """Which isolation layers are active in the sandbox, and why any are missing."""
        if self._pool is None and not self._cold_info:
            probe = ZygotePool(self._config, 1)  # cold mode: ask a fresh sandbox interpreter
            self._cold_info = probe.info
            probe.close()
        info = self._pool.info if self._pool else self._cold_info
        return dict(info.get("isolation", {}))

    def verify(self, task: Task, completion: str, *, timeout: float | None = None) -> Verdict:
        """Run ``completion`` (raw model text) against ``task`` and return the verdict."""
        request = self._request(task, completion, timeout)
        return self._run(task, request)

    def verify_many(
        self, pairs: Iterable[tuple[Task, str]], *, timeout: float | None = None
    ) -> list[Verdict]:
        """Verify many (task, completion) pairs in parallel; verdicts come back in input order.

        Work starts longest first (``schedule="longest_first"``, the default): each pair's
        expected time is the mean of what its task took before on this Verifier, or, for a task
        not seen yet, its time limit. A batch with a few long programs then ends close to
        max(longest program, total work / workers) instead of waiting on a long one that started
        last. ``schedule="input"`` starts work in input order.
        """
        jobs = [(task, self._request(task, completion, timeout)) for task, completion in pairs]
        order = range(len(jobs))
        if self.schedule == "longest_first":
            order = sorted(order, key=lambda i: -self._expected(jobs[i][0], jobs[i][1]))
        futures = {i: self._executor.submit(self._run, *jobs[i]) for i in order}
        return [futures[i].result() for i in range(len(jobs))]

    def _expected(self, task: Task, request: dict) -> float:
        seen = self._durations.get(task.task_id)
        return seen[0] / seen[1] if seen else float(request["timeout"])

    def _record(self, verdict: Verdict) -> None:
        with self._lock:
            total, count = self._durations.get(verdict.task_id, (0.0, 0))
            if len(self._durations) >= MAX_HISTORY and verdict.task_id not in self._durations:
                self._durations.pop(next(iter(self._durations)))  # the oldest task seen
            self._durations[verdict.task_id] = (total + verdict.seconds, count + 1)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._executor.shutdown(wait=True)
        if self._pool:
            self._pool.close()

    def __enter__(self) -> Verifier:
        return self

    def __copy__(self) -> Verifier:
        return self

    def __deepcopy__(self, memo: dict) -> Verifier:
        # A Verifier is a handle on running sandboxes: copies share them (gymnasium.make
        # deep-copies its keyword arguments, a shared verifier among them).
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    # -- internals ------------------------------------------------------------------------
    def _request(self, task: Task, completion: str, timeout: float | None) -> dict:
        if self._closed:
            raise ValueError("this Verifier is closed; create a new one")
        if not isinstance(task, Task):
            raise TypeError(f"task: expected a qsandbox_env.Task, got {type(task).__name__}")
        if not isinstance(completion, str):
            raise TypeError(f"completion: expected str, got {type(completion).__name__}")
        limit = (
            _positive_float(timeout, "timeout")
            if timeout is not None
            else (task.timeout or self.timeout)
        )
        code = completion if self.fit == "strict" else extract_code(completion, task)
        source = join(task, code, fit=self.fit)
        return {
            **({"broker": {"device": self.target.device}} if self.broker is not None else {}),
            "program": {
                "source": source,
                "entry_point": task.entry_point,
                "imports": import_lines(task.test),
            },
            # The program's text too: the test may read what it refers to (never run there).
            "judge": {**judging(task), "candidate": source},
            "timeout": limit,
            "code": code,
            "limits": {
                "memory": self.memory,
                "processes": self.max_processes,
                "file_size": 64 << 20,
                "output": self.output_limit,
            },
        }

    def _run(self, task: Task, request: dict) -> Verdict:
        code = request.pop("code")
        broker = self.broker.session(self.target.device) if self.broker else nullcontext()
        with broker as session:
            answer = session.relay if session is not None else None
            if self._pool is not None:
                reply = self._pool.run(request, request["timeout"], answer)
            else:
                reply = self._run_cold(request, answer)
        if session is not None and session.refusals and reply["outcome"] != "passed":
            reply = _budget_reply(reply, session.refusals)
        verdict = Verdict(
            task.task_id,
            Outcome(reply["outcome"]),
            reply.get("detail", ""),
            float(reply.get("seconds", 0.0)),
            reply.get("output", ""),
            reply.get("error_type", ""),
            code,
        )
        self._record(verdict)
        return verdict

    def _run_cold(self, request: dict, broker: Callable[[Any], dict] | None = None) -> dict:
        pool = ZygotePool(self._config, 1)
        try:
            self._cold_info = pool.info
            self._announce(pool.info)
            return pool.run(request, request["timeout"], broker)
        finally:
            pool.close()

    @staticmethod
    def _announce(info: dict) -> None:
        """Say once, loudly, what the sandbox could not do on this machine."""
        missing = info.get("isolation", {}).get("missing", {})
        if missing:
            _warn_once(
                "qsandbox: these sandbox layers are NOT active on this machine:\n"
                f"{_bullets(missing)}\nUntrusted programs are less contained than designed."
            )
        threads = info.get("threads", 1)
        if threads > 1:
            _warn_once(
                f"qsandbox: the sandbox's zygote had {threads} threads after preloading; children "
                "forked from it may deadlock. Remove the module that starts them from preload."
            )
        failed = info.get("preload_errors", {})
        if failed:
            _warn_once(
                f"qsandbox: the sandbox could not preload:\n{_bullets(failed)}\nPrograms "
                "importing these start slower or fail; install them for the sandbox's interpreter."
            )


def _make_broker(
    target: Target, broker: Broker | None, budget: Budget | BudgetLedger | None
) -> Broker | None:
    """The broker an ``ibm:`` target submits through; other targets take none."""
    from qsandbox_env.broker import Broker
    from qsandbox_env.budget import Budget, BudgetLedger

    if broker is not None and not isinstance(broker, Broker):
        raise TypeError(f"broker: expected a qsandbox_env.Broker, got {type(broker).__name__}")
    if budget is not None and not isinstance(budget, (Budget, BudgetLedger)):
        raise TypeError(
            f"budget: expected a qsandbox_env.Budget or BudgetLedger, got {type(budget).__name__}"
        )
    if target.kind != "ibm":
        if broker is not None or budget is not None:
            raise ValueError(
                f"broker/budget: only ibm: targets submit to a QPU, got target {target.spec!r}"
            )
        return None
    if broker is not None and budget is not None:
        raise ValueError("budget: give it to the Broker you pass (Broker(service, budget=...))")
    return broker if broker is not None else Broker(budget=budget)


def _budget_reply(reply: dict, refusals: list[str]) -> dict:
    """A failing verdict whose jobs the budget refused: say so instead of a silent zero."""
    detail = (
        f"{refusals[0]}. The program's merit is unknown: it ran without the QPU results it "
        "asked for. Raise the Verifier's Budget or reuse cached results."
    )
    if reply.get("detail"):
        detail += f"\n\nThe program then ended with {reply['outcome']}:\n{reply['detail']}"
    return {**reply, "outcome": "budget", "detail": detail}


def _bullets(reasons: dict[str, str]) -> str:
    return "\n".join(f"  - {name}: {why}" for name, why in reasons.items())


def _warn_once(message: str) -> None:
    if message not in _ANNOUNCED:
        _ANNOUNCED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


# Sandbox warnings already shown in this process (each distinct one is shown once).
_ANNOUNCED: set[str] = set()


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def _positive_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a positive number of seconds, got {value!r}")
    if not 0 < float(value) < float("inf"):
        raise ValueError(f"{name}: expected a positive, finite number of seconds, got {value!r}")
    return float(value)
