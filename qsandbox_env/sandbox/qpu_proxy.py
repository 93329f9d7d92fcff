"""Inside the sandbox: an IBM Quantum service, backend and jobs that hold no credentials.

For an ``ibm:`` target the program still writes ordinary Qiskit Runtime code
(``QiskitRuntimeService()``, ``service.backend(...)``, ``SamplerV2(mode=backend)``,
``EstimatorV2``, ``backend.run``). Here the service is a :class:`BrokeredService` and the backend a
:class:`BrokeredBackend`: a real ``IBMBackend`` subclass built from the device's configuration and
properties, so transpiling against it and the runtime's own checks (ISA circuits, options) run
unchanged. Only the last step differs: instead of an HTTP call with a token, the primitive's PUBs
are written to a socket whose other end is the Verifier's broker, which submits them with its own
credentials, under its budget, and sends the results back.

The zygote calls :func:`install` before it snapshots the library surface (``ibm:`` targets
only), which makes ``QiskitRuntimeService()`` return the brokered service whenever a broker
channel is attached to the child. Importing this module changes nothing. This module must never
hold, ask for or receive a credential; everything it learns comes from the broker's replies.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from qiskit.primitives import BasePrimitiveJob, PrimitiveResult
from qiskit.providers import JobStatus, JobV1
from qiskit.result import Result
from qiskit_ibm_runtime import QiskitRuntimeService, base_primitive
from qiskit_ibm_runtime.exceptions import (
    IBMInputValueError,
    IBMRuntimeError,
    RuntimeJobFailureError,
)
from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService
from qiskit_ibm_runtime.ibm_backend import IBMBackend
from qiskit_ibm_runtime.models import BackendProperties, BackendStatus, QasmBackendConfiguration

from qsandbox_env.sandbox import guard, protocol, qpu_codec
from qsandbox_env.sandbox.offline_runtime import NotISAError

__all__ = ["BrokeredBackend", "BrokeredJob", "BrokeredService", "QPUBudgetExhausted", "attach"]

# The child's one link to the broker, set by :func:`attach` (a mutable cell, so attaching writes
# no module global of a module the tamper checks watch).
_LINK: dict[str, Any] = {}
MAX_REPLY = 1 << 28


class QPUBudgetExhausted(IBMRuntimeError):
    """The broker refused the job: the Verifier's QPU budget is used up."""


class BrokerChannel:
    """Request/reply over the socket the zygote gave this child."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.identity = descriptor_identity(fd)

    def request(self, message: dict) -> Any:
        # A program could dup2 a socket of its own over the descriptor and answer the test's
        # requests itself; the descriptor must still be the one the zygote handed over.
        self._check_descriptor()
        protocol.write_message(self.fd, message)
        reply = protocol.read_message(self.fd)
        self._check_descriptor()
        if reply is None:
            raise RuntimeJobFailureError("the QPU broker closed its channel")
        if "error" in reply:
            if reply.get("kind") == "budget":
                raise QPUBudgetExhausted(reply["error"])
            raise RuntimeJobFailureError(reply["error"])
        return reply["ok"]

    def _check_descriptor(self) -> None:
        if descriptor_identity(self.fd) != self.identity:
            raise RuntimeJobFailureError("the QPU broker channel now leads somewhere else")


def descriptor_identity(fd: int) -> tuple[int, int]:
    """(device, inode) of what ``fd`` refers to; (-1, -1) when it is closed."""
    try:
        status = os.fstat(fd)
    except OSError:
        return (-1, -1)
    return (status.st_dev, status.st_ino)


def attach(fd: int, device: str) -> None:
    """Called by the zygote in a fresh child: route Qiskit Runtime calls through ``fd``."""
    _LINK["channel"] = BrokerChannel(fd)
    _LINK["device"] = device


def attached() -> bool:
    return "channel" in _LINK


def _channel() -> BrokerChannel:
    channel = _LINK.get("channel")
    if channel is None:
        raise IBMRuntimeError("no QPU broker is attached to this program (target is not ibm:)")
    return channel


class BrokeredService(QiskitRuntimeService):
    """What ``QiskitRuntimeService(...)`` gives a sandboxed program on an ``ibm:`` target.

    It accepts the usual constructor arguments and ignores them: the account is the broker's.
    Every backend look-up (``backend(name)``, ``backends()``, ``least_busy()``) returns the
    target's device, because the target, not the program, chooses the hardware.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def channel(self) -> str:
        return "ibm_quantum_platform"

    def active_account(self) -> dict[str, Any]:
        return {"channel": self.channel, "instance": None, "brokered": True}

    def backend(self, name: str | None = None, *args: Any, **kwargs: Any) -> BrokeredBackend:
        backend = _LINK.get("backend")
        if backend is None:
            description = _channel().request({"op": "describe", "device": _LINK["device"]})
            backend = _LINK["backend"] = BrokeredBackend(description, self)
        return backend

    def backends(self, *args: Any, **kwargs: Any) -> list[BrokeredBackend]:
        return [self.backend()]

    def least_busy(self, *args: Any, **kwargs: Any) -> BrokeredBackend:
        return self.backend()

    def _get_api_client(self, *args: Any, **kwargs: Any) -> _SessionBook:
        return _SessionBook()

    def _run(
        self,
        program_id: str,
        inputs: dict,
        options: Any = None,
        result_decoder: Any = None,
        calibration_id: str | None = None,
        **_: Any,
    ) -> BrokeredJob:
        if program_id not in ("sampler", "estimator"):
            raise IBMRuntimeError(
                f"only the sampler and estimator run through the broker, got {program_id!r}"
            )
        pubs = [qpu_codec.encode_pub(program_id, pub) for pub in inputs["pubs"]]
        # The primitive's own options, in the form SamplerOptions/EstimatorOptions take them.
        options = dict(inputs.get("options") or {})
        if "resilience_level" in inputs:
            options["resilience_level"] = inputs["resilience_level"]
        reply = _channel().request(
            {
                "op": "primitive",
                "primitive": program_id,
                "pubs": pubs,
                "options": qpu_codec.plain(options),
            }
        )
        backend = _LINK.get("backend")
        return BrokeredJob(reply["job_id"], _decode_result(reply), backend, program_id)


