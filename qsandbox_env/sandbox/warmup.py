"""Thread-free warm-ups the zygote runs after preloading, so children skip first-use costs.

Each step fills a cache that every child would otherwise fill again: transpiler stage plugins are
discovered through package entry points (about half a second), Aer builds its target, the
equivalence library loads. None of them may start a thread: a thread pool created before the fork
(as building a preset pass manager or running a transpile does) leaves children that deadlock.
The zygote checks its thread count after these steps and reports it.
"""

from __future__ import annotations

from collections.abc import Callable

STAGES = ("init", "layout", "routing", "translation", "optimization", "scheduling")


def transpiler_plugins() -> None:
    from qiskit.transpiler.preset_passmanagers.plugin import list_stage_plugins

    for stage in STAGES:
        list_stage_plugins(stage)


def aer_target() -> None:
    from qiskit_aer import AerSimulator

    AerSimulator().target  # noqa: B018 - building it is the point


def equivalence_library() -> None:
    from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary

    SessionEquivalenceLibrary.keys()


STEPS: dict[str, Callable[[], None]] = {
    "transpiler-plugins": transpiler_plugins,
    "aer-target": aer_target,
    "equivalence-library": equivalence_library,
}


def run(errors: dict[str, str]) -> None:
    """Run every step whose libraries are importable; failures go into ``errors``."""
    for name, step in STEPS.items():
        try:
            step()
        except ImportError:
            continue  # an interpreter without Aer (say) simply skips that step
        except Exception as exc:  # noqa: BLE001 - a warm-up never stops the sandbox
            errors[f"warm-up {name}"] = f"{type(exc).__name__}: {exc}"
