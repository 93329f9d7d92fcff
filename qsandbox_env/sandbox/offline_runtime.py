"""The offline Qiskit Runtime that sandboxed programs see on the ``aer`` and ``fake:`` targets.

Generated Qiskit code often starts with ``QiskitRuntimeService()`` and ``service.least_busy()``.
With no account and no network that fails at once, so the zygote installs this module before it
snapshots the library surface: from then on ``QiskitRuntimeService(...)`` returns an
:class:`OfflineRuntimeService` that serves fake devices, and everything downstream (transpiling
for the device, ``SamplerV2``/``EstimatorV2(mode=backend)``, the runtime's own option and ISA
checks) is the real qiskit-ibm-runtime code running in its local testing mode.

What is emulated, exactly:

- ``QiskitRuntimeService(channel=..., token=..., instance=..., ...)``: accepts and ignores every
  account argument; ``channel`` must be ``None``, ``"ibm_cloud"``, ``"ibm_quantum_platform"`` or
  the retired ``"ibm_quantum"`` (accepted here, rejected by current runtimes), else ValueError as
  the runtime raises. ``channel="local"`` still gives the runtime's own
  ``QiskitRuntimeLocalService``. ``isinstance(service, QiskitRuntimeService)`` holds.
- The account's devices (:data:`DEFAULT_DEVICES` on ``aer``; the target's one device on
  ``fake:<name>``) are :class:`ServedBackend` objects: ``BackendV2`` devices built from the fake
  provider's snapshots, with ``name`` (``"fake_sherbrooke"``), ``num_qubits``, ``target``,
  ``coupling_map``, ``operation_names``, ``configuration()``, ``properties()``, ``status()``
  (operational, no pending jobs) and configuration attributes (``basis_gates``, ``n_qubits``…).
  Like a real ``IBMBackend`` and unlike ``FakeBackendV2``, they are not ``FakeBackendV2``
  instances. Primitives given one run in the runtime's local mode: noisy (the device's noise model,
  as ``FakeBackendV2.run`` builds it) on a ``fake:`` target, ideal (a noiseless ``AerSimulator``) on
  ``aer``. Non-ISA circuits are rejected by the runtime's own ``validate_isa_circuits``, re-raised
  as :class:`NotISAError` (an ``IBMInputValueError``) so that the verdict can say so.
- ``backends(name=, min_num_qubits=, dynamic_circuits=, filters=, **attribute_filters)`` filters
  the account's devices as the runtime does (configuration and status attributes, e.g.
  ``simulator=False, operational=True``); ``backend(name)`` finds one by name (``ibm_<x>`` is
  accepted for ``fake_<x>``) or raises ``QiskitBackendNotFoundError``; ``least_busy(...)`` returns
  the first match, which is the target's device (``fake_sherbrooke`` on ``aer``).
- ``jobs(...)`` returns ``[]`` (an offline account has no job history); ``job(id)`` raises
  ``RuntimeJobNotFound``; ``instances()`` is ``[]``; ``active_account()`` names the channel and
  no token; ``usage()`` reports no usage. ``save_account``/``saved_accounts``/``delete_account``
  are the runtime's own (they write the program's private, empty home).

Devices are built once, in the zygote, before it forks: the calibration JSON, the ``Target``, the
properties and, for ``fake:`` targets, the noise model (about 1.6 s for a 127-qubit device) and
its serialised form, so a child pays none of it. A program that builds the target's device class
itself (``FakeSherbrooke()`` on ``fake:sherbrooke``) gets the same prebuilt noise model from
``_get_noise_model_from_backend_v2()``. Every ``QiskitRuntimeService()`` hands out its own
backend objects (own configuration and properties), as separate real services do, so a program
that alters the backend it was given does not alter the one a test asks for; the device's
``Target``, simulator and noise model are shared. Backends and prebuilt noise models are handles:
deep copies (the local service deep-copies its options, backend included, on every job) return the
same object, so changing a copy's noise model changes the device's (any change drops the cached
serialised form). The account itself lives in this module's globals, which the sandbox's audit
hook watches: a program that rebinds them gets ``tampered``.

This module never reads credentials, opens a network connection or contacts IBM Quantum; on an
``ibm:`` target it is not installed (the QPU broker's proxy serves the runtime instead).

It is a little over 500 lines because it is one job that reads best whole: the served service,
its devices, and the seals that detect a program changing them describe the same objects, and a
change to one must be made with the other in view.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import qiskit_ibm_runtime.fake_provider as fake_provider
from qiskit.providers import BackendV2, Options
from qiskit.providers.exceptions import QiskitBackendNotFoundError
from qiskit.providers.providerutils import filter_backends
from qiskit_ibm_runtime import QiskitRuntimeService, base_primitive
from qiskit_ibm_runtime.exceptions import IBMInputValueError, RuntimeJobNotFound
from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2
from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

from qsandbox_env.sandbox import guard
from qsandbox_env.targets import fake_device_classes

__all__ = [
    "DEFAULT_DEVICES",
    "NotISAError",
    "OfflineRuntimeService",
    "ServedBackend",
    "install",
]

# The account an ``aer`` target serves: current-generation devices, least busy first.
DEFAULT_DEVICES = (
    "fake_sherbrooke",
    "fake_brisbane",
    "fake_kyiv",
    "fake_torino",
    "fake_fez",
    "fake_marrakesh",
)
CHANNELS = (None, "ibm_cloud", "ibm_quantum_platform", "ibm_quantum")
NOT_FOUND = "No backend matches the criteria."

# The account's devices, set by :func:`install` in the zygote. The sandbox's audit hook watches
# this module's globals: a program that rebinds them gets ``tampered``.
_FLEET: tuple[_Device, ...] = ()


class NotISAError(IBMInputValueError):
    """A primitive was given a circuit that does not match its device's instruction set."""


