"""Programs that try to get reward without solving the task, or to reach outside the sandbox.

Each test is built so that a naive harness (a fresh ``python`` per program, exit status 0 = pass)
would award the program a pass: ``naive_passes`` checks that for every attack, so the test proves
the defence is needed. The Verifier must award none of them.
"""

from __future__ import annotations

import os
import pathlib
import secrets
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
    # The hook is the program's own, in its own process; replacing it is flagged.
    verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.TAMPERED)
    assert "sys.excepthook" in verdict.detail


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


# -- forging the verdict ---------------------------------------------------------------------
# The verdict is written by the judge, another process, to a descriptor the child never holds.
# What the child writes anywhere is its output or its answer, never a verdict.
PASSED_VERDICT = "{'outcome': 'passed', 'detail': '', 'error_type': ''}"


def test_writing_a_forged_verdict_to_every_other_descriptor_is_just_output(verifier):
    # Every descriptor but the channel to the judge: none of them carries a verdict.
    code = FORGE + (
        "import json, stat\n"
        "def answer():\n"
        "    line = json.dumps(" + PASSED_VERDICT + ").encode() + b'\\n'\n"
        "    for fd in range(0, 300):\n"
        "        try:\n"
        "            if stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "                continue\n"
        "            os.write(fd, b'P ' + b'0' * 32 + b'\\n' + line)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail)
    assert '"outcome": "passed"' in verdict.output  # it went to the program's own output


def test_writing_a_forged_verdict_into_the_channel_breaks_only_the_program(verifier):
    # Into the judge's channel too: a frame the judge cannot read ends the candidate's turn.
    code = FORGE + (
        "import json\n"
        "forge(b'P ' + b'0' * 32 + b'\\n')\n"
        "forge(json.dumps(" + PASSED_VERDICT + ").encode() + b'\\n')\n"
        "def answer():\n    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert not verdict.passed
    assert verdict.outcome in {Outcome.EXITED, Outcome.KILLED, Outcome.FAILED}, (
        verdict.outcome,
        verdict.detail,
    )


def test_running_the_judges_own_report_code_in_the_child_reports_nowhere(verifier):
    # The judge's module is importable in the child (the zygote loaded it), but the descriptor it
    # reports to exists only in the judge's process.
    code = (
        "import os, stat\n"
        "from qsandbox_env.sandbox import judge\n"
        "def answer():\n"
        "    for fd in range(0, 300):\n"
        "        try:\n"
        "            if not stat.S_ISSOCK(os.fstat(fd).st_mode):\n"
        "                judge._report(fd, " + PASSED_VERDICT + ")\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 41\n"
    )
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail)


def test_a_rigged_str_subclass_crosses_as_a_plain_str(verifier):
    # Its __eq__ would read the caller's frames and answer True; only its value reaches the judge.
    task = program_task("    assert candidate() == 'forty-two', 'wrong'\n", entry_point="answer")
    code = (
        "import sys\n"
        "class Evil(str):\n"
        "    __hash__ = str.__hash__\n"
        "    def __eq__(self, other):\n"
        "        return True\n"
        "    def __ne__(self, other):\n"
        "        return False\n"
        "def answer():\n"
        "    return Evil('forty-one')\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.FAILED)
    assert "wrong" in verdict.detail


# -- the test's text and expected value are not in the child's memory -----------------------
# The test holds a key the program cannot know; the program searches every place in its own
# process where the test would be if it ran there, and answers what it found. In one process
# (a naive harness, or the sandbox before the judge had its own process) each search finds it.
_FIND = (
    "import gc, linecache, os, re, sys\n"
    "PATTERN = re.compile(rb'QSBX-KEY-([0-9a-f]{16})')\n"
    "def _search(data):\n"
    "    match = PATTERN.search(data)\n"
    "    return match.group(0).decode() if match else None\n"
    "def _strings(values):\n"
    "    for value in values:\n"
    "        if isinstance(value, str):\n"
    "            found = _search(value.encode('utf-8', 'replace'))\n"
    "            if found:\n"
    "                return found\n"
    "def _regions():\n"
    "    with open('/proc/self/maps') as maps:\n"
    "        lines = maps.read().splitlines()\n"
    "    for line in lines:\n"
    "        parts = line.split()\n"
    "        path = parts[5] if len(parts) > 5 else ''\n"
    "        if parts[1] == 'rw-p' and not path.startswith(('[v', '/dev')):\n"
    "            start, end = (int(x, 16) for x in parts[0].split('-'))\n"
    "            yield start, end\n"
    "CHUNK = 1 << 24\n"
)
MEMORY_SEARCHES = {
    "frames": (
        "def scan():\n"
        "    frame = sys._getframe()\n"
        "    while frame is not None:\n"
        "        code = frame.f_code\n"
        "        found = _strings(code.co_consts) or _strings(frame.f_locals.values())\n"
        "        found = found or _strings(frame.f_globals.values())\n"
        "        if found:\n"
        "            return found\n"
        "        frame = frame.f_back\n"
    ),
    "functions of every module": (
        "def scan():\n"
        "    for entry in list(linecache.cache.values()):\n"
        "        found = _strings(entry[2]) if len(entry) > 2 else None\n"
        "        if found:\n"
        "            return found\n"
        "    for module in list(sys.modules.values()):\n"
        "        for value in list(getattr(module, '__dict__', {}).values()):\n"
        "            code = getattr(value, '__code__', None)\n"
        "            found = _strings(getattr(code, 'co_consts', ()))\n"
        "            if found:\n"
        "                return found\n"
    ),
    "gc.get_objects": (
        "def scan():\n"
        "    for obj in gc.get_objects():\n"
        "        code = getattr(obj, '__code__', None)\n"
        "        if code is not None and hasattr(code, 'co_consts'):\n"
        "            values = code.co_consts\n"
        "        elif isinstance(obj, dict):\n"
        "            values = list(obj.values())\n"
        "        elif isinstance(obj, (list, tuple)):\n"
        "            values = obj\n"
        "        else:\n"
        "            continue\n"
        "        found = _strings(values)\n"
        "        if found:\n"
        "            return found\n"
    ),
    "/proc/self/mem": (
        "def scan():\n"
        "    regions = list(_regions())\n"
        "    try:\n"
        "        mem = open('/proc/self/mem', 'rb', buffering=0)\n"
        "    except OSError as exc:\n"
        "        print('memory unreadable:', exc)\n"
        "        return None\n"
        "    with mem:\n"
        "        for start, end in regions:\n"
        "            for at in range(start, end, CHUNK):\n"
        "                try:\n"
        "                    mem.seek(at)\n"
        "                    data = mem.read(min(CHUNK + 64, end - at))\n"
        "                except OSError:\n"
        "                    continue\n"
        "                found = _search(data)\n"
        "                if found:\n"
        "                    return found\n"
    ),
    # No audited event at all: numpy reads any address it is handed.
    "numpy raw memory": (
        "import numpy as np\n"
        "class _Raw:\n"
        "    def __init__(self, start, size):\n"
        "        self.__array_interface__ = {\n"
        "            'data': (start, True), 'shape': (size,), 'typestr': '|u1', 'version': 3}\n"
        "def scan():\n"
        "    for start, end in list(_regions()):\n"
        "        for at in range(start, end, CHUNK):\n"
        "            found = _search(memoryview(np.asarray(_Raw(at, min(CHUNK + 64, end - at)))))\n"
        "            if found:\n"
        "                return found\n"
    ),
}
# The child sees these and says so (the verdict becomes tampered); the others it does not see.
FLAGGED_SEARCHES = {"gc.get_objects", "/proc/self/mem"}


@pytest.mark.parametrize("how", list(MEMORY_SEARCHES))
def test_the_tests_key_is_nowhere_in_the_childs_memory(verifier, how):
    key = f"QSBX-KEY-{secrets.token_hex(8)}"
    task = program_task(
        f"    expected = {key!r}\n    assert candidate() == expected, 'not the key'\n",
        entry_point="answer",
        timeout=90,
    )
    code = (
        _FIND + MEMORY_SEARCHES[how] + "def answer():\n"
        "    found = scan()\n"
        "    print('scan:', 'found' if found else 'not found', flush=True)\n"
        "    return found or 'not found'\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, task, code)
    expected = Outcome.TAMPERED if how in FLAGGED_SEARCHES else Outcome.FAILED
    assert verdict.outcome is expected, (verdict.outcome, verdict.detail)
    assert "scan: not found" in verdict.output, verdict.output
    assert key not in verdict.output and key not in verdict.detail


def test_a_trailing_decorator_cannot_decorate_the_tests_check(verifier):
    # In one program text (prompt + completion + test) a completion that ends in ``@f``
    # decorates the test's own ``def check`` and turns it into a no-op. The test is not part of
    # the program any more: the dangling decorator is the program's own syntax error.
    task = Task(
        "deco/0",
        "def answer():\n",
        "def check(candidate):\n    assert candidate() == 42, 'expected 42'\n",
        "answer",
    )
    code = (
        "    return 41\n\n\n"
        "def _noop(*args, **kwargs):\n    return None\n\n\n"
        "def f(function):\n    return _noop\n\n\n"
        "@f\n"
    )
    assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.SYNTAX)


@pytest.mark.parametrize(
    "refused",
    [
        ("import ctypes; ctypes.string_at(id(1), 8)", "ctypes"),
        ("import gc; gc.get_referrers(1)", "gc.get_referrers"),
        ("import gc; gc.get_objects()", "gc.get_objects"),
        ("import sys; sys._current_frames()", "sys._current_frames"),
        ("import sys; sys.settrace(None)", "sys.settrace"),
        ("import sys; sys.setprofile(None)", "sys.setprofile"),
        ("import sys; sys.addaudithook(lambda *a: None)", "sys.addaudithook"),
    ],
    ids=lambda case: case[1],
)
def test_reaching_beyond_the_programs_own_code_is_flagged(verifier, refused):
    statement, kind = refused
    code = f"def answer():\n    {statement}\n    return 41\n"
    verdict = verifier.verify(VALUE_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED, (verdict.outcome, verdict.detail)
    assert f"the program used {kind}, which reaches beyond its own code" in verdict.detail


def test_reading_the_process_memory_is_flagged(verifier):
    for path in ("/proc/self/mem", "/proc/self/task/../mem", "/dev/fd/../mem"):
        code = f"def answer():\n    open({path!r}, 'rb').close()\n    return 42\n"
        verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.TAMPERED)
        assert verdict.detail == "the program tried to read process memory", verdict.detail


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
    # The judge's Statevector is untouched; the child's own copy changed unseen.
    verdict = assert_fooled_naive_not_us(verifier, STATE_TASK, code)
    assert verdict.outcome in {Outcome.FAILED, Outcome.TAMPERED}, (verdict.outcome, verdict.detail)


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
    # The checks run in the child, for the child's own record; the judge never depended on them.
    verdict = assert_fooled_naive_not_us(verifier, STATE_TASK, code)
    assert verdict.outcome in {Outcome.FAILED, Outcome.TAMPERED}, (verdict.outcome, verdict.detail)
    if verdict.outcome is Outcome.FAILED:
        assert "not a Bell state" in verdict.detail


# The test's own imports and tolerances, rewritten in the program's process: a naive harness runs
# the test there, the judge does not.
BUILTINS_SWAP = (
    "import builtins\n"
    "_real_import = builtins.__import__\n"
    "class _Fake:\n"
    "    def __init__(self, *args, **kwargs):\n"
    "        pass\n"
    "    def __call__(self, *args, **kwargs):\n"
    "        return _Fake()\n"
    "    def __getattr__(self, name):\n"
    "        return _Fake()\n"
    "def _import(name, globals=None, locals=None, fromlist=(), level=0):\n"
    "    if name == {name!r}:\n"
    "        return _Fake()\n"
    "    return _real_import(name, globals, locals, fromlist, level)\n"
    "__builtins__ = dict(vars(builtins), __import__=_import)\n"
)
HALF_TASK = program_task(
    "    import numpy as np\n    assert np.isclose(candidate(), 0.5), 'expected 0.5'\n",
    entry_point="half",
)


@pytest.mark.parametrize(
    ("task", "name", "wrong"),
    [
        (STATE_TASK, "qiskit.quantum_info", WRONG_CIRCUIT),
        (HALF_TASK, "numpy", "def half():\n    return 0.25\n"),
    ],
    ids=["qiskit.quantum_info", "numpy"],
)
def test_replacing_the_modules_builtins_leaves_the_tests_imports_alone(verifier, task, name, wrong):
    code = BUILTINS_SWAP.format(name=name) + wrong
    verdict = assert_fooled_naive_not_us(verifier, task, code)
    assert verdict.outcome in {Outcome.FAILED, Outcome.TAMPERED}, (verdict.outcome, verdict.detail)


CX_TASK = program_task(
    "    from qiskit.circuit.library import CXGate\n"
    "    from qiskit.quantum_info import Operator\n"
    "    assert Operator(candidate()).equiv(Operator(CXGate())), 'not CX'\n",
    entry_point="cx",
)


@pytest.mark.parametrize(
    ("task", "cls", "wrong"),
    [
        (STATE_TASK, "Statevector", WRONG_CIRCUIT),
        (CX_TASK, "Operator", "import numpy as np\ndef cx():\n    return np.eye(4)\n"),
    ],
    ids=["Statevector", "Operator"],
)
def test_raising_a_classs_default_tolerance_leaves_the_judges_alone(verifier, task, cls, wrong):
    code = (
        f"from qiskit.quantum_info import {cls}\n"
        f"{cls}._ATOL_DEFAULT = 2.0\n"
        f"{cls}._RTOL_DEFAULT = 2.0\n" + wrong
    )
    verdict = assert_fooled_naive_not_us(verifier, task, code)
    assert verdict.outcome in {Outcome.FAILED, Outcome.TAMPERED}, (verdict.outcome, verdict.detail)


def test_object_whose_eq_is_always_true(verifier):
    code = (
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "def answer():\n    return Anything()\n"
    )
    # Not data: it stays in the child behind a handle, which compares by identity only.
    verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.FAILED)
    assert "expected 42" in verdict.detail


def test_int_subclass_with_rigged_eq(verifier):
    code = (
        "Rigged = type('Rigged', (int,), {'__eq__': lambda s, o: 1, '__hash__': int.__hash__})\n"
        "def answer():\n    return Rigged(0)\n"
    )
    # A subclass of int crosses as its int value: 0.
    verdict = assert_fooled_naive_not_us(verifier, VALUE_TASK, code, expected=Outcome.FAILED)
    assert "expected 42" in verdict.detail


# A test that asks the returned object a question by method, with no isinstance check first, as
# Qiskit-HumanEval/2 does (``assert result.equiv(solution)``): the honest answer is data, which
# the judge rebuilds as the library's class; an object of the program's own class would answer
# the question about itself.
METHOD_TASK_TEST = (
    "    from qiskit import QuantumCircuit\n"
    "    from qiskit.quantum_info import Operator\n"
    "    bell = QuantumCircuit(2)\n"
    "    bell.h(0)\n"
    "    bell.cx(0, 1)\n"
    "    result = candidate()\n"
    "    assert {question}, 'not a Bell circuit'\n"
)
HONEST_BELL = (
    "from qiskit import QuantumCircuit\n"
    "def make_bell():\n"
    "    qc = QuantumCircuit(2)\n"
    "    qc.h(0)\n"
    "    qc.cx(0, 1)\n"
    "    return qc\n"
)
SELF_VOUCHING = {
    "result.count_ops() == {'h': 1, 'cx': 1}": "    def count_ops(self):\n"
    "        return {'h': 1, 'cx': 1}\n",
    "result.num_qubits == 2 and result.depth() == 2": "    num_qubits = 2\n"
    "    def depth(self):\n        return 2\n",
    "result.size() == 2 and result.num_nonlocal_gates() == 1": "    def size(self):\n"
    "        return 2\n    def num_nonlocal_gates(self):\n        return 1\n",
}


@pytest.mark.parametrize("question", SELF_VOUCHING)
def test_an_object_that_answers_the_tests_question_about_itself(verifier, question):
    task = program_task(METHOD_TASK_TEST.format(question=question), entry_point="make_bell")
    assert verifier.verify(task, HONEST_BELL).passed, "the honest circuit must pass this test"
    code = f"class Looks:\n{SELF_VOUCHING[question]}def make_bell():\n    return Looks()\n"
    verdict = assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.ERROR)
    assert "was not read from the candidate's" in verdict.detail, verdict.detail


