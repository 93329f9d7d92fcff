"""The QPU broker: submits sandboxed programs' primitive calls to IBM Quantum with the caller's
account, under a budget, with a result cache and batching.

On an ``ibm:`` target a sandboxed program gets a credential-free proxy of the Runtime service
(:mod:`qsandbox_env.sandbox.qpu_proxy`). Its ``SamplerV2``/``EstimatorV2`` calls and ``backend.run``
arrive here as messages (QPY circuits, parameter arrays, observables); the broker, running in the
Verifier's own process, holds the one ``QiskitRuntimeService`` session and:

- **budgets** jobs, shots and QPU seconds against a :class:`~qsandbox_env.budget.BudgetLedger`,
  refusing a request that would go over (the Verifier then gives the program the ``budget``
  outcome, saying so, instead of a silent zero);
- **caches** each PUB's result by (device, options, circuit, parameter values, shots/precision,
  observables), so a repeated program submits nothing;
- **batches**: PUBs for the same device and options that arrive while other programs are still
  running are held until every running program is waiting on the broker (or ``batch_window``
  seconds pass), then go out as one job.

Offline, the service is ``QiskitRuntimeLocalService()`` (fake devices, the runtime's local mode):
the same primitives code path as hardware, minus the network.

The module is a little over 500 lines because it is one job that reads best whole: a request's
path from message to budget hold, cache, batch, job and settlement. The budget's bookkeeping is
:mod:`qsandbox_env.budget`'s; this module only spends through it.

Everything a message carries came from untrusted code: it is decoded by
:mod:`qsandbox_env.sandbox.qpu_codec`, which never unpickles or imports by name. This module must
never send a credential, a service object or anything derived from the account to a program.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from qsandbox_env.budget import Budget, BudgetLedger
from qsandbox_env.sandbox import qpu_codec

__all__ = ["Broker", "BrokerSession", "Usage"]

PRIMITIVES = ("sampler", "estimator")
# Shots per PUB where a device does not say (IBM devices report max_shots = 100,000).
DEFAULT_MAX_SHOTS = 100_000
# Shots one request may run over all its PUBs and parameter sets: a program must not make the
# Verifier's process simulate, or hold the results of, billions of shots.
MAX_REQUEST_SHOTS = 10_000_000
LEAST_BUSY = "least_busy"


@dataclass(frozen=True)
class Usage:
    """What the broker has spent and saved so far."""

    jobs: int = 0  #: jobs submitted to the service
    shots: int = 0  #: shots submitted
    seconds: float = 0.0  #: QPU seconds used
    requests: int = 0  #: primitive calls received from programs
    cache_hits: int = 0  #: PUBs answered from the cache
    refused: int = 0  #: requests refused because the budget was exhausted


class BudgetExhausted(Exception):
    """Internal: a request the budget cannot cover (the program sees a runtime error)."""


@dataclass
class _Request:
    """One program's primitive call waiting for its batch."""

    pubs: list
    keys: list[str]
    pub_shots: list[int]
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict | None = None

    @property
    def shots(self) -> int:
        return sum(self.pub_shots)


@dataclass
class _Batch:
    primitive: str
    device: str
    options: dict
    requests: list[_Request] = field(default_factory=list)


