"""What a pool of `agents.ray` is asked for, checked once on the driver before Ray starts.

A bad option raises ``ValueError`` or ``TypeError`` worded "expected X, got Y" here, not on an
actor: `PoolShape` holds what every pool asks of Ray, `checked_verifier_options` what its actors'
`Verifier` is given.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from qsandbox_env.deprecation import renamed_keyword
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
# What a pool passes on to each worker's Verifier; the pool sets its ``workers`` itself.
_WORKER_VERIFIER_PARAMETERS = frozenset(inspect.signature(Verifier).parameters) - {
    "workers",
    "parallelism",
}


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

    workers: int | None
    num_cpus: float
    max_in_flight: int
    item_timeout: float | None
    max_retries: int
    start_timeout: float
    num_gpus: float = 0.0

    @classmethod
    def checked(
        cls,
        workers: int | None,
        num_cpus: float,
        max_in_flight: int,
        item_timeout: float | None,
        max_retries: int,
        start_timeout: float,
        num_gpus: float = 0.0,
    ) -> PoolShape:
        if workers is not None:
            positive_int(workers, "workers")
        positive_number(num_cpus, "num_cpus")
        positive_int(max_in_flight, "max_in_flight")
        if item_timeout is not None:
            positive_number(item_timeout, "item_timeout")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries: expected an int >= 0, got {max_retries!r}")
        positive_number(start_timeout, "start_timeout")
        if (
            isinstance(num_gpus, bool)
            or not isinstance(num_gpus, (int, float))
            or not (0 <= num_gpus < float("inf"))
        ):
            raise ValueError(f"num_gpus: expected a number of GPUs >= 0, got {num_gpus!r}")
        return cls(
            workers, num_cpus, max_in_flight, item_timeout, max_retries, start_timeout,
            float(num_gpus),
        )  # fmt: skip


def checked_verifier_options(
    options: dict[str, Any], label: str, sandboxes_per_worker: int | None = None
) -> dict[str, Any]:
    """The options of each worker's `Verifier`, its ``workers`` set to ``sandboxes_per_worker``
    (default 1; the older spelling ``parallelism=`` among the options still works and warns)."""
    options = dict(options)
    sandboxes_per_worker = renamed_keyword(
        label,
        "parallelism",
        options.pop("parallelism", None),
        "sandboxes_per_worker",
        sandboxes_per_worker,
        stacklevel=4,
    )
    unknown = sorted(set(options) - _WORKER_VERIFIER_PARAMETERS)
    if unknown:
        raise TypeError(
            f"{label}: unknown Verifier option(s) {unknown}; expected some of "
            f"{sorted(_WORKER_VERIFIER_PARAMETERS)} (each worker's sandbox count is "
            "sandboxes_per_worker=)"
        )
    if options.get("broker") is not None:
        raise TypeError(
            f"{label}: broker= cannot be sent to Ray actors (it holds a Runtime service and its "
            "credentials); pass target='ibm:...' (and budget=...) and each actor builds its own "
            "broker from its node's saved account or QISKIT_IBM_* environment"
        )
    per_worker = 1 if sandboxes_per_worker is None else sandboxes_per_worker
    options["workers"] = positive_int(per_worker, "sandboxes_per_worker")
    options["timeout"] = positive_number(options.get("timeout", 60.0), "timeout")
    return options
