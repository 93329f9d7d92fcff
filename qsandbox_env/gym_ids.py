"""The Gymnasium ids of qsandbox, known to Gymnasium even before ``import qsandbox_env``.

Gymnasium 1.x has no plugin discovery: an id such as ``qsandbox/QiskitCode-v0`` exists only once
the package that registers it was imported, and ``gymnasium.make`` without that import answers
"Namespace qsandbox not found". So an installed qsandbox also puts a copy of this file at the top
of ``site-packages`` (as ``_qsandbox_gymnasium.py``, with ``qsandbox-gymnasium.pth`` importing it
at interpreter start; see ``setup.py``). At start it only adds a finder to ``sys.meta_path``;
when Gymnasium itself is imported, the ids are registered with string entry points, so nothing
of qsandbox is imported until ``gymnasium.make`` builds an environment.

This module imports nothing but the standard library and must stay that way: it runs in every
interpreter of the environment it is installed in, and a failure here is swallowed rather than
allowed to break an unrelated program's start.
"""

from __future__ import annotations

import sys
from typing import Any

ENTRY_POINT = "qsandbox_env.env:QiskitCodeEnv"

# id -> default task source
IDS = {
    "qsandbox/QiskitCode-v0": "bundled",
    "qsandbox/QiskitHumanEval-v0": "Qiskit/qiskit_humaneval",
    "qsandbox/QiskitHumanEvalHard-v0": "Qiskit/qiskit_humaneval_hard",
}


def register_ids(gymnasium: Any) -> None:
    """Register every id not yet in Gymnasium's registry (string entry points only)."""
    for env_id, source in IDS.items():
        if env_id not in gymnasium.envs.registration.registry:
            gymnasium.envs.registration.register(
                env_id, entry_point=ENTRY_POINT, kwargs={"source": source}
            )


class _WhenGymnasiumLoads:
    """A one-shot import hook: after ``gymnasium`` has executed, register the ids."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        self.remove()
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        loader = getattr(spec, "loader", None)
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            run(module)
            try:
                register_ids(module)
            except Exception:  # noqa: BLE001 - never break the user's import of Gymnasium
                pass

        loader.exec_module = exec_module  # type: ignore[union-attr]
        return spec

    def remove(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install() -> None:
    """At interpreter start: register now if Gymnasium is loaded, else when it is imported."""
    gymnasium = sys.modules.get("gymnasium")
    if gymnasium is not None:
        register_ids(gymnasium)
    elif not any(isinstance(f, _WhenGymnasiumLoads) for f in sys.meta_path):
        sys.meta_path.insert(0, _WhenGymnasiumLoads())


if __name__ == "_qsandbox_gymnasium":  # the copy that qsandbox-gymnasium.pth imports
    try:
        install()
    except Exception:  # noqa: BLE001 - an interpreter must start whatever happens here
        pass
