"""The manual builds without a broken link or a missing symbol, and the README's examples run."""

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


def python_examples() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.S | re.M)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_examples())))
def test_the_readmes_python_examples_run_as_written(index, tmp_path):
    example = python_examples()[index]
    if "agents.trl_adapter" in example:
        pytest.importorskip("trl", reason="the grpo extra is not installed")
    if "agents.rollout" in example:
        pytest.importorskip("ray", reason="the ray extra is not installed")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", example],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, f"example {index}:\n{example}\n{proc.stdout}\n{proc.stderr}"
    for expected in re.findall(r"# (\d+(?: of \d+)?)$", example, re.M):
        assert expected in proc.stdout, (expected, proc.stdout)
