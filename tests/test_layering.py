"""The packages depend one way: ``agents`` uses ``qsandbox_env``, never the other way round.

``qsandbox_env`` learns of ``agents`` (its ``bench`` and ``train`` subcommands) only through the
``qsandbox.commands`` entry points, and the sandbox finds the project's other installed packages
from its ``*.dist-info``, so no module of ``qsandbox_env`` names ``agents``, by import or by string.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from qsandbox_env.sandbox.isolation import project_packages

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "qsandbox_env"
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))
AGENTS = re.compile(r"\bagents\b")


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes: prose about the packages, not references to them."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def agents_references(source: str) -> list[str]:
    """Where ``source`` imports ``agents`` or names it in a string (docstrings aside)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            modules = []
        found += [f"line {node.lineno}: import {m}" for m in modules if m.split(".")[0] == "agents"]
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and AGENTS.search(node.value)
        ):
            found.append(f"line {node.lineno}: string {node.value!r}")
    return found


def test_the_scan_finds_an_import_and_a_module_named_in_a_string() -> None:
    source = (
        '"""A docstring may mention agents."""\n'
        "import agents.policy\n"
        'MODULES = ("agents.bench.cli",)\n'
    )
    assert agents_references(source) == [
        "line 2: import agents.policy",
        "line 3: string 'agents.bench.cli'",
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE_DIR)))
def test_no_module_of_qsandbox_env_imports_or_names_agents(path: Path) -> None:
    assert agents_references(path.read_text(encoding="utf-8")) == []


def _dist_info(root: Path, name: str, files: dict[str, str]) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    for file_name, text in files.items():
        (info / file_name).write_text(text, encoding="utf-8")


def test_the_sandbox_hides_every_top_level_package_of_the_projects_distribution(
    tmp_path: Path,
) -> None:
    _dist_info(tmp_path, "qsandbox", {"top_level.txt": "agents\nqsandbox_env\n"})
    _dist_info(tmp_path, "numpy", {"top_level.txt": "numpy\n"})
    assert project_packages(str(tmp_path)) == ["agents", "qsandbox_env"]


def test_without_top_level_txt_the_record_says_what_the_distribution_installed(
    tmp_path: Path,
) -> None:
    record = (
        "qsandbox_env/__init__.py,sha256=x,1\nextra_pkg/cli.py,sha256=y,2\n"
        "qsandbox-1.0.dist-info/RECORD,,\n../../../bin/qsandbox,sha256=z,3\n"
    )
    _dist_info(tmp_path, "qsandbox", {"RECORD": record})
    assert project_packages(str(tmp_path)) == ["extra_pkg", "qsandbox_env"]
