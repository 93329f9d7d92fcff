"""What runs inside the Ray actors of `agents.ray`: the host around a worker object, and the
verifier worker.

`ActorHost` is the one Ray actor class; it holds a `VerifierActor` (a local `Verifier`) or an
`agents.ray.worker.RolloutWorker`, and keeps a construction error to be raised on the driver
(`start_exception`). Programs run only inside each actor's own sandbox, on the actor's node.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from agents.ray.wire import task_from_wire, verdict_to_wire
from qsandbox_env.verifier import Outcome, Verdict, Verifier

__all__ = [
    "ActorHost",
    "VerifierActor",
    "describe_actor",
    "ray_node_id",
    "start_exception",
    "verify_items",
]


def describe_actor(isolation: dict) -> dict[str, Any]:
    """What an actor reports when it is ready: its pid, host name, Ray node id (`ray_node_id`)
    and the isolation layers of its sandbox."""
    import socket

    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "node_id": ray_node_id(),
        "isolation": isolation,
    }


def ray_node_id() -> str | None:
    """The id (hex) of the Ray node this process runs on; None outside a Ray session (a
    `RolloutWorker` used directly). Several nodes may share one host, so the host name alone
    does not say where an actor is."""
    ray = sys.modules.get("ray")  # never imports Ray for a worker used without it
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


class VerifierActor:
    """What runs inside one `RayVerifier` actor: a local `Verifier` and nothing else."""

    def __init__(self, **verifier_kwargs: Any) -> None:
        self.verifier = Verifier(**verifier_kwargs)

    def ready(self) -> dict[str, Any]:
        return describe_actor(self.verifier.isolation)

    def verify(self, item: dict[str, Any]) -> dict[str, Any]:
        return verify_items(self.verifier, [item], item["timeout"])[0]

    def budget(self, _: object = None) -> dict[str, Any] | None:
        """The QPU budget, what this actor's broker has spent (``usage``) and what the whole
        pool has (``spent``: the shared ledger's count), for ``ibm:`` targets."""
        broker = self.verifier.broker
        if broker is None:
            return None
        return {
            "budget": asdict(broker.budget),
            "usage": asdict(broker.usage),
            "spent": broker.ledger.spent(),
        }

    def close(self) -> None:
        self.verifier.close()


def verify_items(
    verifier: Verifier, items: Sequence[dict[str, Any]], timeout: float | None
) -> list[dict[str, Any]]:
    """Verdicts, as plain data, for items ``{"task", "completion"}``, run in parallel here."""
    tasks = [task_from_wire(item["task"]) for item in items]
    try:
        pairs = [(task, item["completion"]) for task, item in zip(tasks, items, strict=True)]
        verdicts = verifier.verify_many(pairs, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the sandbox failing is a verdict, not a crash
        detail = f"{type(exc).__name__}: {exc}"
        verdicts = [Verdict(task.task_id, Outcome.SANDBOX, detail) for task in tasks]
    return [verdict_to_wire(verdict) for verdict in verdicts]


class ActorHost:
    """The Ray actor around a worker object (`VerifierActor`, `RolloutWorker`).

    It keeps the worker's construction error instead of dying with it, so that the driver can
    raise it with its own type (a ``ValueError`` from bad options stays a ``ValueError``).
    """

    def __init__(self, cls: type, args: tuple, kwargs: dict[str, Any]) -> None:
        self.worker: Any = None
        self.start_error: tuple[str, str] | None = None
        try:
            self.worker = cls(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by ready(), raised on the driver
            self.start_error = (type(exc).__name__, str(exc))

    def ready(self) -> dict[str, Any]:
        if self.start_error is not None:
            return {"start_error": self.start_error}
        return self.worker.ready()

    def call(self, method: str, payload: Any) -> Any:
        return getattr(self.worker, method)(payload)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def start_exception(label: str, kind: str, message: str) -> Exception:
    """The exception to raise on the driver for an actor's reported construction error: a
    ``ValueError`` or ``TypeError`` keeps its type, anything else becomes a ``RuntimeError``."""
    error = {"ValueError": ValueError, "TypeError": TypeError}.get(kind, RuntimeError)
    if error is RuntimeError:
        message = f"{label}: a Ray actor failed to start: {kind}: {message}"
    return error(message)