@pytest.mark.parametrize(
    "base",
    [
        "qiskit.transpiler.StagedPassManager",
        "qiskit.primitives.PrimitiveJob",
        "matplotlib.figure.Figure",
    ],
)
def test_a_library_class_that_stays_in_the_child_adds_no_method_of_the_programs(verifier, base):
    # A subclass of a class that is never data is presented as that class; the judge reads only
    # the names that class declares, so the program's own `equiv` is not there to answer.
    module, _, name = base.rpartition(".")
    task = program_task(
        METHOD_TASK_TEST.format(question="result.equiv(Operator(bell))"), entry_point="make_bell"
    )
    code = (
        f"from {module} import {name}\n"
        f"class Looks({name}):\n"
        "    def __init__(self):\n"
        "        pass\n"
        "    def equiv(self, other):\n"
        "        return True\n"
        "def make_bell():\n"
        "    return Looks()\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.ERROR)
    assert f"{name!r} object has no attribute 'equiv'" in verdict.detail, verdict.detail


def test_humaneval_2_is_not_passed_by_an_object_whose_equiv_says_yes(verifier):
    from qsandbox_env import load_tasks
    from tests.conftest import humaneval_path

    task = load_tasks(humaneval_path())["qiskitHumanEval/2"]
    assert verifier.verify(task, task.canonical_solution).passed
    code = (
        "    class Looks:\n"
        "        def equiv(self, other):\n"
        "            return True\n"
        "    return Looks()\n"
    )
    assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.ERROR)


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
    # The program's globals are not the test's: the judge's Statevector is its own.
    verdict = assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.FAILED)
    assert "not a Bell state" in verdict.detail


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
    with Verifier(workers=1, preload=()) as v:
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