class _SessionBook:
    """What ``Session``/``Batch`` ask of the service's API client: only bookkeeping here, since
    the broker decides how jobs are grouped and submitted."""

    def create_session(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        return {"id": f"brokered-session-{uuid.uuid4().hex[:12]}"}

    def close_session(self, *args: Any, **kwargs: Any) -> None:
        pass

    def cancel_session(self, *args: Any, **kwargs: Any) -> None:
        pass

    def session_details(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"state": "open", "accepting_jobs": True, "mode": "dedicated"}


def _decode_result(reply: dict) -> PrimitiveResult:
    results = [qpu_codec.decode_pub_result(item) for item in reply["results"]]
    return PrimitiveResult(results, metadata=reply.get("metadata") or {})


class BrokeredJob(BasePrimitiveJob):
    """A finished primitive job: the broker answers only once the results are in."""

    def __init__(self, job_id: str, result: PrimitiveResult, backend: Any, program_id: str) -> None:
        super().__init__(job_id)
        self._result = result
        self._backend = backend
        self._program_id = program_id

    def result(self, *args: Any, **kwargs: Any) -> PrimitiveResult:
        return self._result

    def status(self) -> str:
        return "DONE"

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def in_final_state(self) -> bool:
        return True

    def cancel(self) -> None:
        pass

    def backend(self) -> Any:
        return self._backend

    @property
    def primitive_id(self) -> str:
        return self._program_id

    def errored(self) -> bool:
        return False


class BrokeredBackend(IBMBackend):
    """The target device as the program sees it: its real configuration and calibration, no
    client, no token."""

    def __init__(self, description: dict, service: BrokeredService) -> None:
        configuration = QasmBackendConfiguration.from_dict(description["configuration"])
        super().__init__(configuration, service, None, description.get("instance"))
        properties = description.get("properties")
        self._properties = BackendProperties.from_dict(properties) if properties else None
        self._description = description

    def properties(self, refresh: bool = False, datetime: Any = None) -> BackendProperties | None:
        return self._properties

    def refresh(self) -> None:
        pass

    def status(self) -> BackendStatus:
        return BackendStatus(self.name, self.backend_version or "", True, 0, "active")

    def __deepcopy__(self, _memo: dict | None = None) -> BrokeredBackend:
        return BrokeredBackend(self._description, self._service)

    def run(
        self, run_input: Any, shots: int | None = None, memory: bool = False, **options: Any
    ) -> BackendJob:
        """``backend.run`` through the broker: the circuits run as sampler PUBs, and the counts
        come back in a ``Result`` as ``backend.run`` returns them."""
        circuits = list(run_input) if isinstance(run_input, (list, tuple)) else [run_input]
        shots = int(shots or options.get("shots") or self.options.shots)
        from qiskit.primitives.containers.sampler_pub import SamplerPub

        pubs = [qpu_codec.encode_pub("sampler", SamplerPub.coerce(c, shots)) for c in circuits]
        reply = _channel().request({"op": "run", "pubs": pubs})
        result = _decode_result(reply)
        counts_result = _as_backend_result(circuits, result, reply["job_id"], self, memory)
        return BackendJob(self, reply["job_id"], counts_result)


class BackendJob(JobV1):
    """The finished job ``BrokeredBackend.run`` returns."""

    def __init__(self, backend: Any, job_id: str, result: Result) -> None:
        super().__init__(backend, job_id)
        self._result = result

    def submit(self) -> None:
        pass

    def result(self, *args: Any, **kwargs: Any) -> Result:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE


def _as_backend_result(
    circuits: list, result: PrimitiveResult, job_id: str, backend: Any, memory: bool
) -> Result:
    """Sampler bit arrays → the ``Result`` with hex counts that ``backend.run`` returns."""
    experiments = []
    for circuit, pub_result in zip(circuits, result, strict=True):
        registers = [(reg.name, reg.size) for reg in circuit.cregs]
        per_register = [pub_result.data[name].get_bitstrings() for name, _ in registers]
        shots = len(per_register[0]) if per_register else 0
        words = ["".join(bits[i] for bits in reversed(per_register)) for i in range(shots)]
        hex_words = [hex(int(word, 2)) if word else "0x0" for word in words]
        counts: dict[str, int] = {}
        for word in hex_words:
            counts[word] = counts.get(word, 0) + 1
        data: dict[str, Any] = {"counts": counts}
        if memory:
            data["memory"] = hex_words
        header = {
            "name": circuit.name,
            "creg_sizes": [list(r) for r in registers],
            "memory_slots": sum(size for _, size in registers),
            "n_qubits": circuit.num_qubits,
        }
        experiments.append(
            {"shots": shots, "success": True, "data": data, "header": header, "status": "DONE"}
        )
    return Result.from_dict(
        {
            "backend_name": backend.name,
            "backend_version": backend.backend_version or "",
            "job_id": job_id,
            "success": True,
            "results": experiments,
            "qobj_id": job_id,
        }
    )


def _brokered_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``QiskitRuntimeService.__new__``: the brokered service when a broker is attached
    (``channel="local"`` still asks for the runtime's local mode, as on any target)."""
    if kwargs.get("channel") == "local":
        return object.__new__(QiskitRuntimeLocalService)
    if cls is QiskitRuntimeService and attached():
        return BrokeredService()
    return object.__new__(cls)


def _validate_isa(circuits: Any, target: Any) -> None:
    """The runtime's own ISA check, raising the error the verdict reports as ``not_isa``."""
    try:
        _RUNTIME_VALIDATE[0](circuits, target)
    except NotISAError:
        raise
    except IBMInputValueError as exc:
        raise NotISAError(str(exc)) from None


_RUNTIME_VALIDATE: list[Any] = []


def install() -> tuple[type, ...]:
    """Route ``QiskitRuntimeService()`` here; call once, in the zygote, before its snapshot.

    Returns:
        The exception classes that mean "not an ISA circuit" (for the harness to report).
    """
    QiskitRuntimeService.__new__ = _brokered_new
    if not _RUNTIME_VALIDATE:
        _RUNTIME_VALIDATE.append(base_primitive.validate_isa_circuits)
        base_primitive.validate_isa_circuits = _validate_isa
    return (NotISAError,)


def seals() -> list[tuple[str, Any]]:
    """What the zygote asks the tamper snapshot to watch (``guard.Snapshot.seal``).

    The test's own primitive calls go through the same link as the program's: a program that
    swapped the channel (or its ``request``) could answer the test with results of its choosing.
    """
    return [("QPU proxy: the link to the broker", _link_state)]


def descriptor_seal() -> tuple[str, Any]:
    """What the child seals right after :func:`attach`: the channel's descriptor and its identity.

    Recorded before the program runs, as plain numbers; a program that points the channel at
    another descriptor, or puts another socket behind the same number, changes them.
    """
    return ("QPU proxy: the broker descriptor", _descriptor_state)


def _descriptor_state() -> tuple[object, ...]:
    channel = _LINK.get("channel")
    if type(channel) is not BrokerChannel:
        return ()
    fd = vars(channel).get("fd")
    return (fd, vars(channel).get("identity"), descriptor_identity(fd) if type(fd) is int else ())


def _link_state() -> tuple[bool, bool]:
    """Invariants of the link, as true before :func:`attach` (in the zygote) as after it."""
    channel, backend = _LINK.get("channel"), _LINK.get("backend")
    return (
        channel is None
        or (type(channel) is BrokerChannel and tuple(vars(channel)) == ("fd", "identity")),
        backend is None
        or (type(backend) is BrokeredBackend and not guard.shadowed_methods(backend)),
    )
