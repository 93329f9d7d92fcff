"""Ray-parallel verification and rollouts: the Verifier and the environment over a pool of actors.

- `agents.ray.verifier`: `RayVerifier`, the `qsandbox_env.Verifier` interface (``verify``,
  ``verify_many``, ``close``, ``isolation``) over actors that each own a local `Verifier` (its own
  warm, isolated sandbox). Verdicts come back in input order.
- `agents.ray.worker`: `RolloutWorker`, copies of `QiskitCodeEnv` and a policy that turn task ids
  into `Trajectory` records; `agents.ray.pool`: `RolloutPool`, rollouts over many such workers.
- `agents.ray.lifecycle`: `RayPool`, the start/run/close both pools share;
  `agents.ray.scheduler`: `ActorPool`, the fault-tolerant scheduler (back-pressure, dead and stuck
  actors replaced, every item exactly one result); `agents.ray.cluster`: connecting to Ray and
  checking capacity; `agents.ray.options`: the pools' options, checked on the driver;
  `agents.ray.wire`: the plain data that crosses the network; `agents.ray.actors`: what runs in
  the actors; `agents.ray.budget`: `RayBudgetLedger`, one QPU budget for a whole pool.

What crosses the network is plain data; programs run only inside each actor's own sandbox, on the
actor's node; credentials stay with whoever holds them. This package never executes a program
itself and never retries one whose result arrived.

Ray worker processes and the sandbox coexist: an actor's `Verifier` starts its zygotes as new
interpreters (fork and exec, never a bare fork of the threaded Ray worker), with a scrubbed
environment, and Ray ends a killed actor's child processes, zygotes included. Each pool of zygotes
gets its own unprivileged uids (derived from the actor's pid), so actors on one node do not share
a process cap.

Ray is imported lazily: ``import agents.ray`` works without it, and using a pool without Ray
installed raises ``ImportError`` with the ``pip install`` command. The package is named after
what it wraps but never shadows it: every module here imports with absolute names, so
``import ray`` inside it is the Ray library. It may import `qsandbox_env` and `agents.policy`;
it must never import `agents.bench` or `agents.grpo` (they use it), and `qsandbox_env` never
imports it.
"""

from __future__ import annotations

from agents.ray.budget import RayBudgetLedger
from agents.ray.pool import RolloutError, RolloutPool
from agents.ray.verifier import RayVerifier
from agents.ray.wire import task_from_wire, task_to_wire
from agents.ray.worker import RolloutWorker, Trajectory

__all__ = [
    "RayBudgetLedger",
    "RayVerifier",
    "RolloutError",
    "RolloutPool",
    "RolloutWorker",
    "Trajectory",
    "task_from_wire",
    "task_to_wire",
]