# -- what one program leaves behind must not reach the next (one zygote, one program at a time) --
@pytest.fixture(scope="module")
def single():
    with Verifier(workers=1, preload=()) as v:
        yield v


def _zygote_pids(verifier) -> tuple[int, int]:
    (handle,) = verifier._pool.handles
    return handle.candidate.proc.pid, handle.judge.proc.pid


# Needs new threads and processes of its own, and every process slot it is allowed.
NEXT_PROGRAM = (
    "import subprocess, threading\n"
    "def answer():\n"
    "    threads = [threading.Thread(target=lambda: None) for _ in range(8)]\n"
    "    for thread in threads:\n"
    "        thread.start()\n"
    "    for thread in threads:\n"
    "        thread.join()\n"
    "    subprocess.run(['/bin/true'], check=True)\n"
    "    return 42\n"
)


def _next_programs_pass(verifier, pids) -> None:
    for _ in range(2):
        verdict = verifier.verify(VALUE_TASK, NEXT_PROGRAM)
        assert verdict.passed, (verdict.outcome, verdict.detail)
    assert _zygote_pids(verifier) == pids, "a zygote died and was started again"


def test_zombies_and_orphans_left_behind_do_not_break_the_next_program(single):
    code = (
        "import os, time\n"
        "def answer():\n"
        "    for _ in range(58):\n"
        "        if os.fork() == 0:\n"
        "            os._exit(0)\n"  # never waited for: a zombie
        "    for _ in range(2):\n"
        "        if os.fork() == 0:\n"
        "            if os.fork() == 0:\n"
        "                time.sleep(60)\n"  # an orphan, handed to whoever reaps
        "            os._exit(0)\n"
        "    time.sleep(0.2)\n"
        "    return 42\n"
    )
    pids = _zygote_pids(single)
    verdict = single.verify(VALUE_TASK, code)
    assert verdict.passed, (verdict.outcome, verdict.detail)
    _next_programs_pass(single, pids)


