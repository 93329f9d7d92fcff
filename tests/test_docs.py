"""The manual builds without a broken link or a missing symbol, and the README stays short.

The examples of README.md and docs/*.md run as tests of their own (see the root conftest.py).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"


def test_the_manual_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e .[docs])")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_page_of_docs_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    missing = sorted(page for page in pages if page not in nav)
    assert not missing, f"add these pages to mkdocs.yml's nav: {missing}"


def test_the_readme_stays_short():
    lines = README.read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move the detail to a page in docs/"


def test_the_readmes_links_point_at_files_that_exist():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local, "the README links to no page of the manual"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


def test_the_layout_page_names_every_module():
    layout = (ROOT / "docs" / "layout.md").read_text()
    modules = [
        path
        for package in ("qsandbox_env", "agents")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    ]
    assert modules
    missing = sorted(
        str(path.relative_to(ROOT)) for path in modules if f"`{path.name}`" not in layout
    )
    assert not missing, f"docs/layout.md does not name: {missing}"
