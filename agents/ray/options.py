"""What a pool of `agents.ray` is asked for, checked once on the driver before Ray starts.

A bad option raises ``ValueError`` or ``TypeError`` worded "expected X, got Y" here, not on an
actor: `PoolShape` holds what every pool asks of Ray, `checked_verifier_options` what its actors'
`Verifier` is given.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from qsandbox_env.verifier import Verifier

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_START_TIMEOUT",
    "PoolShape",
    "checked_verifier_options",
    "positive_int",
    "positive_number",
]

DEFAULT_START_TIMEOUT = 300.0  # zygotes preload Qiskit; a busy node takes a while
DEFAULT_MAX_RETRIES = 2
_VERIFIER_PARAMETERS = frozenset(inspect.signature(Verifier).parameters)


def positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return value


def positive_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a positive number, got {value!r}")
    if not 0 < float(value) < float("inf"):
        raise ValueError(f"{name}: expected a positive, finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PoolShape:
    """What every pool asks of Ray, checked once on the driver."""

    actors: int | None
    num_cpus: float
    max_in_flight: int
    item_timeout: float | None
    max_retries: int
    start_timeout: float

    @classmethod
    def checked(
        cls,
        actors: int | None,
        num_cpus: float,
        max_in_flight: int,
        item_timeout: float | None,
        max_retries: int,
        start_timeout: float,
    ) -> PoolShape:
        if actors is not None:
            positive_int(actors, "actors")
        positive_number(num_cpus, "num_cpus")
        positive_int(max_in_flight, "max_in_flight")
        if item_timeout is not None:
            positive_number(item_timeout, "item_timeout")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries: expected an int >= 0, got {max_retries!r}")
        positive_number(start_timeout, "start_timeout")
        return cls(actors, num_cpus, max_in_flight, item_timeout, max_retries, start_timeout)


def checked_verifier_options(options: dict[str, Any], label: str) -> dict[str, Any]:
    unknown = sorted(set(options) - _VERIFIER_PARAMETERS)
    if unknown:
        raise TypeError(
            f"{label}: unknown Verifier option(s) {unknown}; expected some of "
            f"{sorted(_VERIFIER_PARAMETERS)}"
        )
    if options.get("broker") is not None:
        raise TypeError(
            f"{label}: broker= cannot be sent to Ray actors (it holds a Runtime service and its "
            "credentials); pass target='ibm:...' (and budget=...) and each actor builds its own "
            "broker from its node's saved account or QISKIT_IBM_* environment"
        )
    options = dict(options)
    options["parallelism"] = positive_int(options.get("parallelism", 1), "parallelism")
    options["timeout"] = positive_number(options.get("timeout", 60.0), "timeout")
    return options