def test_ipc_objects_left_behind_are_gone_for_the_next_program(single):
    name = f"qsbx-left-{os.getpid()}"
    leave = (
        "import os, subprocess, _posixshmem\n"
        "def answer():\n"
        "    subprocess.run(['ipcmk', '-M', '4096'], check=True, capture_output=True)\n"
        "    subprocess.run(['ipcmk', '-Q'], check=True, capture_output=True)\n"
        "    subprocess.run(['ipcmk', '-S', '1'], check=True, capture_output=True)\n"
        f"    fd = _posixshmem.shm_open('/{name}', os.O_CREAT | os.O_RDWR, 0o600)\n"
        "    os.ftruncate(fd, 4096)\n"
        "    return 42\n"
    )
    look = (
        "import os\n"
        "def _entries(kind):\n"
        "    with open(f'/proc/sysvipc/{kind}') as table:\n"
        "        return len(table.read().splitlines()) - 1\n"
        "def answer():\n"
        "    print(os.listdir('/dev/shm'))\n"
        "    return [_entries('shm'), _entries('msg'), _entries('sem'),\n"
        f"            os.path.exists('/dev/shm/{name}')]\n"
    )
    task = program_task("    assert candidate() == [0, 0, 0, False]\n", entry_point="answer")
    verdict = single.verify(VALUE_TASK, leave)
    assert verdict.passed, (verdict.outcome, verdict.detail)
    verdict = single.verify(task, look)
    assert verdict.passed, (verdict.outcome, verdict.detail, verdict.output)


@pytest.mark.parametrize("where", ["working directory", "home"])
def test_a_deep_directory_tree_left_behind_does_not_break_the_next_program(single, where):
    root = "os.getcwd()" if where == "working directory" else "os.path.expanduser('~')"
    code = (
        "import os\n"
        "def answer():\n"
        f"    os.chdir({root})\n"
        "    for _ in range(3000):\n"
        "        os.mkdir('d')\n"
        "        os.chdir('d')\n"
        "    return 42\n"
    )
    pids = _zygote_pids(single)
    verdict = single.verify(VALUE_TASK, code)
    assert verdict.passed, (verdict.outcome, verdict.detail)
    _next_programs_pass(single, pids)


def test_the_child_has_no_new_privileges(single):
    task = program_task("    assert candidate() == '1'\n", entry_point="answer")
    code = (
        "def answer():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('NoNewPrivs:'):\n"
        "            return line.split()[1]\n"
    )
    verdict = single.verify(task, code)
    assert verdict.passed, (verdict.outcome, verdict.detail)