class _Device:
    """One device of the offline account: built once in the zygote, shared by its wrappers."""

    def __init__(self, device: FakeBackendV2, noisy: bool) -> None:
        self.device = device
        self.noisy = noisy
        self.simulator: Any = None
        self.noise: Any = None

    def prepare(self) -> _Device:
        """Build what running costs (target, simulator, noise model) now, not in each child."""
        from qiskit_aer import AerSimulator

        self.device.target  # noqa: B018 - building it is the point
        self.device.properties()  # reads the calibration file once
        simulator = AerSimulator()
        if self.noisy:
            self.noise = _device_noise(self.device)
            simulator.set_options(noise_model=self.noise)
        self.simulator = simulator
        return self


class ServedBackend(BackendV2):
    """A fake device as an offline account serves it (see the module docstring).

    Each service builds its own wrappers, with their own configuration and properties objects,
    as each real ``QiskitRuntimeService`` fetches its own backends: what a program does to the
    backend it was handed does not change the one a test later asks the service for.
    """

    def __init__(self, device: _Device) -> None:
        fake = device.device
        super().__init__(
            provider=None,
            name=fake.name,
            description=fake.description,
            online_date=fake.online_date,
            backend_version=fake.backend_version,
        )
        self._served = device
        self._configuration: Any = None
        self._properties: Any = None
        if device.noisy:
            if device.simulator is None:
                device.prepare()
            self.set_options(noise_model=device.noise)

    @classmethod
    def _default_options(cls) -> Options:
        from qiskit_aer import AerSimulator

        return AerSimulator._default_options()

    @property
    def target(self):
        return self._served.device.target

    @property
    def max_circuits(self) -> None:
        return None

    @property
    def dtm(self) -> float | None:
        return self._served.device.dtm

    def configuration(self):
        if self._configuration is None:
            self._configuration = self._served.device.configuration()
        return self._configuration

    def properties(self, refresh: bool = False, datetime: Any = None):
        if self._properties is None:
            self._properties = self._served.device.properties()
        return self._properties

    def status(self):
        return self._served.device.status()

    def run(self, run_input: Any, **options: Any) -> Any:
        """Simulate as ``FakeBackendV2.run`` does (noiseless on an ``aer`` target)."""
        served = self._served if self._served.simulator is not None else self._served.prepare()
        served.simulator._options = self._options
        return served.simulator.run(run_input, **options)

    def __getattr__(self, name: str) -> Any:
        # As IBMBackend and FakeBackendV2 do: unknown attributes come from the configuration.
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return getattr(self.configuration(), name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            ) from None

    def __deepcopy__(self, memo: dict) -> ServedBackend:
        return self  # a handle on a device, as IBMBackend is; its noise model is not copied

    def __repr__(self) -> str:
        return f"<ServedBackend('{self.name}')>"


