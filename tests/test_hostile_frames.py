"""Programs that read the test's expected value out of its frame, or return rigged library objects.

Many tests compute the expected value first and then call the candidate (``expected =
reference(x); assert candidate(x) == expected``). Python hands any code a way to its caller's
frame, and so to that ``expected``: ``sys._getframe``, ``inspect``, an exception's traceback, a
generator's frame. Other programs return an instance of their own subclass of a library class
whose ``equiv`` or ``count_ops`` answers what the test wants. Every attack here first fools a
naive harness (a fresh interpreter, exit status 0 = pass); the Verifier must pass none of them,
and must keep passing the honest programs next to them.
"""

from __future__ import annotations

import pytest
from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

from qsandbox_env import Broker, Outcome, Verifier
from tests.conftest import program_task
from tests.test_hostile import assert_fooled_naive_not_us
from tests.test_hostile_targets import (
    FORGER,
    QPU_DEVICE,
    QPU_PRELOAD,
    QPU_TASK,
    ZEROS,
    naive_passes_with_broker,
)

# The expected value is computed by the test before it calls the candidate, as in many tasks.
EXPECTED_FIRST = program_task(
    "    import math\n"
    "    x = 0.3\n"
    "    expected = round(math.sin(x) ** 2 + 0.123456, 6)\n"
    "    assert candidate(x) == expected, 'wrong value'\n",
    entry_point="solve",
)
HONEST = "import math\ndef solve(x):\n    return round(math.sin(x) ** 2 + 0.123456, 6)\n"
WRONG = "def solve(x):\n    return 0.0\n"

FRAME_THEFTS = {
    "sys._getframe(1)": (
        "import sys\ndef solve(x):\n    return sys._getframe(1).f_locals['expected']\n"
    ),
    "inspect.currentframe().f_back": (
        "import inspect\n"
        "def solve(x):\n"
        "    return inspect.currentframe().f_back.f_locals['expected']\n"
    ),
    "inspect.stack()": (
        "import inspect\n"
        "def solve(x):\n"
        "    for info in inspect.stack():\n"
        "        if 'expected' in info.frame.f_locals:\n"
        "            return info.frame.f_locals['expected']\n"
    ),
    "an exception's traceback": (
        "def solve(x):\n"
        "    try:\n"
        "        raise RuntimeError\n"
        "    except RuntimeError as exc:\n"
        "        return exc.__traceback__.tb_frame.f_back.f_locals['expected']\n"
    ),
    "logging.currentframe": (
        "import logging\n"
        "def solve(x):\n"
        "    return logging.currentframe().f_back.f_locals['expected']\n"
    ),
    # The frame is taken while the program is imported, when no test is running; it is read
    # later, from inside the generator, whose frame's f_back is whoever resumes it.
    "a generator frame taken at import time": (
        "def _spy():\n"
        "    while True:\n"
        "        yield FRAME.f_back.f_back.f_locals.get('expected')\n"
        "SPY = _spy()\n"
        "FRAME = SPY.gi_frame\n"
        "def solve(x):\n"
        "    return next(SPY)\n"
    ),
    "a coroutine frame taken at import time": (
        "import types\n"
        "@types.coroutine\n"
        "def _wait():\n"
        "    while True:\n"
        "        yield FRAME.f_back.f_back.f_locals.get('expected')\n"
        "async def _spy():\n"
        "    await _wait()\n"
        "SPY = _spy()\n"
        "FRAME = SPY.cr_frame\n"
        "def solve(x):\n"
        "    return SPY.send(None)\n"
    ),
}


def test_honest_and_wrong_answers_to_the_expected_first_task():
    # Control: the task itself tells right from wrong.
    from tests.test_hostile import naive_passes

    assert naive_passes(EXPECTED_FIRST, HONEST)
    assert not naive_passes(EXPECTED_FIRST, WRONG)


