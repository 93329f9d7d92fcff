"""Runs the examples of README.md and docs/*.md as tests (Sybil).

Each page's examples run in order in one namespace (a page's later examples may use what its
earlier ones made), in a fresh working directory that holds the Qiskit-HumanEval file under the
name the examples use, when the shared copy is present. Python blocks run in this process;
``bash`` blocks run in ``bash -euo pipefail``. A block that needs a GPU, a network, an account or a
model download is preceded by ``<!-- skip: next "the reason" -->``; one that needs the
Qiskit-HumanEval file by ``<!-- skip: next if(HUMANEVAL_MISSING, reason="...") -->``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent
HUMANEVAL = pathlib.Path(
    os.environ.get(
        "QSANDBOX_HUMANEVAL",
        ROOT.parent / "shared/datasets/qiskit_humaneval/dataset_qiskit_test_human_eval.json",
    )
)
BASH_TIMEOUT = 900


def _setup(namespace: dict[str, Any]) -> None:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="qsandbox-docs-"))
    if HUMANEVAL.is_file():
        (workdir / "dataset_qiskit_test_human_eval.json").symlink_to(HUMANEVAL)
    namespace["HUMANEVAL_MISSING"] = not HUMANEVAL.is_file()
    namespace["_docs_previous_cwd"] = os.getcwd()
    namespace["_docs_workdir"] = workdir
    os.chdir(workdir)


def _teardown(namespace: dict[str, Any]) -> None:
    import shutil

    os.chdir(namespace["_docs_previous_cwd"])
    shutil.rmtree(namespace["_docs_workdir"], ignore_errors=True)


def _run_bash(example: Any) -> str | None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", str(example.parsed)],
        cwd=example.namespace["_docs_workdir"],
        capture_output=True,
        text=True,
        timeout=BASH_TIMEOUT,
        env=env,
    )
    if proc.returncode != 0:
        return f"exit status {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return None


try:
    from sybil import Sybil
    from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser
except ImportError:  # the dev extra is not installed: the examples are not collected
    pass
else:
    pytest_collect_file = Sybil(
        parsers=[
            SkipParser(),
            PythonCodeBlockParser(),
            CodeBlockParser(language="bash", evaluator=_run_bash),
        ],
        patterns=["README.md", "docs/*.md"],
        setup=_setup,
        teardown=_teardown,
    ).pytest()