def _serialised_noise_class() -> type:
    from qiskit_aer.noise import NoiseModel

    class SerialisedNoise(NoiseModel):
        """A device noise model whose Aer form is computed once (it is 0.9 s per job otherwise).

        Aer converts the noise model to a dict on every run; for a device model that nobody
        changes after it is built, the first conversion is kept. Any change drops it. The model
        is shared by every instance of its device class in a program, and deep copies (the
        runtime's local mode deep-copies its backend on every job: 1.6 s for a 127-qubit model)
        return the same model.
        """

        def __deepcopy__(self, memo: dict) -> NoiseModel:
            return self

        @classmethod
        def wrap(cls, model: NoiseModel) -> NoiseModel:
            model.__class__ = cls
            model._qsandbox_dict = model.to_dict(serializable=True)
            return model

        def to_dict(self, serializable: bool = False) -> dict:
            cached = self.__dict__.get("_qsandbox_dict")
            if serializable and cached is not None:
                return cached
            return super().to_dict(serializable)

        def _forget(self) -> None:
            self.__dict__.pop("_qsandbox_dict", None)

    for name in ("add_quantum_error", "add_readout_error", "add_all_qubit_quantum_error",
                 "add_all_qubit_readout_error", "add_basis_gates", "reset"):  # fmt: skip
        original = getattr(NoiseModel, name)

        def changed(self, *args, _original=original, **kwargs):
            self._forget()
            return _original(self, *args, **kwargs)

        changed.__name__ = name
        setattr(SerialisedNoise, name, changed)
    return SerialisedNoise


class _SerialisedNoise:
    """Lazy access to the noise-model subclass (Aer is imported only when a device needs it)."""

    _cls: Any = None

    @classmethod
    def wrap(cls, model: Any) -> Any:
        if cls._cls is None:
            cls._cls = _serialised_noise_class()
        return cls._cls.wrap(model)


# Noise models the zygote built, by device class: every instance of that class in a program
# (``FakeSherbrooke()`` too) shares its model instead of building it again.
_SHARED_NOISE: dict[type, Any] = {}
_ORIGINAL_NOISE: list[Callable[..., Any]] = []


def _device_noise(device: FakeBackendV2) -> Any:
    """The device's noise model, built (by the runtime's own code) once per device class."""
    cls = type(device)
    if cls not in _SHARED_NOISE:
        build = _ORIGINAL_NOISE[0] if _ORIGINAL_NOISE else cls._get_noise_model_from_backend_v2
        _SHARED_NOISE[cls] = _SerialisedNoise.wrap(build(device))
    return _SHARED_NOISE[cls]


def _shared_noise_model(self: FakeBackendV2, *args: Any, **kwargs: Any) -> Any:
    """``FakeBackendV2._get_noise_model_from_backend_v2``: the zygote's model when it has one."""
    shared = _SHARED_NOISE.get(type(self))
    if shared is not None and not args and not kwargs:
        return shared
    return _ORIGINAL_NOISE[0](self, *args, **kwargs)


def _backend_name(name: str) -> str:
    """``ibm_sherbrooke`` (a real device's name) means the fake ``fake_sherbrooke``."""
    return "fake_" + name[4:] if name.startswith("ibm_") else name