def assert_found_nothing(verdict) -> None:
    """The theft ran and came back empty-handed: the test's frame is in another process."""
    assert not verdict.passed, verdict
    assert verdict.outcome in {Outcome.FAILED, Outcome.ERROR}, (verdict.outcome, verdict.detail)
    assert "wrong value" in verdict.detail or "KeyError: 'expected'" in verdict.detail, (
        verdict.detail
    )


@pytest.mark.parametrize("how", list(FRAME_THEFTS))
def test_reading_the_expected_value_from_the_tests_frame(verifier, how):
    assert_found_nothing(assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, FRAME_THEFTS[how]))


def test_the_candidates_stack_holds_no_frame_of_the_test(verifier):
    # Taking frames is allowed (nothing the test holds is among them): the candidate reports its
    # callers, and the test checks that neither it nor its file is one of them.
    task = program_task(
        "    names, files = candidate()\n"
        "    assert 'check' not in names, names\n"
        "    assert not any('test' in name for name in files), files\n",
        entry_point="callers",
    )
    code = (
        "import sys\n"
        "def callers():\n"
        "    frame, names, files = sys._getframe(), [], []\n"
        "    while frame is not None:\n"
        "        names.append(frame.f_code.co_name)\n"
        "        files.append(frame.f_code.co_filename)\n"
        "        frame = frame.f_back\n"
        "    return names, files\n"
    )
    verdict = verifier.verify(task, code)
    assert verdict.outcome is Outcome.PASSED, (verdict.outcome, verdict.detail)


# Library code that takes its caller's frame for itself, on the program's behalf, while the test
# runs: none of it hands the frame back, so none of it is tampering.
HONEST_FRAME_USERS = {
    "namedtuple": (
        "import collections, math\n"
        "def solve(x):\n"
        "    Pair = collections.namedtuple('Pair', 'value')\n"
        "    return Pair(round(math.sin(x) ** 2 + 0.123456, 6)).value\n"
    ),
    "typing and enum": (
        "import enum, math, typing\n"
        "def solve(x):\n"
        "    T = typing.TypeVar('T')\n"
        "    Kind = enum.Enum('Kind', 'A B')\n"
        "    assert T.__name__ == 'T' and Kind.A.value == 1\n"
        "    return round(math.sin(x) ** 2 + 0.123456, 6)\n"
    ),
    "logging.warning": (
        "import logging, math\n"
        "def solve(x):\n"
        "    logging.warning('computing %s', x)\n"
        "    return round(math.sin(x) ** 2 + 0.123456, 6)\n"
    ),
    "traceback.format_exc": (
        "import math, traceback\n"
        "def solve(x):\n"
        "    try:\n"
        "        1 / 0\n"
        "    except ZeroDivisionError:\n"
        "        print(traceback.format_exc())\n"
        "    return round(math.sin(x) ** 2 + 0.123456, 6)\n"
    ),
    "numpy.bmat": (
        "import math\n"
        "import numpy as np\n"
        "def solve(x):\n"
        "    a = np.array([[round(math.sin(x) ** 2 + 0.123456, 6)]])\n"
        "    return float(np.bmat('a')[0, 0])\n"
    ),
}


@pytest.mark.parametrize("how", list(HONEST_FRAME_USERS))
def test_library_code_taking_frames_for_itself_is_not_flagged(verifier, how):
    verdict = verifier.verify(EXPECTED_FIRST, HONEST_FRAME_USERS[how])
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_a_test_that_inspects_its_own_frames_still_passes(verifier):
    task = program_task(
        "    import inspect, sys\n"
        "    assert inspect.currentframe().f_code.co_name == 'check'\n"
        "    assert sys._getframe(0).f_locals['candidate'] is candidate\n"
        "    assert candidate() == 42\n",
        entry_point="answer",
    )
    assert verifier.verify(task, "def answer():\n    return 42\n").outcome is Outcome.PASSED


