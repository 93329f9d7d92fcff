"""``gymnasium.make("qsandbox/...")`` works without ``import qsandbox_env``.

The installed package puts a start-up hook into site-packages (setup.py); these tests run fresh
interpreters, as a user's script would be, so the hook is what is tested, not this process's
imports.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from qsandbox_env import gym_ids
from tests.conftest import ROOT

SITE = Path(sysconfig.get_paths()["purelib"])


def _installed() -> bool:
    try:
        importlib.metadata.distribution("qsandbox")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# Skipped only where qsandbox is not installed at all; an install without the hook fails them.
needs_hook = pytest.mark.skipif(
    not _installed(), reason="qsandbox is not installed here (pip install -e . writes the hook)"
)


def fresh_python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    # From an empty directory, so that the project is not importable from the working directory.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *flags, "-c", code],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@needs_hook
def test_make_finds_the_ids_without_importing_qsandbox_env_first():
    run = fresh_python(
        "import sys, gymnasium\n"
        "assert 'qsandbox_env' not in sys.modules, 'imported too early'\n"
        "env = gymnasium.make('qsandbox/QiskitCode-v0', max_attempts=2)\n"
        "obs, info = env.reset(seed=0)\n"
        "print(type(env.unwrapped).__name__, info['task_id'].split('/')[0])\n"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["QiskitCodeEnv", "qsandbox"]


@needs_hook
def test_without_the_hook_gymnasium_does_not_know_the_namespace():
    # -S skips site-packages' .pth files: what a user without the hook would see.
    code = (
        f"import sys; sys.path.append({str(SITE)!r})\n"
        "import gymnasium\n"
        "try:\n"
        "    gymnasium.make('qsandbox/QiskitCode-v0')\n"
        "except gymnasium.error.NamespaceNotFound as e:\n"
        "    print('not found')\n"
    )
    run = fresh_python(code, "-S")
    assert run.stdout.strip() == "not found", run.stderr


@needs_hook
def test_importing_qsandbox_env_after_the_hook_registered_warns_nothing():
    run = fresh_python(
        "import warnings, gymnasium\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import qsandbox_env\n"
        "print([str(w.message) for w in caught if 'qsandbox' in str(w.message)])\n"
        "print(sorted(i for i in gymnasium.registry if i.startswith('qsandbox/')))\n"
    )
    assert run.returncode == 0, run.stderr
    first, second = run.stdout.splitlines()
    assert first == "[]"
    assert second == str(sorted(gym_ids.IDS))


@needs_hook
def test_the_installed_hook_is_this_source():
    assert (SITE / "_qsandbox_gymnasium.py").read_text() == Path(gym_ids.__file__).read_text()


def test_the_hook_registers_when_gymnasium_is_already_loaded_and_only_missing_ids():
    import gymnasium

    saved = {i: gymnasium.registry.pop(i) for i in list(gymnasium.registry) if i in gym_ids.IDS}
    try:
        gym_ids.install()
        assert set(gym_ids.IDS) <= set(gymnasium.registry)
        spec = gymnasium.spec("qsandbox/QiskitHumanEvalHard-v0")
        assert spec.entry_point == gym_ids.ENTRY_POINT
        assert spec.kwargs == {"source": "Qiskit/qiskit_humaneval_hard"}
        gym_ids.install()  # a second time changes nothing and says nothing
    finally:
        gymnasium.registry.update(saved)


def test_a_built_wheel_carries_the_hook_at_its_root(tmp_path):
    # Built from a copy: an in-tree build would leave build/ in the checkout.
    source = tmp_path / "source"
    for name in ("qsandbox_env", "agents"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "setup.py", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, source / name)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    (wheel,) = tmp_path.glob("qsandbox-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"qsandbox-gymnasium.pth", "_qsandbox_gymnasium.py"} <= names
    pth = zipfile.ZipFile(wheel).read("qsandbox-gymnasium.pth").decode()
    assert pth.startswith("import ") and pth.count("\n") == 1