class OfflineRuntimeService(QiskitRuntimeService):
    """``QiskitRuntimeService`` without an account: serves fake devices (module docstring)."""

    def __init__(self, channel: str | None = None, *args: Any, **kwargs: Any) -> None:
        if channel not in CHANNELS:
            raise ValueError("'channel' can only be 'ibm_cloud', or 'ibm_quantum_platform")
        self._channel = channel or "ibm_quantum_platform"
        self._devices: list[ServedBackend] = []

    def _account(self) -> list[ServedBackend]:
        """This service's backends, in the account's order (built on first use)."""
        if not self._devices:
            if not _FLEET:
                raise QiskitBackendNotFoundError("the offline runtime serves no devices")
            self._devices = [ServedBackend(device) for device in _FLEET]
        return self._devices

    @property
    def channel(self) -> str:
        return self._channel

    def active_account(self) -> dict[str, Any]:
        return {"channel": self._channel, "instance": None, "offline": True}

    def backends(
        self,
        name: str | None = None,
        min_num_qubits: int | None = None,
        instance: str | None = None,
        dynamic_circuits: bool | None = None,
        filters: Callable[[Any], bool] | None = None,
        *,
        use_fractional_gates: bool | None = False,
        calibration_id: str | None = None,
        **kwargs: Any,
    ) -> list[ServedBackend]:
        found = list(self._account())
        if name is not None:
            found = [b for b in found if b.name == _backend_name(name)]
        if min_num_qubits is not None:
            found = [b for b in found if b.num_qubits >= min_num_qubits]
        if dynamic_circuits is not None:
            found = [
                b
                for b in found
                if b._served.device._supports_dynamic_circuits() == dynamic_circuits
            ]
        return filter_backends(found, filters=filters, **kwargs) if found else []

    def backend(
        self,
        name: str | None = None,
        instance: str | None = None,
        use_fractional_gates: bool | None = False,
        calibration_id: str | None = None,
    ) -> ServedBackend:
        found = self.backends(name) if name is not None else self._account()
        if not found:
            raise QiskitBackendNotFoundError(NOT_FOUND)
        return found[0]

    def least_busy(
        self,
        min_num_qubits: int | None = None,
        instance: str | None = None,
        filters: Callable[[Any], bool] | None = None,
        **kwargs: Any,
    ) -> ServedBackend:
        found = self.backends(min_num_qubits=min_num_qubits, filters=filters, **kwargs)
        if not found:
            raise QiskitBackendNotFoundError(NOT_FOUND)
        return found[0]

    def jobs(self, *args: Any, **kwargs: Any) -> list:
        return []

    def job(self, job_id: str) -> Any:
        raise RuntimeJobNotFound(f"Job {job_id} not found (the offline runtime keeps no jobs).")

    def instances(self) -> list:
        return []

    def usage(self) -> dict[str, Any]:
        return {"usage_consumed_seconds": 0, "usage_limit_reached": False}

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(
            "the offline runtime runs primitives in local mode: pass a backend from this "
            "service as mode (SamplerV2(mode=backend))"
        )


def _offline_new(cls: type, *args: Any, **kwargs: Any) -> Any:
    """``QiskitRuntimeService.__new__``: the offline service, except for ``channel="local"``."""
    if kwargs.get("channel") == "local":
        return object.__new__(QiskitRuntimeLocalService)
    if cls is QiskitRuntimeService:
        return object.__new__(OfflineRuntimeService)
    return object.__new__(cls)


def _validate_isa(circuits: Sequence[Any], target: Any) -> None:
    """The runtime's own ISA check, with a rejection the verdict can tell apart."""
    try:
        _ORIGINAL_VALIDATE[0](circuits, target)
    except NotISAError:
        raise
    except IBMInputValueError as exc:
        raise NotISAError(str(exc)) from None


_ORIGINAL_VALIDATE: list[Callable[..., None]] = []


def _build(names: Sequence[str], noisy: bool, prepare: bool) -> tuple[_Device, ...]:
    classes = fake_device_classes()
    devices = [_Device(getattr(fake_provider, classes[name])(), noisy) for name in names]
    return tuple(device.prepare() if prepare else device for device in devices)