def test_capturing_locals_through_traceback_is_flagged(verifier):
    code = (
        "import traceback\n"
        "def solve(x):\n"
        "    stack = traceback.StackSummary.extract(\n"
        "        traceback.walk_stack(None), capture_locals=True\n"
        "    )\n"
        "    for summary in stack:\n"
        "        if summary.locals and 'expected' in summary.locals:\n"
        "            return float(summary.locals['expected'])\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, code, expected=Outcome.FAILED)
    assert "wrong value" in verdict.detail


def test_a_wrong_answer_taking_a_frame_at_import_time_is_still_just_wrong(verifier):
    code = "import sys\nMODULE = sys._getframe()\n" + WRONG
    assert verifier.verify(EXPECTED_FIRST, code).outcome is Outcome.FAILED


# -- program subclasses of library classes that answer the test's questions their own way --------
GHZ = (
    "    from qiskit import QuantumCircuit\n"
    "    from qiskit.quantum_info import Statevector\n"
    "    ghz = QuantumCircuit(3)\n"
    "    ghz.h(0)\n"
    "    ghz.cx(0, 1)\n"
    "    ghz.cx(1, 2)\n"
    "    qc = candidate()\n"
    "    assert isinstance(qc, QuantumCircuit)\n"
    "    assert Statevector(qc).equiv(Statevector(ghz))\n"
)
# Each test asks for a GHZ circuit within a budget; the padded answer is right but too big.
BUDGET_TASKS = {
    "count_ops": program_task(GHZ + "    assert qc.count_ops().get('cx', 0) <= 2\n", "ghz"),
    "depth": program_task(GHZ + "    assert qc.depth() <= 3\n", "ghz"),
    "__len__": program_task(GHZ + "    assert len(qc) <= 3\n", "ghz"),
}
PADDED_GHZ = (
    "from qiskit import QuantumCircuit\n"
    "def ghz():\n"
    "    qc = Small(3)\n"
    "    qc.h(0)\n"
    "    qc.cx(0, 1)\n"
    "    qc.cx(0, 1)\n"
    "    qc.cx(0, 1)\n"
    "    qc.cx(1, 2)\n"
    "    return qc\n"
)
RIGGED_BUDGETS = {
    "count_ops": "    def count_ops(self):\n        return {'h': 1, 'cx': 2}\n",
    "depth": "    def depth(self, *args, **kwargs):\n        return 3\n",
    "__len__": "    def __len__(self):\n        return 3\n",
}
HONEST_GHZ = "from qiskit import QuantumCircuit\n" + PADDED_GHZ.split("\n", 1)[1].replace(
    "    qc.cx(0, 1)\n    qc.cx(0, 1)\n", ""
).replace("Small(3)", "QuantumCircuit(3)")


@pytest.mark.parametrize("method", list(BUDGET_TASKS))
def test_the_budget_tasks_tell_a_padded_circuit_from_an_honest_one(verifier, method):
    task = BUDGET_TASKS[method]
    assert verifier.verify(task, HONEST_GHZ).outcome is Outcome.PASSED
    padded = "class Small(QuantumCircuit):\n    pass\n" + PADDED_GHZ
    assert verifier.verify(task, "from qiskit import QuantumCircuit\n" + padded).outcome is (
        Outcome.FAILED
    )


@pytest.mark.parametrize("method", list(BUDGET_TASKS))
def test_a_circuit_subclass_that_lies_about_its_size(verifier, method):
    code = (
        "from qiskit import QuantumCircuit\n"
        f"class Small(QuantumCircuit):\n{RIGGED_BUDGETS[method]}" + PADDED_GHZ
    )
    # It crosses as a circuit (QPY): the judge's copy is a plain QuantumCircuit of its real size.
    verdict = assert_fooled_naive_not_us(
        verifier, BUDGET_TASKS[method], code, expected=Outcome.FAILED
    )
    assert "<=" in verdict.detail, verdict.detail  # the budget assertion, not the GHZ check


def test_a_circuit_subclass_that_claims_more_qubits(verifier):
    task = program_task(
        "    from qiskit import QuantumCircuit\n"
        "    qc = candidate()\n"
        "    assert isinstance(qc, QuantumCircuit)\n"
        "    assert qc.num_qubits == 5\n",
        entry_point="five",
    )
    code = (
        "from qiskit import QuantumCircuit\n"
        "class Wide(QuantumCircuit):\n"
        "    num_qubits = property(lambda self: 5)\n"
        "def five():\n"
        "    return Wide(1)\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, task, code, expected=Outcome.FAILED)
    assert "qc.num_qubits == 5" in verdict.detail


BELL_STATE_TASK = program_task(
    "    from qiskit import QuantumCircuit\n"
    "    from qiskit.quantum_info import Statevector\n"
    "    bell = QuantumCircuit(2)\n"
    "    bell.h(0)\n"
    "    bell.cx(0, 1)\n"
    "    state = candidate()\n"
    "    assert isinstance(state, Statevector)\n"
    "    assert state.equiv(Statevector(bell))\n",
    entry_point="bell_state",
)
CX_OPERATOR_TASK = program_task(
    "    from qiskit.circuit.library import CXGate\n"
    "    from qiskit.quantum_info import Operator\n"
    "    op = candidate()\n"
    "    assert isinstance(op, Operator)\n"
    "    assert op.equiv(Operator(CXGate()))\n",
    entry_point="cx_operator",
)


def test_a_statevector_subclass_whose_equiv_is_always_true(verifier):
    code = (
        "from qiskit.quantum_info import Statevector\n"
        "class S(Statevector):\n"
        "    def equiv(self, other, rtol=None, atol=None):\n"
        "        return True\n"
        "def bell_state():\n"
        "    return S([1, 0, 0, 0])\n"
    )
    # It crosses as its amplitudes: the judge rebuilds a plain Statevector.
    verdict = assert_fooled_naive_not_us(verifier, BELL_STATE_TASK, code, expected=Outcome.FAILED)
    assert "state.equiv(Statevector(bell))" in verdict.detail


def test_an_operator_subclass_whose_equiv_is_always_true(verifier):
    code = (
        "import numpy as np\n"
        "from qiskit.quantum_info import Operator\n"
        "class O(Operator):\n"
        "    equiv = lambda self, other, **kwargs: True\n"
        "def cx_operator():\n"
        "    return O(np.eye(4))\n"
    )
    verdict = assert_fooled_naive_not_us(verifier, CX_OPERATOR_TASK, code, expected=Outcome.FAILED)
    assert "op.equiv(Operator(CXGate()))" in verdict.detail


# Legitimate subclasses: a gate that defines itself, a circuit with a helper of its own.
def test_a_custom_gate_defined_by_its_decomposition_is_not_flagged(verifier):
    code = (
        "from qiskit import QuantumCircuit\n"
        "from qiskit.circuit import Gate\n"
        "from qiskit.quantum_info import Operator\n"
        "class Entangler(Gate):\n"
        "    def __init__(self):\n"
        "        super().__init__('entangler', 2, [])\n"
        "    def _define(self):\n"
        "        qc = QuantumCircuit(2)\n"
        "        qc.cx(0, 1)\n"
        "        self.definition = qc\n"
        "    def inverse(self, annotated=False):\n"
        "        return Entangler()\n"
        "def cx_operator():\n"
        "    return Operator(Entangler().inverse())\n"
    )
    assert verifier.verify(CX_OPERATOR_TASK, code).outcome is Outcome.PASSED


def test_a_circuit_subclass_with_a_helper_of_its_own_is_not_flagged(verifier):
    code = (
        "from qiskit import QuantumCircuit\n"
        "class Ladder(QuantumCircuit):\n"
        "    def __init__(self, n):\n"
        "        super().__init__(n, name='ladder')\n"
        "    def entangle(self):\n"
        "        self.h(0)\n"
        "        for q in range(self.num_qubits - 1):\n"
        "            self.cx(q, q + 1)\n"
        "        return self\n"
        "def ghz():\n"
        "    return Ladder(3).entangle()\n"
    )
    for task in BUDGET_TASKS.values():
        assert verifier.verify(task, code).outcome is Outcome.PASSED


# -- the QPU broker's descriptor (ibm: targets) --------------------------------------------------
# Puts a socket of the program's own behind the channel's descriptor number and relays the
# test's requests to the real broker, rewriting every result to all-ones bits on the way back.
@pytest.fixture(scope="module")
def qpu():
    broker = Broker(QiskitRuntimeLocalService(), batch_window=0.0)
    with Verifier(1, target=f"ibm:{QPU_DEVICE}", broker=broker, preload=QPU_PRELOAD) as v:
        yield v


def assert_relay_changed_nothing(verdict) -> None:
    """The test ran the zeros circuit on the device and saw zeros (or the child flagged it)."""
    assert not verdict.passed, verdict
    assert verdict.outcome in {Outcome.FAILED, Outcome.TAMPERED}, (verdict.outcome, verdict.detail)


DUP2_RELAY = FORGER + (
    "import os, socket, threading\n"
    "from qsandbox_env.sandbox import protocol\n"
    "channel = qpu_proxy._LINK['channel']\n"
    "real = os.dup(channel.fd)\n"
    "ours, theirs = socket.socketpair()\n"
    "os.dup2(ours.fileno(), channel.fd)\n"
    "def relay():\n"
    "    while (message := protocol.read_message(theirs.fileno())) is not None:\n"
    "        protocol.write_message(real, message)\n"
    "        reply = protocol.read_message(real)\n"
    "        if isinstance(reply.get('ok'), dict):\n"
    "            forged(reply['ok'])\n"
    "        protocol.write_message(theirs.fileno(), reply)\n"
    "threading.Thread(target=relay, daemon=True).start()\n"
)


def test_a_socket_dup2ed_over_the_broker_descriptor_is_refused(qpu):
    # The child's broker channel is the candidate's; the test samples through the judge's.
    verdict = qpu.verify(QPU_TASK, DUP2_RELAY + ZEROS)
    assert_relay_changed_nothing(verdict)


def test_a_dup2ed_socket_with_the_channels_record_rewritten_is_tampering(qpu):
    code = DUP2_RELAY + "channel.identity = qpu_proxy.descriptor_identity(channel.fd)\n" + ZEROS
    assert naive_passes_with_broker(QPU_TASK, code), "the attack does not fool a naive harness"
    assert_relay_changed_nothing(qpu.verify(QPU_TASK, code))


def test_pointing_the_channel_at_another_descriptor_is_tampering(qpu):
    code = DUP2_RELAY.replace("os.dup2(ours.fileno(), channel.fd)\n", "") + (
        "channel.fd = ours.fileno()\nchannel.identity = qpu_proxy.descriptor_identity(channel.fd)\n"
    )
    code += ZEROS
    assert naive_passes_with_broker(QPU_TASK, code), "the attack does not fool a naive harness"
    assert_relay_changed_nothing(qpu.verify(QPU_TASK, code))


def test_code_compiled_under_a_trusted_library_functions_name_is_tampering(verifier):
    # Dressed up as collections.namedtuple, which may take its caller's frame for itself.
    code = (
        "import collections\n"
        "source = 'def namedtuple():\\n    return _sys._getframe(2)\\n'\n"
        "space = {'_sys': __import__('sys')}\n"
        "exec(compile(source, collections.__file__, 'exec'), space)\n"
        "def solve(x):\n"
        "    return space['namedtuple']().f_locals['expected']\n"
    )
    assert_found_nothing(assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, code))


# -- signal handlers --------------------------------------------------------------------------
# A Python signal handler is called with the frame that was running, and no audit event says so:
# in one process, f_back leads from the candidate's frame to the test's ``expected``. Handlers are
# allowed in the child: the frames they see are the child's own. The handler records what it
# found (None when nothing) and puts the default back.
_STEALER = (
    "STOLEN = []\n"
    "def _steal(signum, frame):\n"
    "    while frame is not None and 'expected' not in frame.f_locals:\n"
    "        frame = frame.f_back\n"
    "    STOLEN.append(frame.f_locals['expected'] if frame is not None else None)\n"
    "    print('handler ran, found:', STOLEN[-1], flush=True)\n"
    "    signal.signal(signum, signal.SIG_DFL)\n"
    "def _wait():\n"
    "    import time\n"
    "    deadline = time.monotonic() + 10\n"
    "    while not STOLEN and time.monotonic() < deadline:\n"
    "        pass\n"
    "    return STOLEN[0] if STOLEN else None\n"
)
SIGNAL_TRIGGERS = {
    "setitimer(ITIMER_REAL)": ("SIGALRM", "signal.setitimer(signal.ITIMER_REAL, 1e-4)"),
    "alarm": ("SIGALRM", "signal.alarm(1)"),
    "setitimer(ITIMER_VIRTUAL)": ("SIGVTALRM", "signal.setitimer(signal.ITIMER_VIRTUAL, 1e-3)"),
    "setitimer(ITIMER_PROF)": ("SIGPROF", "signal.setitimer(signal.ITIMER_PROF, 1e-3)"),
    "os.kill": ("SIGUSR1", "os.kill(os.getpid(), signal.SIGUSR1)"),
    "raise_signal": ("SIGUSR1", "signal.raise_signal(signal.SIGUSR1)"),
    "pthread_kill": ("SIGUSR1", "signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)"),
}


def signal_theft(trigger: str, installer: str = "signal.signal", inside: bool = False) -> str:
    """A program whose handler, fired by ``trigger`` inside the candidate, steals ``expected``."""
    signum, fire = SIGNAL_TRIGGERS[trigger]
    install = f"{installer}(signal.{signum}, _steal)\n"
    return (
        "import _signal, os, signal, threading\n"
        + _STEALER
        + ("" if inside else install)
        + "def solve(x):\n"
        + ("    " + install if inside else "")
        + f"    {fire}\n"
        + "    return _wait()\n"
    )


def assert_handler_found_nothing(verdict) -> None:
    assert verdict.outcome is Outcome.FAILED, (verdict.outcome, verdict.detail, verdict.output)
    assert "handler ran, found: None" in verdict.output, verdict.output


@pytest.mark.parametrize("trigger", list(SIGNAL_TRIGGERS))
def test_a_signal_handler_installed_at_import_reads_the_tests_frame(verifier, trigger):
    verdict = assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, signal_theft(trigger))
    assert_handler_found_nothing(verdict)


