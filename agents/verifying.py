"""The verifier a run checks completions with: what it must offer, and how one is built.

`VerifierLike` is what benchmarking (`agents.bench`) and training (`agents.grpo`) need of a
verifier; `build_verifier` makes the one a command line asks for: a local
`qsandbox_env.Verifier`, or a `agents.ray.RayVerifier` on a Ray cluster. Both packages take them
from here, so that training does not depend on benchmarking. This module never runs a completion
itself, and imports Ray only when a Ray verifier is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from qsandbox_env.tasks import Task
from qsandbox_env.verifier import Verdict

__all__ = ["VerifierError", "VerifierLike", "build_verifier", "verifier_options"]


class VerifierError(Exception):
    """The verifier asked for cannot be built; the message says why and how to fix it."""


class VerifierLike(Protocol):
    """What a run needs of a verifier: `Verifier.verify_many`'s signature.

    A `qsandbox_env.Verifier`, an `agents.ray.RayVerifier`, an `agents.ray.RolloutPool`, or any
    object with that method; whoever builds one closes it (``close()``) when done.
    """

    def verify_many(self, pairs: Sequence[tuple[Task, str]]) -> list[Verdict]: ...


def build_verifier(
    workers: int | None = None,
    timeout: float = 60.0,
    target: str | None = None,
    ray: str | bool | None = None,
    budget: Any = None,
    fit: str = "fitted",
) -> Any:
    """The Verifier for a run: a local `Verifier`, or ``agents.ray.RayVerifier`` when ``ray``
    is set (``True``: the session's cluster or a new local one; a string: that address), with
    ``workers`` actors of one sandbox each. ``target`` and the QPU ``budget`` (a
    ``qsandbox_env.Budget``, which Ray actors spend from together) are passed only when given;
    ``fit`` is the Verifier's answer-fitting policy.

    Raises:
        VerifierError: No Ray, a cluster too small, actors that would not start, or options the
            Verifier refuses (a target that cannot take a budget, say).
    """
    options = verifier_options(timeout, target, budget, fit)
    if ray:
        from agents.ray.verifier import RayVerifier  # ray is imported only when asked for

        address = ray if isinstance(ray, str) else None
        try:
            return RayVerifier(address=address, workers=workers, **options)
        except (ImportError, ValueError, RuntimeError) as error:
            # No ray installed, a cluster too small, actors that would not start: say so plainly.
            raise VerifierError(f"--ray: {error}") from None
    from qsandbox_env.verifier import Verifier

    try:
        return Verifier(workers=workers, **options)
    except (TypeError, ValueError) as error:  # a target that cannot take a budget, say
        raise VerifierError(str(error)) from None


def verifier_options(
    timeout: float, target: str | None, budget: Any, fit: str = "fitted"
) -> dict[str, Any]:
    """Verifier keyword options for a run: ``target`` and ``budget`` only when given."""
    options: dict[str, Any] = {"timeout": timeout, "fit": fit}
    if target is not None:
        options["target"] = target
    if budget is not None:
        options["budget"] = budget
    return options
