"""Execution targets: where the primitives of a program run, as one small value.

A target is a parameter of the :class:`~qsandbox_env.verifier.Verifier` (and of the environment),
never a code path in a task:

- ``"aer"`` (the default): ideal simulation. Programs that ask ``QiskitRuntimeService()`` for a
  device get a fake device (its coupling map, calibrations and instruction set), whose primitives
  run without noise.
- ``"fake:<name>"``: a device of ``qiskit_ibm_runtime.fake_provider`` (``fake:sherbrooke`` is
  ``FakeSherbrooke``), served by the offline ``QiskitRuntimeService`` with its noise model and
  constraints.
- ``"ibm:<backend>"`` / ``"ibm:least_busy"``: real hardware, reached through the parent's QPU
  broker; this module only parses and validates the name (no account is needed to do that).

:func:`parse_target` turns the text form into a :class:`Target`; :class:`Target` is what the
Verifier hands to its sandboxes. This module never opens an account, a network connection or a
device's calibration files (it reads class attributes only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["KINDS", "Target", "fake_device_names", "parse_target"]

KINDS = ("aer", "fake", "ibm")
LEAST_BUSY = "least_busy"
# IBM Quantum backend names: lower-case letters, digits and underscores ("ibm_torino").
_IBM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FORMS = "'aer', 'fake:<device>' (e.g. 'fake:sherbrooke'), 'ibm:<backend>' or 'ibm:least_busy'"


@dataclass(frozen=True)
class Target:
    """Where a program's primitives run.

    Attributes:
        kind: ``"aer"`` (ideal simulator), ``"fake"`` (a fake device with its noise model and
            constraints) or ``"ibm"`` (real hardware through the QPU broker).
        device: for ``fake``, the fake backend's name as the fake provider spells it
            (``"fake_sherbrooke"``); for ``ibm``, the backend name (``"ibm_torino"``) or
            ``"least_busy"``; for ``aer``, ``""``.

    Example:
        >>> Target("fake", "fake_sherbrooke").spec
        'fake:sherbrooke'
        >>> parse_target("ibm:least_busy").least_busy
        True
    """

    kind: str
    device: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"target kind: expected one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.device, str):
            raise TypeError(f"target device: expected str, got {type(self.device).__name__}")
        if self.kind == "aer" and self.device:
            raise ValueError(f"target 'aer' names no device, got device {self.device!r}")
        if self.kind == "fake" and self.device not in fake_device_names():
            raise ValueError(_unknown_fake(self.device))
        if self.kind == "ibm" and not _IBM_NAME.match(self.device):
            raise ValueError(
                f"target: expected 'ibm:<backend>' with a backend name such as 'ibm_torino' "
                f"(lower-case letters, digits, '_') or 'ibm:least_busy', got 'ibm:{self.device}'"
            )

    @property
    def spec(self) -> str:
        """The text form :func:`parse_target` reads back (``"fake:sherbrooke"``)."""
        if self.kind == "aer":
            return "aer"
        if self.kind == "fake":
            return f"fake:{self.device.removeprefix('fake_')}"
        return f"ibm:{self.device}"

    @property
    def least_busy(self) -> bool:
        """Whether this is ``ibm:least_busy`` (the broker picks the device when it submits)."""
        return self.kind == "ibm" and self.device == LEAST_BUSY

    @property
    def simulated(self) -> bool:
        """Whether programs run on this machine (``aer`` and ``fake``), not on a QPU."""
        return self.kind != "ibm"

    def to_dict(self) -> dict[str, str]:
        """The JSON form sent to sandboxes."""
        return {"kind": self.kind, "device": self.device}

    @classmethod
    def from_dict(cls, data: dict) -> Target:
        return cls(str(data["kind"]), str(data.get("device", "")))

    def __str__(self) -> str:
        return self.spec


def parse_target(text: str | Target) -> Target:
    """Read a target's text form (``"aer"``, ``"fake:<device>"``, ``"ibm:<backend>"``).

    A fake device may be named as the target list shows it (``fake:sherbrooke``), by the fake
    backend's name (``fake:fake_sherbrooke``) or by its class (``fake:FakeSherbrooke``); case does
    not matter. A :class:`Target` is returned unchanged.

    Raises:
        TypeError: ``text`` is neither a string nor a Target.
        ValueError: an unknown form or device; the message lists the valid ones.

    Example:
        >>> parse_target("fake:FakeSherbrooke")
        Target(kind='fake', device='fake_sherbrooke')
        >>> parse_target("aer")
        Target(kind='aer', device='')
    """
    if isinstance(text, Target):
        return text
    if not isinstance(text, str):
        raise TypeError(f"target: expected a string such as 'aer', got {type(text).__name__}")
    kind, sep, name = text.strip().partition(":")
    kind = kind.lower()
    if kind == "aer" and not sep:
        return Target("aer")
    if kind == "fake" and name:
        return Target("fake", _fake_backend_name(name))
    if kind == "ibm" and name:
        return Target("ibm", name.strip())
    raise ValueError(f"target: expected {_FORMS}, got {text!r}")


@lru_cache(maxsize=1)
def fake_device_names() -> tuple[str, ...]:
    """Backend names of every device in ``qiskit_ibm_runtime.fake_provider``, sorted.

    Read from the classes' attributes: no calibration file is opened.
    """
    return tuple(sorted(fake_device_classes()))


@lru_cache(maxsize=1)
def fake_device_classes() -> dict[str, str]:
    """``{"fake_sherbrooke": "FakeSherbrooke", ...}`` for the installed qiskit-ibm-runtime."""
    try:
        from qiskit_ibm_runtime import fake_provider
        from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2
    except ImportError as exc:
        raise ImportError(
            "fake: targets need qiskit-ibm-runtime's fake devices: pip install "
            "'qiskit-ibm-runtime<0.47'"
        ) from exc
    found = {}
    for attr, value in vars(fake_provider).items():
        name = getattr(value, "backend_name", None)
        if isinstance(value, type) and issubclass(value, FakeBackendV2) and name:
            found[name] = attr
    return found


def _fake_backend_name(name: str) -> str:
    """The fake backend name a user's spelling of a device means (unchanged if none)."""
    key = name.strip().lower()
    by_class = {cls.lower(): backend for backend, cls in fake_device_classes().items()}
    if key in by_class:
        return by_class[key]
    if key.startswith("fake_"):
        return key
    return f"fake_{key}"


def _unknown_fake(device: str) -> str:
    shown = device.removeprefix("fake_")
    valid = ", ".join(f"fake:{n.removeprefix('fake_')}" for n in fake_device_names())
    return f"target: unknown fake device 'fake:{shown}'; valid fake devices: {valid}"