@pytest.mark.parametrize("installer", ["signal.signal", "_signal.signal"])
@pytest.mark.parametrize("inside", [False, True], ids=["at import", "inside the candidate"])
def test_a_signal_handler_installed_either_way_reads_the_tests_frame(verifier, installer, inside):
    code = signal_theft("setitimer(ITIMER_REAL)", installer, inside)
    assert_handler_found_nothing(assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, code))


def test_a_signal_handler_that_may_be_refused_steals_nothing_either(verifier):
    # Written for a sandbox that refuses handlers (ValueError): installed or not, nothing of the
    # test is in the frames it could see.
    code = (
        "import signal\n" + _STEALER + "try:\n"
        "    signal.signal(signal.SIGURG, _steal)\n"
        "except ValueError:\n"
        "    pass\n"
        "def solve(x):\n"
        "    signal.raise_signal(signal.SIGURG)\n"
        "    return STOLEN[0] if STOLEN else 0.0\n"
    )
    assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, code, expected=Outcome.FAILED)


# Fresh copies of the installer: once ways around a stand-in, now just other ways to install.
FRESH_INSTALLERS = {
    "a fresh _signal module": (
        "import importlib.util\n"
        "spec = importlib.util.find_spec('_signal')\n"
        "fresh = importlib.util.module_from_spec(spec)\n"
        "fresh.signal(signal.SIGUSR1, _steal)\n"
    ),
    "a fresh _signal from _imp.create_builtin": (
        "import _imp, importlib.util\n"
        "fresh = _imp.create_builtin(importlib.util.find_spec('_signal'))\n"
        "fresh.signal(signal.SIGUSR1, _steal)\n"
    ),
    "a fresh _imp module": (
        "import importlib.util\n"
        "imp = importlib.util.module_from_spec(importlib.util.find_spec('_imp'))\n"
        "fresh = imp.create_builtin(importlib.util.find_spec('_signal'))\n"
        "fresh.signal(signal.SIGUSR1, _steal)\n"
    ),
    "importlib.reload(_signal)": (
        "import importlib\nimportlib.reload(_signal)\n_signal.signal(signal.SIGUSR1, _steal)\n"
    ),
}


