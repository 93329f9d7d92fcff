"""Programs that try to get reward without solving the task, or to reach outside the sandbox.

Each test is built so that a naive harness (a fresh ``python`` per program, exit status 0 = pass)
would award the program a pass: ``naive_passes`` checks that for every attack, so the test proves
the defence is needed. The Verifier must award none of them.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest

from qsandbox_env import Outcome, Task, Verifier
from qsandbox_env.program import assemble
from tests.conftest import program_task

# The honest answer would be a 2-qubit Bell circuit; every attack below returns something else.
STATE_TASK = program_task(
    "    from qiskit.quantum_info import Statevector\n"
    "    from qiskit import QuantumCircuit\n"
    "    qc = candidate()\n"
    "    assert isinstance(qc, QuantumCircuit)\n"
    "    bell = QuantumCircuit(2)\n"
    "    bell.h(0)\n"
    "    bell.cx(0, 1)\n"
    "    assert Statevector(qc).equiv(Statevector(bell)), 'not a Bell state'\n",
    entry_point="make_bell",
)
WRONG_CIRCUIT = (
    "from qiskit import QuantumCircuit\ndef make_bell():\n    return QuantumCircuit(2)\n"
)
VALUE_TASK = program_task("    assert candidate() == 42, 'expected 42'\n", entry_point="answer")
# Program text shared by the forgery attacks: write a would-be report line to every descriptor.
FORGE = (
    "import os, sys\n"
    "def forge(line):\n"
    "    for fd in range(3, 300):\n"
    "        try:\n"
    "            os.write(fd, line)\n"
    "        except OSError:\n"
    "            pass\n"
)


def naive_passes(task: Task, code: str, env: dict | None = None) -> bool:
    """What a plain harness says: run the program in a fresh interpreter, exit status 0 = pass."""
    source = assemble(task, code).source + f"\ncheck({task.entry_point})\n"
    proc = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, timeout=120, env=env, cwd="/"
    )
    return proc.returncode == 0


def assert_fooled_naive_not_us(verifier, task, code, *, expected=None, env=None):
    assert naive_passes(task, code, env), "the attack does not even fool a naive harness"
    verdict = verifier.verify(task, code)
    assert not verdict.passed, verdict
    assert verdict.reward == 0.0
    if expected is not None:
        assert verdict.outcome is expected, (verdict.outcome, verdict.detail)
    return verdict


# -- ending the process early ----------------------------------------------------------------
def test_sys_exit_zero_at_module_level(verifier):
    assert_fooled_naive_not_us(
        verifier, VALUE_TASK, "import sys\nsys.exit(0)\n", expected=Outcome.ERROR
    )


def test_sys_exit_zero_inside_the_test(verifier):
    code = "def answer():\n    raise SystemExit(0)\n"
    verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.ERROR)
    assert verdict.error_type == "SystemExit"


def test_os_exit_zero(verifier):
    code = "import os\ndef answer():\n    os._exit(0)\n"
    assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.EXITED)


def test_atexit_handler_that_rewrites_the_exit_status(verifier):
    code = "import atexit, os\natexit.register(lambda: os._exit(0))\ndef answer():\n    return 41\n"
    assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.FAILED)


def test_keyboard_interrupt_swallowed_by_an_excepthook(verifier):
    code = (
        "import sys, os\nsys.excepthook = lambda *a: os._exit(0)\n"
        "def answer():\n    raise KeyboardInterrupt\n"
    )
    assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.ERROR)


def test_killing_the_process_group(verifier):
    code = "import os, signal\ndef answer():\n    os.killpg(0, signal.SIGKILL)\n"
    assert not verifier.verify(VALUE_TASK, code).passed
    assert verifier.verify(VALUE_TASK, "def answer():\n    return 42\n").passed


def test_killing_the_parent_cannot_reach_the_verifier(verifier):
    code = (
        "import os, signal\ndef answer():\n"
        "    for pid in (os.getppid(), 1):\n"
        "        try:\n            os.kill(pid, signal.SIGKILL)\n"
        "        except OSError:\n            pass\n"
        "    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.FAILED
    assert verifier.verify(VALUE_TASK, "def answer():\n    return 42\n").passed


# -- forging the report ----------------------------------------------------------------------
def test_writing_fake_pass_reports_to_every_descriptor(verifier):
    code = FORGE + (
        "import json\n"
        "forge(b'P ' + b'0' * 32 + b'\\n')\n"
        "forge(b'R ' + json.dumps({'outcome': 'passed', 'detail': '', 'error_type': ''}).encode()\n"
        "      + b'\\n')\n"
        "def answer():\n    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.FAILED


def test_calling_the_harness_pass_path_directly(verifier):
    code = (
        "import sys\n"
        "from qsandbox_env.sandbox import harness\n"
        "def answer():\n"
        "    harness._report_pass()\n"
        "    sys.audit('qsandbox.finish', 'line')\n"
        "    sys.audit('qsandbox.finish', 'pass')\n"
        "    return 41\n"
    )
    assert verifier.verify(VALUE_TASK, code).outcome is Outcome.FAILED


def test_rigged_string_passed_to_the_harness_audit_event(verifier):
    # Its __eq__ would run inside the audit hook and could read the pass line from the hook's
    # frames, if the hook ever compared it.
    code = FORGE + (
        "class Evil(str):\n"
        "    __hash__ = str.__hash__\n"
        "    def __eq__(self, other):\n"
        "        frame = sys._getframe(1)\n"
        "        while frame is not None:\n"
        "            for value in list(frame.f_locals.values()):\n"
        "                if isinstance(value, bytes) and value.startswith(b'P '):\n"
        "                    forge(value)\n"
        "            frame = frame.f_back\n"
        "        return str.__eq__(self, other)\n"
        "def answer():\n"
        "    for word in ('pass', 'line', 'arm', 'classes'):\n"
        "        sys.audit('qsandbox.finish', Evil(word))\n"
        "    compile('1', Evil('/program.py'), 'eval')\n"
        "    return 41\n"
    )
    assert verifier.verify(VALUE_TASK, code).outcome is Outcome.FAILED


def test_searching_every_frame_for_the_token(verifier):
    code = FORGE + (
        "def answer():\n"
        "    frame = sys._getframe()\n"
        "    while frame is not None:\n"
        "        for value in list(frame.f_locals.values()):\n"
        "            found = value if isinstance(value, list) else [value]\n"
        "            for item in found:\n"
        "                if isinstance(item, bytes) and len(item) == 16:\n"
        "                    forge(b'P ' + item.hex().encode() + b'\\n')\n"
        "        frame = frame.f_back\n"
        "    return 41\n"
    )
    assert verifier.verify(VALUE_TASK, code).outcome is Outcome.FAILED


def test_searching_the_heap_with_gc_for_the_pass_line(verifier):
    code = FORGE + (
        "import gc\n"
        "def answer():\n"
        "    for obj in gc.get_objects():\n"
        "        if type(obj).__name__ == 'cell':\n"
        "            try:\n"
        "                value = obj.cell_contents\n"
        "            except ValueError:\n"
        "                continue\n"
        "            if isinstance(value, bytes) and value.startswith(b'P '):\n"
        "                forge(value)\n"
        "    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED
    assert verdict.detail == "the program used gc.get_objects, which the sandbox refuses"


def test_reading_the_process_memory_is_refused(verifier):
    code = "import os\nos.symlink('/proc/self/mem', 'memory-link')\ndef answer():\n    return 42\n"
    assert verifier.verify(VALUE_TASK, code).outcome is Outcome.TAMPERED
    for path in ("/proc/self/mem", "/proc/self/task/../mem", "/dev/fd/../mem"):
        code = f"def answer():\n    open({path!r}, 'rb').close()\n    return 42\n"
        verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.TAMPERED)
        assert verdict.detail == "the program tried to read its own memory", verdict.detail


@pytest.mark.parametrize(
    "refused",
    ["import ctypes; ctypes.string_at(id(1), 8)", "import gc; gc.get_referrers(1)"],
)
def test_a_refusal_hands_out_no_traceback_into_the_audit_hook(verifier, refused):
    # A refusal raised inside the audit hook would carry the hook's frames in its traceback, and
    # with them the closure that holds the pass line; the program would print it to every
    # descriptor. The process ends at the refusal instead.
    code = FORGE + (
        "def steal():\n"
        "    try:\n"
        f"        {refused}\n"
        "    except PermissionError as error:\n"
        "        tb = error.__traceback__\n"
        "        while tb is not None:\n"
        "            for value in list(tb.tb_frame.f_locals.values()):\n"
        "                for cell in getattr(value, '__closure__', None) or ():\n"
        "                    try:\n"
        "                        content = cell.cell_contents\n"
        "                    except ValueError:\n"
        "                        continue\n"
        "                    if type(content) is bytes and content.startswith(b'P '):\n"
        "                        forge(content)\n"
        "            tb = tb.tb_next\n"
        "steal()\n"
        "def answer():\n"
        "    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED
    assert verdict.detail.endswith("which the sandbox refuses")


def test_rebuilding_the_harness_with_other_globals(verifier):
    code = (
        "import types\n"
        "from qsandbox_env.sandbox import harness\n"
        "def answer():\n"
        "    fake = types.FunctionType(harness.run.__code__, dict(vars(harness)))\n"
        "    return 42\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED
    assert "reached into the test harness" in verdict.detail


# -- rewriting what the test relies on -----------------------------------------------------
def test_monkeypatched_statevector_equiv(verifier):
    code = (
        "from qiskit.quantum_info import Statevector\n"
        "Statevector.equiv = lambda self, other, *a, **k: True\n" + WRONG_CIRCUIT
    )
    verdict = assert_fooled_naive_not_us(verifier, STATE_TASK, code, expected=Outcome.TAMPERED)
    assert "Statevector.equiv was replaced" in verdict.detail


def test_monkeypatched_builtin_isinstance(verifier):
    task = program_task(
        "    from qiskit import QuantumCircuit\n"
        "    qc = candidate()\n"
        "    assert isinstance(qc, QuantumCircuit)\n"
        "    assert qc.num_qubits == 2\n",
        entry_point="make_bell",
    )
    code = (
        "import builtins\nfrom qiskit import QuantumCircuit\n"
        "real = builtins.isinstance\n"
        "builtins.isinstance = lambda o, c: c is QuantumCircuit or real(o, c)\n"
        "class Shape:\n    num_qubits = 2\n"
        "def make_bell():\n    return Shape()\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.TAMPERED)
    assert "builtins.isinstance was replaced" in verdict.detail


def test_monkeypatching_with_setattr(verifier):
    code = (
        "from qiskit.quantum_info import Statevector\n"
        "setattr(Statevector, 'equiv', lambda *a, **k: True)\n" + WRONG_CIRCUIT
    )
    assert_fooled_naive_not_us(verifier, STATE_TASK, code, expected=Outcome.TAMPERED)


def test_rewriting_a_library_function_code_object(verifier):
    code = (
        "from qiskit.quantum_info import Statevector\n"
        "Statevector.equiv.__code__ = (lambda self, other, rtol=None, atol=None: True).__code__\n"
        + WRONG_CIRCUIT
    )
    assert_fooled_naive_not_us(verifier, STATE_TASK, code, expected=Outcome.TAMPERED)


def test_replacing_a_module_in_sys_modules(verifier):
    code = (
        "import sys, types\n"
        "import qiskit.quantum_info as real\n"
        "fake = types.ModuleType('qiskit.quantum_info')\n"
        "class Statevector:\n"
        "    def __init__(self, *a, **k): pass\n"
        "    def equiv(self, other): return True\n"
        "fake.Statevector = Statevector\n"
        "sys.modules['qiskit.quantum_info'] = fake\n" + WRONG_CIRCUIT
    )
    assert_fooled_naive_not_us(verifier, STATE_TASK, code, expected=Outcome.TAMPERED)


def test_disabling_the_tamper_checks_themselves(verifier):
    code = (
        "from qiskit.quantum_info import Statevector\n"
        "from qsandbox_env.sandbox import guard\n"
        "guard.Snapshot.changes = lambda self, limit=5: []\n"
        "guard.rigged_comparisons = lambda classes, report: None\n"
        "Statevector.equiv = lambda self, other, *a, **k: True\n" + WRONG_CIRCUIT
    )
    verdict = verifier.verify(STATE_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED
    assert "changed the sandbox's own modules" in verdict.detail


def test_object_whose_eq_is_always_true(verifier):
    code = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def answer():\n    return Anything()\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.TAMPERED)
    assert "Anything.__eq__" in verdict.detail


def test_int_subclass_with_rigged_eq(verifier):
    code = (
        "Rigged = type('Rigged', (int,), {'__eq__': lambda s, o: 1, '__hash__': int.__hash__})\n"
        "def answer():\n    return Rigged(0)\n"
    )
    assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.TAMPERED)


def test_trace_function_that_jumps_over_the_assertion(verifier):
    code = (
        "import sys\n"
        "def tracer(frame, event, arg):\n"
        "    if frame.f_code.co_name == 'check':\n"
        "        def local(frame, event, arg):\n"
        "            if event == 'line' and frame.f_lineno == frame.f_code.co_firstlineno + 2:\n"
        "                frame.f_lineno += 1  # jump over the assertion\n"
        "            return local\n"
        "        return local\n"
        "sys.settrace(tracer)\n"
        "def answer():\n    return 41\n"
    )
    task = program_task(
        "    value = candidate()\n    assert value == 42, 'expected 42'\n    pass\n",
        entry_point="answer",
    )
    assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.TAMPERED)


def test_rebinding_a_name_the_test_uses_while_it_runs(verifier):
    task = Task(
        "bind/0",
        "from qiskit.quantum_info import Statevector\nfrom qiskit import "
        "QuantumCircuit\ndef make_bell():\n",
        STATE_TASK.test.replace("    from qiskit.quantum_info import Statevector\n", "").replace(
            "\ncheck(make_bell)\n", ""
        ),
        "make_bell",
    )
    code = (
        "    class Fake:\n        def __init__(self, *a): pass\n"
        "        def equiv(self, other): return True\n"
        "    globals()['Statevector'] = Fake\n"
        "    return QuantumCircuit(2)\n"
    )
    assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.TAMPERED)


def test_honest_solutions_are_not_flagged(verifier):
    honest = (
        "from qiskit import QuantumCircuit\nimport functools\n"
        "class Wrapper:\n    def __init__(self, v): self.v = v\n"
        "    def __eq__(self, other):\n"
        "        return isinstance(other, Wrapper) and other.v == self.v\n"
        "@functools.lru_cache\ndef make_bell():\n    qc = QuantumCircuit(2)\n    qc.h(0)\n"
        "    qc.cx(0, 1)\n    assert Wrapper(1) == Wrapper(1)\n    return qc\n"
    )
    verdict = verifier.verify(STATE_TASK, honest)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


# -- reaching outside ------------------------------------------------------------------------
def test_no_network_not_even_loopback(verifier):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    code = (
        "import socket\ndef answer():\n"
        f"    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()\n"
        "    return 42\n"
    )
    try:
        verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.ERROR)
    finally:
        server.close()
    assert verdict.error_type in {"ConnectionRefusedError", "OSError", "TimeoutError"}


@pytest.mark.parametrize("place", ["project", "tmp", "home"])
def test_no_writes_outside_the_private_directory(verifier, tmp_path, place):
    target = {
        "project": pathlib.Path(__file__).parent / f".escape-{os.getpid()}",
        "tmp": tmp_path / "escape.txt",
        "home": pathlib.Path.home() / f".qsandbox-escape-{os.getpid()}",
    }[place]
    code = f"def answer():\n    open({str(target)!r}, 'w').write('x')\n    return 42\n"
    try:
        assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.ERROR)
        target.unlink()  # the naive run wrote it
        assert not target.exists()
        verifier.verify(VALUE_TASK, code)
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_private_directory_is_writable_and_fresh_each_time(verifier):
    code = (
        "import os\ndef answer():\n"
        "    assert not os.path.exists('left-behind.txt')\n"
        "    open('left-behind.txt', 'w').write('x')\n"
        "    return 42\n"
    )
    assert verifier.verify(VALUE_TASK, code).passed
    assert verifier.verify(VALUE_TASK, code).passed
    assert all(v.passed for v in verifier.verify_many([(VALUE_TASK, code)] * 4))


def test_home_is_fresh_and_writable_for_every_program(verifier):
    code = (
        "import os\ndef answer():\n"
        "    home = os.path.expanduser('~')\n"
        "    assert os.listdir(home) == [], os.listdir(home)\n"
        "    os.makedirs(os.path.join(home, '.qiskit'))\n"
        "    return 42\n"
    )
    assert all(v.passed for v in verifier.verify_many([(VALUE_TASK, code)] * 4))


def test_patched_modules_do_not_leak_into_the_next_program(verifier):
    patch = "import numpy\nnumpy.pi = 3\ndef answer():\n    return 41\n"
    check = "import numpy\ndef answer():\n    return 42 if numpy.pi != 3 else 0\n"
    for _ in range(3):
        verifier.verify(VALUE_TASK, patch)
    assert all(v.passed for v in verifier.verify_many([(VALUE_TASK, check)] * 4))


def test_secrets_in_the_environment_are_not_visible(monkeypatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", "s3cret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret-key")
    task = program_task(
        "    assert candidate() == ('s3cret-token', 's3cret-key')\n", entry_point="leak"
    )
    code = (
        "import os\ndef leak():\n"
        "    return os.environ.get('QISKIT_IBM_TOKEN'), os.environ.get('AWS_SECRET_ACCESS_KEY')\n"
    )
    with Verifier(parallelism=1, preload=()) as v:
        assert_fooled_naive_not_us(v, task, code, expected=Outcome.FAILED, env=dict(os.environ))


def test_saved_credentials_in_home_are_hidden(verifier):
    secret = pathlib.Path.home() / ".qiskit" / f"qsandbox-test-{os.getpid()}.json"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text('{"token": "saved-secret"}')
    code = (
        f"def answer():\n    return 42 if 'saved-secret' in open({str(secret)!r}).read() else 0\n"
    )
    try:
        assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.ERROR)
    finally:
        secret.unlink()


def test_fork_bomb_stops_at_the_process_cap(verifier):
    code = (
        "import os, time\ndef answer():\n"
        "    pids = []\n"
        "    for _ in range(300):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n            time.sleep(30)\n            os._exit(0)\n"
        "        pids.append(pid)\n"
        "    return 42\n"
    )
    task = program_task("    assert candidate() == 42\n", entry_point="answer", timeout=20)
    started = time.monotonic()
    verdict = verifier.verify(task, code)
    assert not verdict.passed
    assert verdict.error_type == "BlockingIOError", verdict.detail
    assert time.monotonic() - started < 20


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(pid))
    return found


def test_daemons_are_killed_when_the_program_ends(verifier):
    marker = f"qsandbox-daemon-{os.getpid()}"
    code = (
        "import subprocess, os\ndef answer():\n"
        f"    subprocess.Popen(['/bin/sh', '-c', 'exec -a {marker} sleep 300'],\n"
        "                     start_new_session=True)\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        f"        os.execv('/bin/sh', ['/bin/sh', '-c', 'exec -a {marker} sleep 301'])\n"
        "    return 42\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.passed, verdict.detail
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == []
