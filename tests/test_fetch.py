"""`qsandbox tasks fetch`: the official Qiskit-HumanEval files, checked, from a real HTTP server."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qsandbox_env.cli import main
from qsandbox_env.fetch import DATASETS, MEASURED_REF, FetchError, fetch
from tests.conftest import humaneval_path

HARD_RECORD = {
    "task_id": "qiskitHumanEval/0",
    "prompt": "Return the number 42. You must implement this using a function named `answer`.",
    "canonical_solution": "def answer():\n    return 42\n",
    "test": "def check(candidate):\n    assert candidate() == 42\n\ncheck(answer)\n",
    "entry_point": "answer",
    "difficulty_scale": "basic",
}


@pytest.fixture
def mirror(tmp_path):
    """A raw-file server laid out as the official repository's: <ref>/dataset/<file>."""
    root = tmp_path / "mirror"
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def publish(root, name: str, data: bytes, ref: str = MEASURED_REF) -> None:
    folder = root / ref / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DATASETS[name].filename).write_bytes(data)


def test_the_measured_normal_set_is_fetched_and_its_checksum_verified(mirror, tmp_path, capsys):
    root, url = mirror
    official = humaneval_path().read_bytes()
    publish(root, "qiskit-humaneval", official)
    out = tmp_path / "he.json"
    args = ["tasks", "fetch", "qiskit-humaneval", "--out", str(out), "--base-url", url]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "151 tasks" in printed and "measured on (5327d8e)" in printed
    assert out.read_bytes() == official
    # Again: nothing to do, and it says so.
    assert main(args) == 0
    assert "already there" in capsys.readouterr().out


def test_a_file_that_differs_from_the_pinned_one_is_not_written(mirror, tmp_path):
    root, url = mirror
    changed = humaneval_path().read_bytes().replace(b"Statevector", b"StateVector", 1)
    publish(root, "qiskit-humaneval", changed)
    out = tmp_path / "he.json"
    with pytest.raises(FetchError, match="is not the pinned 2d595cfe"):
        fetch("qiskit-humaneval", out, base_url=url)
    assert not out.exists()


def test_a_different_file_already_at_the_destination_is_left_alone(mirror, tmp_path, capsys):
    root, url = mirror
    publish(root, "qiskit-humaneval-hard", json.dumps([HARD_RECORD]).encode())
    out = tmp_path / "hard.json"
    out.write_text("my own notes")
    args = ["tasks", "fetch", "qiskit-humaneval-hard", "--out", str(out), "--base-url", url]
    assert main(args) != 0
    assert "already exists and differs" in capsys.readouterr().err
    assert out.read_text() == "my own notes"


def test_the_hard_set_has_no_pinned_checksum_and_says_so(mirror, tmp_path, capsys):
    root, url = mirror
    data = json.dumps([HARD_RECORD]).encode()
    publish(root, "qiskit-humaneval-hard", data, ref="main")
    out = tmp_path / "hard.json"
    args = ["tasks", "fetch", "qiskit-humaneval-hard", "--ref", "main", "--out", str(out)]
    assert main([*args, "--base-url", url]) == 0
    printed = capsys.readouterr().out
    assert hashlib.sha256(data).hexdigest() in printed and "no checksum is pinned" in printed
    assert main(["tasks", "list", str(out)]) == 0  # a task file as any other
    assert "qiskitHumanEval/0" in capsys.readouterr().out


def test_what_the_server_says_is_in_the_error(mirror, tmp_path):
    root, url = mirror
    with pytest.raises(FetchError, match="answered 404"):
        fetch("qiskit-humaneval", tmp_path / "x.json", ref="no-such-ref", base_url=url)
    publish(root, "qiskit-humaneval-hard", b"<html>rate limited</html>", ref="main")
    with pytest.raises(FetchError, match="not a task file"):
        fetch("qiskit-humaneval-hard", tmp_path / "x.json", ref="main", base_url=url)
    assert not (tmp_path / "x.json").exists()