class Broker:
    """Submits sandboxed programs' primitive calls to a Qiskit Runtime service.

    Args:
        service: the service to submit to. Default: ``QiskitRuntimeService()`` created on first
            use, which reads ``QISKIT_IBM_TOKEN``/``QISKIT_IBM_CHANNEL``/``QISKIT_IBM_INSTANCE``
            or the saved account; devices named ``fake_*`` are then served offline by
            ``QiskitRuntimeLocalService()`` (the runtime's local mode), with no account.
        budget: limits on jobs, shots and QPU seconds (default: none), or a `BudgetLedger`
            that this broker shares with others (they keep to its budget together).
        batch_window: longest time a request waits for others to join its batch, in seconds.
        cache: reuse results of identical PUBs instead of submitting them again.
        cache_size: PUB results kept; the least recently used go first.
        job_timeout: seconds to wait for one job's result (``None``: as long as it takes).

    Example:
        >>> from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService
        >>> broker = Broker(QiskitRuntimeLocalService(), budget=Budget(jobs=5))
        >>> broker.usage.jobs, broker.budget.jobs
        (0, 5)
    """

    def __init__(
        self,
        service: Any = None,
        *,
        budget: Budget | BudgetLedger | None = None,
        batch_window: float = 0.5,
        cache: bool = True,
        cache_size: int = 4096,
        job_timeout: float | None = None,
    ) -> None:
        if budget is not None and not isinstance(budget, (Budget, BudgetLedger)):
            raise TypeError(
                "budget: expected a qsandbox_env.Budget or BudgetLedger, got "
                f"{type(budget).__name__}"
            )
        if (
            isinstance(batch_window, bool)
            or not isinstance(batch_window, (int, float))
            or not (0 <= batch_window < float("inf"))
        ):
            raise ValueError(f"batch_window: expected seconds >= 0, got {batch_window!r}")
        self._service = service
        self._offline: Any = None  # the local service for fake devices when none was given
        self.ledger = budget if isinstance(budget, BudgetLedger) else BudgetLedger(budget)
        self.budget = self.ledger.budget
        self.batch_window = float(batch_window)
        self.cache_enabled = bool(cache)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size: expected a positive int, got {cache_size!r}")
        self.cache_size = cache_size
        self.job_timeout = job_timeout
        self._usage = Usage()
        self._cond = threading.Condition()
        self._batches: dict[tuple, _Batch] = {}
        self._waiting = 0  # requests queued in a batch not yet taken
        self._active = 0  # programs running with a session open
        self._running_jobs = 0  # batches taken from the queue and not finished yet
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._backends: dict[str, Any] = {}
        self._descriptions: dict[str, dict] = {}

    # -- public ---------------------------------------------------------------------------------
    @property
    def usage(self) -> Usage:
        with self._cond:
            return self._usage

    @property
    def service(self) -> Any:
        if self._service is None:
            try:
                from qiskit_ibm_runtime import QiskitRuntimeService
            except ImportError as exc:  # pragma: no cover - a dependency of the package
                raise ImportError(
                    "the QPU broker needs qiskit-ibm-runtime: pip install 'qiskit-ibm-runtime<0.47'"
                ) from exc
            self._service = QiskitRuntimeService()
        return self._service

    @contextmanager
    def session(self, device: str) -> Iterator[BrokerSession]:
        """One program's connection to ``device``: counts it as running while the block lasts."""
        session = BrokerSession(self, device)
        with self._cond:
            self._active += 1
        try:
            yield session
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def resolve(self, device: str) -> str:
        """The backend name a target's device stands for (``least_busy`` is looked up once)."""
        return self._backend(device).name

    # -- requests ---------------------------------------------------------------------------------
    def handle(self, message: Any, session: BrokerSession | None = None) -> dict:
        """Answer one message from a sandboxed program: ``{"ok": ...}`` or ``{"error": ...}``."""
        try:
            if not isinstance(message, dict):
                raise qpu_codec.CodecError("expected a JSON object")
            op = message.get("op")
            if op == "describe":
                with _service_time(session):
                    return {"ok": self.describe(_device(message, session))}
            if op in ("primitive", "run"):
                return {"ok": self._primitive(message, session)}
            raise qpu_codec.CodecError(f"unknown broker operation {op!r:.40}")
        except BudgetExhausted as exc:
            with self._cond:
                self._usage = replace(self._usage, refused=self._usage.refused + 1)
            if session is not None:
                session.refusals.append(str(exc))
            return {"error": str(exc), "kind": "budget"}
        except qpu_codec.CodecError as exc:
            return {"error": self._scrub(f"invalid request: {exc}"), "kind": "invalid"}
        except Exception as exc:  # noqa: BLE001 - the service's failures go back to the program
            return {"error": self._scrub(f"{type(exc).__name__}: {exc}"), "kind": "job"}

    def _scrub(self, text: str) -> str:
        """``text`` without the account's secrets: a service error may quote what it was sent."""
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _secrets(self) -> list[str]:
        found = [os.environ.get("QISKIT_IBM_TOKEN", "")]
        try:
            account = self._service.active_account() if self._service is not None else None
        except Exception:  # noqa: BLE001 - a local service has no account to read
            account = None
        if isinstance(account, dict):
            found += [str(account.get(key) or "") for key in ("token", "instance")]
        return [secret for secret in found if len(secret) >= 8]

    def describe(self, device: str) -> dict:
        """The device's configuration and properties, which the proxy builds its target from."""
        if device not in self._descriptions:
            backend = self._backend(device)
            properties = backend.properties()
            self._descriptions[device] = qpu_codec.plain(
                {
                    "name": backend.name,
                    "configuration": backend.configuration().to_dict(),
                    "properties": properties.to_dict() if properties is not None else None,
                }
            )
        return self._descriptions[device]

    def _backend(self, device: str) -> Any:
        if not device:
            raise qpu_codec.CodecError("no device named")
        if device not in self._backends:
            service = self._local_service() if _fake_device(device) else self.service
            backend = service.least_busy() if device == LEAST_BUSY else service.backend(device)
            self._backends[device] = backend
        return self._backends[device]

    def _local_service(self) -> Any:
        """The service for a fake device: the one given, else the runtime's local mode (no IBM
        account has a device named ``fake_*``), so ``ibm:fake_<device>`` rehearses the whole QPU
        path offline: broker, budget, batching and cache."""
        if self._service is not None:
            return self._service
        if self._offline is None:
            from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

            self._offline = QiskitRuntimeLocalService()
        return self._offline

    def _primitive(self, message: dict, session: BrokerSession | None) -> dict:
        primitive = "sampler" if message["op"] == "run" else message.get("primitive")
        if primitive not in PRIMITIVES:
            raise qpu_codec.CodecError(
                f"primitive: expected sampler or estimator, got {primitive!r:.40}"
            )
        options = message.get("options") or {}
        if not isinstance(options, dict):
            raise qpu_codec.CodecError("options: expected an object")
        pubs_in = message.get("pubs")
        if not isinstance(pubs_in, list) or not pubs_in:
            raise qpu_codec.CodecError("pubs: expected a non-empty list")
        device = _device(message, session)
        backend = self._backend(device)
        option_text = json.dumps(options, sort_keys=True)
        default_shots = options.get("default_shots") if primitive == "sampler" else None
        decoded = [qpu_codec.decode_pub(primitive, pub, default_shots) for pub in pubs_in]
        self._check_size([pub for pub, _, _ in decoded], backend)
        self._check_isa([pub for pub, _, _ in decoded], backend)
        keys = [_digest(backend.name, option_text, key) for _, key, _ in decoded]
        with self._cond:
            self._usage = replace(self._usage, requests=self._usage.requests + 1)
            cached = [self._cached(k) for k in keys] if self.cache_enabled else [None] * len(keys)
        missing = [i for i, hit in enumerate(cached) if hit is None]
        hits = len(keys) - len(missing)
        if hits:
            with self._cond:
                self._usage = replace(self._usage, cache_hits=self._usage.cache_hits + hits)
        if session is not None:
            session.cache_hits += hits
        results: list[dict | None] = list(cached)
        metadata: dict = {"cached": hits}
        job_id = "cache"
        if missing:
            request = _Request(
                [decoded[i][0] for i in missing],
                [keys[i] for i in missing],
                [decoded[i][2] for i in missing],
            )
            with _service_time(session):
                reply = self._submit(_Batch(primitive, device, options), request)
            for i, result in zip(missing, reply["results"], strict=True):
                results[i] = result
            metadata.update(reply["metadata"])
            job_id = reply["job_id"]
            if session is not None:
                session.jobs.append(job_id)
        return {"job_id": job_id, "results": results, "metadata": metadata}

    def _cached(self, key: str) -> dict | None:
        """A cached PUB result, marked as recently used (called with the lock held)."""
        result = self._cache.get(key)
        if result is not None:
            self._cache.move_to_end(key)
        return result

    @staticmethod
    def _check_size(pubs: list, backend: Any) -> None:
        """Refuse what the device would refuse (more than its ``max_shots`` in one PUB) and
        requests too big for this process to simulate or hold (``MAX_REQUEST_SHOTS``)."""
        configuration = getattr(backend, "configuration", None)
        limit = getattr(configuration() if callable(configuration) else None, "max_shots", None)
        limit = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_SHOTS
        total = 0
        for pub in pubs:
            shots = getattr(pub, "shots", None) or math.ceil(1 / pub.precision**2)
            if shots > limit:
                raise qpu_codec.CodecError(
                    f"shots: {backend.name} runs at most {limit} shots per PUB, got {shots}"
                )
            total += shots * math.prod(pub.shape)
        if total > MAX_REQUEST_SHOTS:
            raise qpu_codec.CodecError(
                f"shots: one request may run at most {MAX_REQUEST_SHOTS} shots over all its "
                f"PUBs and parameter sets, got {total}"
            )

    @staticmethod
    def _check_isa(pubs: list, backend: Any) -> None:
        """Refuse a non-ISA circuit here, alone, rather than fail a whole batch on the device."""
        target = getattr(backend, "target", None)
        if target is None:
            return
        from qiskit_ibm_runtime.utils.validations import validate_isa_circuits

        try:
            validate_isa_circuits([pub.circuit for pub in pubs], target)
        except Exception as exc:  # noqa: BLE001 - the runtime's own wording goes back as is
            raise qpu_codec.CodecError(str(exc)) from None

    # -- batching ---------------------------------------------------------------------------------
    def _submit(self, batch: _Batch, request: _Request) -> dict:
        """Queue ``request`` in the batch of its primitive, device and options; wait for it."""
        key = (batch.primitive, batch.device, json.dumps(batch.options, sort_keys=True))
        with self._cond:
            leader = key not in self._batches
            self._reserve(request.shots, new_job=leader)
            if leader:
                self._batches[key] = batch
            self._batches[key].requests.append(request)
            self._waiting += 1
            self._cond.notify_all()
            if leader:
                deadline = time.monotonic() + self.batch_window
                while self._waiting < self._active and time.monotonic() < deadline:
                    self._cond.wait(deadline - time.monotonic())
                taken = self._batches.pop(key)
                self._waiting -= len(taken.requests)
                self._running_jobs += 1
        if leader:
            self._execute(taken)
        request.done.wait()
        assert request.reply is not None
        if "error" in request.reply:
            raise RuntimeError(request.reply["error"])
        return request.reply

    def _reserve(self, shots: int, new_job: bool) -> None:
        """Hold budget for a queued request, or refuse it (called with the lock held)."""
        refusal = self.ledger.hold(1 if new_job else 0, shots)
        if refusal is not None:
            raise BudgetExhausted(refusal)

    def _execute(self, batch: _Batch) -> None:
        """Submit one batch as one job and hand each request its share of the results.

        Identical PUBs from several programs in one batch are submitted once.
        """
        index: dict[str, int] = {}
        pubs: list[Any] = []
        shots = 0
        for request in batch.requests:
            for key, pub, pub_shots in zip(
                request.keys, request.pubs, request.pub_shots, strict=True
            ):
                if key not in index:
                    index[key] = len(pubs)
                    pubs.append(pub)
                    shots += pub_shots
        reserved = sum(request.shots for request in batch.requests)
        job: Any = None
        error: str | None = None
        encoded: list[dict] = []
        metadata: Any = {}
        started = time.monotonic()
        try:
            job = self._primitive_class(batch.primitive)(
                mode=self._backend(batch.device), options=batch.options or None
            ).run(pubs)
            result = job.result(timeout=self.job_timeout) if self.job_timeout else job.result()
            encoded = [qpu_codec.encode_pub_result(r) for r in result]
            metadata = qpu_codec.plain(result.metadata)
        except Exception as exc:  # noqa: BLE001 - goes back to every program in the batch
            error = f"{type(exc).__name__}: {exc}"
        job_id = _job_id(job)
        # Submitted, it counts, whether or not results came back.
        seconds = 0.0 if job is None else _job_seconds(job, time.monotonic() - started)
        spent = (1, shots, seconds) if job is not None else (0, 0, 0.0)
        try:
            self.ledger.settle(1, reserved, *spent)
        except Exception:  # noqa: BLE001 - a lost shared ledger must not strand the batch
            pass
        with self._cond:
            self._running_jobs -= 1
            if job is not None:
                self._usage = replace(
                    self._usage,
                    jobs=self._usage.jobs + 1,
                    shots=self._usage.shots + shots,
                    seconds=self._usage.seconds + seconds,
                    cache_hits=self._usage.cache_hits + _batched_pubs(batch) - len(pubs),
                )
        for request in batch.requests:
            if error is not None:
                request.reply = {"error": error}
            else:
                share = [encoded[index[key]] for key in request.keys]
                if self.cache_enabled:
                    with self._cond:
                        for key, result in zip(request.keys, share, strict=True):
                            self._cache[key] = result
                        while len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
                request.reply = {
                    "job_id": job_id,
                    "results": share,
                    "metadata": {**metadata, "batched_requests": len(batch.requests)},
                }
            request.done.set()

    @staticmethod
    def _primitive_class(primitive: str) -> Callable[..., Any]:
        from qiskit_ibm_runtime import EstimatorV2, SamplerV2

        return SamplerV2 if primitive == "sampler" else EstimatorV2


