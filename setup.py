"""Build steps that pyproject.toml cannot declare: two files at the top of site-packages.

``qsandbox-gymnasium.pth`` imports ``_qsandbox_gymnasium`` (a copy of qsandbox_env/gym_ids.py) at
interpreter start, so that ``gymnasium.make("qsandbox/...")`` works without ``import qsandbox_env``
(Gymnasium 1.x discovers no plugins). Both files are written for a regular install (through
``build_py``, into the wheel's root) and for ``pip install -e .`` (into the editable wheel's root).
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
HOOK_SOURCE = os.path.join(HERE, "qsandbox_env", "gym_ids.py")
HOOK_MODULE = "_qsandbox_gymnasium.py"
PTH_NAME = "qsandbox-gymnasium.pth"
# One line; site runs it because it starts with "import". A failing hook must not stop Python.
PTH_LINE = "import sys; exec('try:\\n import _qsandbox_gymnasium\\nexcept Exception:\\n pass')\n"


def write_hook(directory: str) -> list[str]:
    """Write the hook module and its .pth into ``directory``; return their paths."""
    module = os.path.join(directory, HOOK_MODULE)
    pth = os.path.join(directory, PTH_NAME)
    with open(HOOK_SOURCE, encoding="utf-8") as source, open(module, "w", encoding="utf-8") as out:
        out.write(source.read())
    with open(pth, "w", encoding="utf-8") as out:
        out.write(PTH_LINE)
    return [module, pth]


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        write_hook(self.build_lib)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [os.path.join(self.build_lib, name) for name in (HOOK_MODULE, PTH_NAME)]
        return [*super().get_outputs(include_bytecode), *extra]


class EditableWheel(editable_wheel):
    # The editable wheel's root is filled before its files are written; this is the step that
    # puts files there (namespace .pth files), so the hook goes in with them.
    def _install_namespaces(self, installation_dir, pth_prefix):  # type: ignore[no-untyped-def]
        super()._install_namespaces(installation_dir, pth_prefix)
        write_hook(str(installation_dir))


setup(cmdclass={"build_py": BuildPy, "editable_wheel": EditableWheel})