def install(target: dict[str, str], preload: bool = True) -> tuple[type, ...]:
    """Serve the target's devices from ``QiskitRuntimeService()``; call once, in the zygote.

    Args:
        target: ``Target.to_dict()`` of an ``aer`` or ``fake`` target.
        preload: build the devices' targets, simulators and noise models now (a warm zygote);
            False builds each on first use (a cold, one-program interpreter).

    Returns:
        The exception classes that mean "not an ISA circuit" (for the harness to report).
    """
    kind = target.get("kind", "aer")
    if kind not in ("aer", "fake"):
        raise ValueError(f"the offline runtime serves 'aer' and 'fake' targets, got {kind!r}")
    names = DEFAULT_DEVICES if kind == "aer" else (target["device"],)
    global _FLEET
    _FLEET = _build(names, noisy=kind == "fake", prepare=preload)
    if _SHARED_NOISE and not _ORIGINAL_NOISE:
        _ORIGINAL_NOISE.append(FakeBackendV2._get_noise_model_from_backend_v2)
        FakeBackendV2._get_noise_model_from_backend_v2 = _shared_noise_model
    QiskitRuntimeService.__new__ = _offline_new
    if not _ORIGINAL_VALIDATE:
        _ORIGINAL_VALIDATE.append(base_primitive.validate_isa_circuits)
        base_primitive.validate_isa_circuits = _validate_isa
    return (NotISAError,)


def seals() -> list[tuple[str, Callable[[], tuple]]]:
    """What the zygote asks the tamper snapshot to watch (``guard.Snapshot.seal``).

    Every backend a child hands out shares its device (target, simulator) and noise model, and
    the ISA check runs through one list entry: a program that changed them would change the
    test's own runs too (a non-ISA circuit accepted, a noisy reference made ideal). Seal them
    only once the devices are prepared (a warm zygote), since preparing changes them.
    """
    names = ", ".join(served.device.name for served in _FLEET)
    return [
        ("offline runtime: the ISA check and the device classes' noise", _hooks_state),
        (f"offline runtime: the served devices ({names})", _devices_state),
        (f"offline runtime: the served devices' targets ({names})", _targets_state),
        (f"offline runtime: the shared noise models ({names})", _noise_state),
    ]


def content_seals() -> list[tuple[str, object]]:
    """Shared data to watch to any depth (``guard.Snapshot.seal_contents``): each shared noise
    model in the form the simulator reads on every job. A program that edited it in place (an
    error's probabilities set to 1 for "no error", say) would make the test's own noisy runs
    ideal, and the top-level description in `seals` does not see inside it."""
    found: list[tuple[str, object]] = []
    for cls, model in _SHARED_NOISE.items():
        cached = vars(model).get("_qsandbox_dict")
        if type(cached) is dict:
            found.append(
                (f"offline runtime: the shared noise model's contents ({cls.__name__})", cached)
            )
    return found


def _hooks_state() -> tuple:
    return tuple(_ORIGINAL_VALIDATE), tuple(_ORIGINAL_NOISE), tuple(_SHARED_NOISE.items())


def _devices_state() -> tuple:
    state: tuple = (_FLEET,)
    for served in _FLEET:
        device = served.device
        held = vars(device)
        state += (
            tuple(vars(served).items()),
            guard.shadowed_methods(served),
            guard.shadowed_methods(device),
            guard.shadowed_methods(served.simulator),
            type(served.simulator),
            tuple(held.get(key) for key in ("_target", "_conf_dict", "_props_dict")),
        )
    return state


def _targets_state() -> tuple:
    """What the runtime's ISA check reads from each target: its operations and their qubits.

    As a hash: the target hands out plain names and integers (hashed in C, no program code
    runs), and one number compares much faster than a thousand tuples.
    """
    state: tuple = ()
    for served in _FLEET:
        target = served.device.target
        operations = tuple(
            (name, frozenset(target.qargs_for_operation_name(name) or ()))
            for name in sorted(target.operation_names)
        )
        state += (target, hash((target.num_qubits, operations)))
    return state


def _noise_state() -> tuple:
    state: tuple = ()
    for model in _SHARED_NOISE.values():
        held = vars(model)
        cached = held.get("_qsandbox_dict")
        errors = cached.get("errors") if type(cached) is dict else None
        state += (
            type(model),
            tuple(held.items()),
            tuple(len(v) for v in held.values() if type(v) in (dict, set, list)),
            tuple(cached.items()) if type(cached) is dict else cached,
            tuple(errors) if type(errors) is list else errors,
        )
    return state