class BrokerSession:
    """One program's dealings with the broker: what it was refused, which jobs it joined."""

    def __init__(self, broker: Broker, device: str = "") -> None:
        self.broker = broker
        self.device = device
        self.refusals: list[str] = []
        self.jobs: list[str] = []
        self.cache_hits = 0
        #: seconds spent waiting on the service (batches, jobs, device look-ups), not decoding
        self.service_seconds = 0.0

    def handle(self, message: Any) -> dict:
        """Answer one message from this program."""
        return self.broker.handle(message, self)

    def relay(self, message: Any) -> dict:
        """The callback the sandbox calls: :meth:`handle`'s reply, plus ``"waited"``.

        ``"waited"`` is how long the request waited on the service: only that time is left out
        of the program's wall-clock limit. Time spent decoding what the program sent is not, or
        a program could resend costly requests forever.
        """
        before = self.service_seconds
        reply = self.handle(message)
        reply["waited"] = self.service_seconds - before
        return reply


@contextmanager
def _service_time(session: BrokerSession | None) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        if session is not None:
            session.service_seconds += time.monotonic() - started


def _fake_device(device: str) -> bool:
    return device.startswith("fake_")


def _device(message: dict, session: BrokerSession | None) -> str:
    """The target's device; a program never chooses the hardware its session is bound to."""
    if session is not None:
        return session.device
    return str(message.get("device", ""))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _batched_pubs(batch: _Batch) -> int:
    return sum(len(request.pubs) for request in batch.requests)


def _job_id(job: Any) -> str:
    try:
        return str(job.job_id()) if job is not None else ""
    except Exception:  # noqa: BLE001 - an id is informational
        return ""


def _job_seconds(job: Any, wall: float) -> float:
    try:
        usage = job.usage()
    except Exception:  # noqa: BLE001 - usage is informational; fall back to the clock
        usage = None
    return float(usage) if isinstance(usage, (int, float)) and usage > 0 else wall
