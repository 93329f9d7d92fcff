"""One template preloads; every zygote of a pool is a fork of it, contained on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import warnings

import pytest

from qsandbox_env import Outcome, Task, Verifier
from qsandbox_env.sandbox.pool import _Forked
from tests.conftest import program_task

ADD = Task(
    "add/0", "def add(a, b):\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n", "add"
)
SLEEPY = Task("sleep/0", "import time\ndef f():\n", "def check(c):\n    assert c() == 1\n", "f")
# As root no user namespace is needed (programs run as unprivileged uids instead).
NAMESPACES = ("mnt", "net", "pid", "ipc", "uts") + (("user",) if os.geteuid() else ())


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def _zygotes(verifier: Verifier) -> dict[str, int]:
    """Each zygote's innermost process (the one that forks programs), by worker and role."""
    found = {}
    for number, handle in enumerate(verifier._pool.handles):
        for process in (handle.candidate, handle.judge):
            launcher = process.proc.pid
            with open(f"/proc/{launcher}/task/{launcher}/children") as children:
                inner = [int(pid) for pid in children.read().split()]
            found[f"{number}/{process.role}"] = inner[0] if inner else launcher
    return found


def _descriptors(pid: int) -> set[str]:
    """The pipes and sockets a process holds, as ``pipe:[inode]`` / ``socket:[inode]``."""
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith(("pipe:", "socket:")):
            held.add(target)
    return held


@pytest.fixture(scope="module")
def three():
    with Verifier(3, preload=("numpy",)) as verifier:
        yield verifier


def test_every_zygote_is_forked_from_the_one_template(three):
    template = three._pool.template
    assert template is not None and template.usable()
    for handle in three._pool.handles:
        for process in (handle.candidate, handle.judge):
            assert isinstance(process.proc, _Forked)
            assert _parent(process.proc.pid) == template.pid
            assert process.info["template"] == template.pid


def test_the_preload_is_imported_once_for_all_workers(tmp_path, monkeypatch):
    # Without isolation every process may write here: a zygote that imported the module itself
    # would add a line of its own.
    log = tmp_path / "imports.log"
    (tmp_path / "qsbx_counted.py").write_text(
        f"import os\nwith open({str(log)!r}, 'a') as f:\n    f.write(f'{{os.getpid()}}\\n')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # that isolation is off (said once per process)
        verifier = Verifier(4, preload=("qsbx_counted",), isolate=False)
    with verifier:
        assert log.read_text().split() == [str(verifier._pool.template.pid)]
        assert all(v.passed for v in verifier.verify_many([(ADD, "    return a + b\n")] * 8))


def test_each_zygote_has_namespaces_of_its_own(three):
    zygotes = _zygotes(three)
    assert len(zygotes) == 6
    template = three._pool.template.pid
    for kind in NAMESPACES:
        seen = {os.readlink(f"/proc/{pid}/ns/{kind}") for pid in zygotes.values()}
        assert len(seen) == len(zygotes), f"zygotes share a {kind} namespace"
        assert os.readlink(f"/proc/{template}/ns/{kind}") not in seen


def test_no_zygote_holds_the_template_socket_or_another_workers_channel(three):
    template = three._pool.template.pid
    templates = _descriptors(template)
    assert templates, "the template holds its socket"
    held = {name: _descriptors(pid) for name, pid in _zygotes(three).items()}
    for name, channels in held.items():
        assert not channels & templates, f"{name} holds the template's socket"
        for other, theirs in held.items():
            if other != name:
                assert not channels & theirs, f"{name} and {other} share a channel"


def test_workers_verify_correctly_and_leave_nothing_for_each_other(three):
    leave = (
        "import os\n"
        "def answer():\n"
        "    open(os.path.join(os.environ['HOME'], 'left'), 'w').write('x')\n"
        "    open('/dev/shm/left', 'w').write('x')\n"
        "    return 42\n"
    )
    look = (
        "import os\n"
        "def answer():\n"
        "    home = os.path.exists(os.path.join(os.environ['HOME'], 'left'))\n"
        "    return [home, os.path.exists('/dev/shm/left')]\n"
    )
    left = program_task("    assert candidate() == 42\n", entry_point="answer")
    clean = program_task("    assert candidate() == [False, False]\n", entry_point="answer")
    pairs = [(left, leave), (clean, look), (ADD, "    return a + b\n"), (ADD, "    return a - b\n")]
    verdicts = three.verify_many(pairs * 6)
    outcomes = [v.outcome for v in verdicts]
    assert outcomes == [Outcome.PASSED, Outcome.PASSED, Outcome.PASSED, Outcome.FAILED] * 6


def test_a_killed_zygote_is_forked_again_from_the_template():
    with Verifier(1, preload=()) as verifier:
        handle = verifier._pool.handles[0]
        first = handle.proc.pid
        killer = threading.Timer(0.7, handle.proc.kill)
        killer.start()
        verdict = verifier.verify(SLEEPY, "    time.sleep(2)\n    return 1\n")
        killer.join()
        assert verdict.passed, verdict.detail
        assert handle.proc.pid != first
        assert isinstance(handle.proc, _Forked)
        assert handle.info["template"] == verifier._pool.template.pid


def test_a_zygote_is_booted_afresh_once_the_template_has_died():
    with Verifier(1, preload=()) as verifier:
        template = verifier._pool.template
        template.proc.kill()
        template.proc.wait(timeout=10)
        handle = verifier._pool.handles[0]
        handle.proc.kill()
        verdict = verifier.verify(ADD, "    return a + b\n")
        assert verdict.passed, verdict.detail
        assert isinstance(handle.proc, subprocess.Popen)
        assert handle.info["template"] is None
        assert verifier.verify(ADD, "    return a - b\n").outcome is Outcome.FAILED


def test_close_leaves_no_process_and_no_work_root():
    verifier = Verifier(2, preload=())
    template = verifier._pool.template
    root = template.work_root
    assert os.path.isdir(root)
    pids = [template.pid, *_zygotes(verifier).values()]
    pids += [p.proc.pid for h in verifier._pool.handles for p in (h.candidate, h.judge)]
    assert verifier.verify(ADD, "    return a + b\n").passed
    verifier.close()
    deadline = time.monotonic() + 5
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []
    assert not os.path.exists(root)


def test_a_pool_that_ends_without_closing_leaves_no_template_and_no_work_root():
    script = (
        "import os\n"
        "from qsandbox_env import Verifier\n"
        "v = Verifier(1, preload=())\n"
        "print(v._pool.template.pid, v._pool.template.work_root, flush=True)\n"
        "os._exit(0)\n"
    )
    root_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root_dir}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    pid, root = done.stdout.split()
    deadline = time.monotonic() + 10
    while (os.path.exists(root) or _running(int(pid))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(int(pid)), "the template outlived its pool"
    assert not os.path.exists(root)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, reaped by whoever adopted it, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
