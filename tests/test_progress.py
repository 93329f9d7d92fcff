"""Progress bars (tqdm) on a terminal, and nothing at all into a file or a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from qsandbox_env.progress import Progress
from tests.conftest import ROOT


def run_on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run ``python -m qsandbox_env ARGV`` with stdout and stderr on a pseudo-terminal."""
    leader, follower = pty.openpty()
    # A terminal 120 columns wide, as a real one reports its size.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "qsandbox_env", *argv],
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=ROOT,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=600), b"".join(chunks).decode(errors="replace")


def test_tasks_check_draws_a_bar_on_a_terminal_and_nothing_into_a_pipe():
    argv = ["tasks", "check", "procedural", "--n", "6", "--seed", "3", "--workers", "2"]
    status, screen = run_on_a_terminal(argv)
    assert status == 0, screen
    assert "check: 100%" in screen and "6/6" in screen and "pass 100.0%" in screen, screen
    piped = subprocess.run(
        [sys.executable, "-m", "qsandbox_env", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=600,
    )
    assert piped.returncode == 0, piped.stderr
    assert "%|" not in piped.stderr and "6/6" not in piped.stderr, piped.stderr
    assert "checked 6 canonical solutions: 6 passed" in piped.stdout


def test_a_resumed_count_starts_where_it_was_and_results_print_above_the_bar(capsys):
    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Progress(10, done=4, passed=2, made=6, stream=screen, label="bench")
    bar.verified(True)
    bar.write("step 5: a result line")
    bar.close()
    assert "5/10" in screen.text and "6 generated, pass 60.0%" in screen.text, screen.text
    assert capsys.readouterr().out == "step 5: a result line\n"


def test_a_broken_stream_never_stops_the_work():
    class Broken:
        def write(self, text: str) -> None:
            raise OSError("the terminal went away")

        def flush(self) -> None:
            raise OSError("the terminal went away")

        def isatty(self) -> bool:
            return True

    bar = Progress(3, stream=Broken())
    for _ in range(3):
        bar.verified(True)
    bar.close()
    assert bar.done == 3 and bar.passed == 3