@pytest.mark.parametrize("how", list(FRESH_INSTALLERS))
def test_a_signal_handler_installed_through_a_fresh_module_steals_nothing(verifier, how):
    code = (
        "import _signal, os, signal\n"
        + _STEALER
        + FRESH_INSTALLERS[how]
        + "def solve(x):\n    os.kill(os.getpid(), signal.SIGUSR1)\n    return _wait()\n"
    )
    assert_handler_found_nothing(assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, code))


@pytest.mark.parametrize("entry", ["signal.signal", "_signal.signal"])
def test_rebinding_the_signal_installer_is_tampering(verifier, entry):
    code = f"import _signal, signal\n{entry} = print\n" + HONEST
    verdict = assert_fooled_naive_not_us(verifier, EXPECTED_FIRST, code)
    assert verdict.outcome is Outcome.TAMPERED, (verdict.outcome, verdict.detail)
    assert f"module {entry}" in verdict.detail


# What programs may still do with signals: nothing here calls Python code with a frame.
HONEST_SIGNAL_USERS = {
    "SIG_IGN and SIG_DFL": (
        "import signal\n"
        "signal.signal(signal.SIGUSR1, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGALRM, signal.SIG_DFL)\n"
    ),
    "the default SIGINT handler": (
        "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
    ),
    # faulthandler writes the traceback from C to a file descriptor; no Python code sees a frame.
    "faulthandler.register": (
        "import faulthandler, os, signal, sys\n"
        "faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=False)\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "faulthandler.unregister(signal.SIGUSR1)\n"
    ),
    # asyncio.run tries to install a SIGINT handler of its own and does without when refused.
    "asyncio.run": (
        "import asyncio\nasync def _one():\n    return 1\nassert asyncio.run(_one()) == 1\n"
    ),
    # Made through the stand-in for _imp.create_builtin: no zygote imports it.
    "a builtin module imported for the first time": "import sys\nassert 'xxsubtype' not in "
    "sys.modules\nimport xxsubtype\n",
    # A handler of the program's own, called with the program's frames only.
    "a Python watchdog handler": (
        "import signal\n"
        "FIRED = []\n"
        "def _watchdog(signum, frame):\n"
        "    FIRED.append(frame.f_code.co_name)\n"
        "signal.signal(signal.SIGALRM, _watchdog)\n"
        "signal.setitimer(signal.ITIMER_REAL, 1e-3)\n"
        "import time\n"
        "_deadline = time.monotonic() + 5\n"
        "while not FIRED and time.monotonic() < _deadline:\n"
        "    pass\n"
        "assert FIRED\n"
        "signal.signal(signal.SIGALRM, signal.SIG_DFL)\n"
    ),
}


@pytest.mark.parametrize("how", list(HONEST_SIGNAL_USERS))
def test_signal_uses_that_call_no_python_handler_pass(verifier, how):
    verdict = verifier.verify(EXPECTED_FIRST, HONEST_SIGNAL_USERS[how] + HONEST)
    assert verdict.passed, (verdict.outcome, verdict.detail)
