"""Subcommands from other distributions, through the ``qsandbox.commands`` entry points.

Each test writes a real distribution (a ``*.dist-info`` with ``entry_points.txt``, and its module)
into a temporary directory and runs ``python -m qsandbox_env`` with that directory on PYTHONPATH,
as an installed third-party package would be found.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

HELLO_MODULE = """\
from qsandbox_env.cli import Command


def configure(parser):
    parser.add_argument("name")


def run(args):
    print(f"hello, {args.name}")
    return 0


COMMAND = Command("hello", "greet someone", configure, run)
"""


def write_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(f"[qsandbox.commands]\n{entry_points}", encoding="utf-8")
    for path, text in modules.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")


def qsandbox(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO_ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "qsandbox_env", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
        check=False,
    )


def test_a_third_party_distribution_adds_a_subcommand(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "hello-plugin",
        "hello = hello_plugin.cli:COMMAND\n",
        {"hello_plugin/__init__.py": "", "hello_plugin/cli.py": HELLO_MODULE},
    )
    result = qsandbox(tmp_path, "hello", "world")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello, world\n", "")
    assert "greet someone" in qsandbox(tmp_path, "--help").stdout


def test_a_command_that_fails_to_load_says_why_and_the_others_still_work(tmp_path: Path) -> None:
    write_distribution(
        tmp_path,
        "broken-plugin",
        "broken = broken_plugin.cli:COMMAND\n",
        {"broken_plugin/__init__.py": "", "broken_plugin/cli.py": "import not_installed_here\n"},
    )
    broken = qsandbox(tmp_path, "broken", "--any", "argument")
    assert (broken.returncode, broken.stdout) == (2, "")
    assert broken.stderr == (
        "qsandbox: error: command 'broken' could not be loaded (entry point broken = "
        "broken_plugin.cli:COMMAND in broken-plugin 1.0): ModuleNotFoundError: No module named "
        "'not_installed_here'\n"
    )
    listing = qsandbox(tmp_path, "tasks", "list", "bundled")
    assert (listing.returncode, listing.stderr) == (0, "")
    assert listing.stdout.startswith("qsandbox/")
    assert "unavailable: ModuleNotFoundError" in qsandbox(tmp_path, "--help").stdout
