"""Programs that try to pass through the execution targets' new surfaces without solving the task.

The ``fake:`` and ``aer`` targets serve devices that the zygote built once (targets, simulators,
noise models, the offline service's device list) and every child inherits; the ``ibm:`` target
talks to the parent's QPU broker through a proxy; answers are assembled between a prompt and a
test that reads names the prompt imported. Each attack on the sandbox is first shown to pass a
naive harness (the same program in a fresh interpreter with the same offline runtime, or the same
proxy attached to a real broker, and no guard; exit status 0 = pass), then shown not to pass the
Verifier. Attacks on the broker itself (its cache, request sizes, wall-clock credit) are shown
against a real broker over fake devices. A few tests guard a defence that already held, and say
so.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest
from qiskit import QuantumCircuit
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

from qsandbox_env import Broker, Outcome, Task, Verifier
from qsandbox_env.program import assemble
from qsandbox_env.sandbox import protocol, qpu_codec
from qsandbox_env.targets import parse_target
from tests.conftest import program_task
from tests.test_hostile import assert_fooled_naive_not_us as assert_plain_attack_fails

DEVICE = "fake_manila"  # 5 qubits: its noise model builds and simulates quickly
TARGET = f"fake:{DEVICE}"


@pytest.fixture(scope="module")
def manila():
    with Verifier(workers=1, target=TARGET) as v:
        yield v


def naive_passes_on(target: str, task: Task, code: str) -> bool:
    """A fresh interpreter with the sandbox's offline runtime and no guard: exit status 0 = pass."""
    spec = parse_target(target).to_dict()
    source = (
        "import warnings\nwarnings.simplefilter('ignore')\n"
        "from qsandbox_env.sandbox import offline_runtime\n"
        f"offline_runtime.install({spec!r})\n"
        + assemble(task, code).source
        + f"\ncheck({task.entry_point})\n"
    )
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, timeout=300, cwd="/")
    return proc.returncode == 0


def assert_fooled_naive_not_us(verifier, task, code, *, expected=Outcome.TAMPERED, target=TARGET):
    assert naive_passes_on(target, task, code), "the attack does not even fool a naive harness"
    verdict = verifier.verify(task, code)
    assert not verdict.passed, verdict
    assert verdict.outcome is expected, (verdict.outcome, verdict.detail)
    return verdict


# -- the ISA check (the not_isa outcome) -----------------------------------------------------
# The test runs the program's circuit on the service's device itself: a circuit that was not
# transpiled for the device must be rejected by the runtime's ISA check.
ISA_TASK = program_task(
    "    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2\n"
    "    circuit = candidate()\n"
    "    backend = QiskitRuntimeService().least_busy()\n"
    "    sampler = SamplerV2(mode=backend)\n"
    "    sampler.options.simulator.seed_simulator = 11\n"
    "    counts = sampler.run([circuit], shots=1000).result()[0].data.meas.get_counts()\n"
    "    assert counts.get('00', 0) + counts.get('11', 0) > 800, counts\n",
    entry_point="bell",
)
# Not transpiled: H is not in the device's instruction set.
UNTRANSPILED = (
    "from qiskit import QuantumCircuit\n"
    "def bell():\n"
    "    qc = QuantumCircuit(2)\n"
    "    qc.h(0)\n"
    "    qc.cx(0, 1)\n"
    "    qc.measure_all()\n"
    "    return qc\n"
)
TRANSPILED = UNTRANSPILED.replace(
    "    return qc\n",
    "    from qiskit import transpile\n"
    "    from qiskit_ibm_runtime import QiskitRuntimeService\n"
    "    return transpile(qc, QiskitRuntimeService().least_busy(), seed_transpiler=1)\n",
)


def test_the_isa_task_passes_transpiled_and_rejects_untranspiled_circuits(manila):
    assert manila.verify(ISA_TASK, TRANSPILED).outcome is Outcome.PASSED
    assert manila.verify(ISA_TASK, UNTRANSPILED).outcome is Outcome.NOT_ISA


def test_replacing_the_runtime_validation_behind_the_offline_wrapper(manila):
    # The not_isa traceback shows the line that calls it: ``_ORIGINAL_VALIDATE[0](circuits, …)``.
    code = (
        "from qsandbox_env.sandbox import offline_runtime\n"
        "offline_runtime._ORIGINAL_VALIDATE[0] = lambda circuits, target: None\n" + UNTRANSPILED
    )
    # The judge's own runtime checks the circuit: what the child changed is not there.
    verdict = assert_fooled_naive_not_us(manila, ISA_TASK, code, expected=Outcome.NOT_ISA)
    assert "The instruction h on qubits (0,) is not supported" in verdict.detail


def test_replacing_the_runtime_validation_function_itself(manila):
    # Held before these tests: the function is a protected module entry.
    code = (
        "from qiskit_ibm_runtime import base_primitive\n"
        "base_primitive.validate_isa_circuits = lambda circuits, target: None\n" + UNTRANSPILED
    )
    # The judge's own runtime checks the circuit: what the child changed is not there.
    verdict = assert_fooled_naive_not_us(manila, ISA_TASK, code, expected=Outcome.NOT_ISA)
    assert "The instruction h on qubits (0,) is not supported" in verdict.detail


def test_adding_the_missing_gate_to_the_served_devices_target(manila):
    code = (
        "from qiskit.circuit.library import HGate\n"
        "from qiskit_ibm_runtime import QiskitRuntimeService\n"
        "device = QiskitRuntimeService().least_busy()\n"
        "device.target.add_instruction(HGate(), {(q,): None for q in range(device.num_qubits)})\n"
        + UNTRANSPILED
    )
    # The judge's own runtime checks the circuit: what the child changed is not there.
    verdict = assert_fooled_naive_not_us(manila, ISA_TASK, code, expected=Outcome.NOT_ISA)
    assert "The instruction h on qubits (0,) is not supported" in verdict.detail


# A device of the same model whose target also accepts H: a program-built object, not the one
# the zygote prepared.
PERMISSIVE_DEVICE = (
    "from qiskit.circuit.library import HGate\n"
    "from qiskit_ibm_runtime.fake_provider import FakeManilaV2\n"
    "permissive = FakeManilaV2()\n"
    "permissive.target.add_instruction(HGate(), {(q,): None for q in range(5)})\n"
)


def test_swapping_the_served_device_list_for_a_permissive_device(manila):
    # Held before these tests: the account lives in module globals the audit hook watches.
    code = (
        PERMISSIVE_DEVICE + "from qsandbox_env.sandbox import offline_runtime\n"
        "offline_runtime._FLEET = (offline_runtime._Device(permissive, True).prepare(),)\n"
        + UNTRANSPILED
    )
    # The judge's own runtime checks the circuit: what the child changed is not there.
    verdict = assert_fooled_naive_not_us(manila, ISA_TASK, code, expected=Outcome.NOT_ISA)
    assert "The instruction h on qubits (0,) is not supported" in verdict.detail


def test_swapping_the_device_behind_the_served_backends(manila):
    # Each service builds its own backend wrappers, but they all share the prebuilt device.
    code = (
        PERMISSIVE_DEVICE + "from qiskit_ibm_runtime import QiskitRuntimeService\n"
        "QiskitRuntimeService().least_busy()._served.device = permissive\n" + UNTRANSPILED
    )
    # The judge's own runtime checks the circuit: what the child changed is not there.
    verdict = assert_fooled_naive_not_us(manila, ISA_TASK, code, expected=Outcome.NOT_ISA)
    assert "The instruction h on qubits (0,) is not supported" in verdict.detail


# -- the device's noise --------------------------------------------------------------------------
# The program must estimate how often a GHZ circuit keeps its parity on the device; the test
# measures it there itself. Claiming the ideal 1.0 is wrong on a noisy device.
NOISE_TASK = program_task(
    "    from qiskit import QuantumCircuit, transpile\n"
    "    from qiskit_ibm_runtime import QiskitRuntimeService\n"
    "    estimate = candidate()\n"
    "    backend = QiskitRuntimeService().least_busy()\n"
    "    qc = QuantumCircuit(3)\n"
    "    qc.h(0)\n"
    "    qc.cx(0, 1)\n"
    "    qc.cx(1, 2)\n"
    "    qc.measure_all()\n"
    "    isa = transpile(qc, backend, seed_transpiler=3)\n"
    "    counts = backend.run(isa, shots=2000, seed_simulator=3).result().get_counts()\n"
    "    measured = (counts.get('000', 0) + counts.get('111', 0)) / 2000\n"
    "    assert abs(estimate - measured) < 0.005, (estimate, measured)\n",
    entry_point="ghz_fidelity",
)
IDEAL_CLAIM = "def ghz_fidelity():\n    return 1.0\n"
NOISE_FROM_FAKE_CLASS = program_task(
    NOISE_TASK.test.split("\n\ncheck(")[0]
    .replace("def check(candidate):\n", "")
    .replace(
        "    backend = QiskitRuntimeService().least_busy()\n",
        "    from qiskit_ibm_runtime.fake_provider import FakeManilaV2\n"
        "    backend = FakeManilaV2()\n",
    ),
    entry_point="ghz_fidelity",
)


def test_the_noise_task_fails_the_ideal_claim(manila):
    assert manila.verify(NOISE_TASK, IDEAL_CLAIM).outcome is Outcome.FAILED


def naive_passes_in_one_service(task: Task, code: str) -> bool:
    """A naive harness whose ``QiskitRuntimeService()`` always hands out the same backend."""
    shared = (
        "from qsandbox_env.sandbox import offline_runtime\n"
        "_first = offline_runtime.OfflineRuntimeService._account\n"
        "_cache = []\n"
        "def _one_account(self):\n"
        "    _cache or _cache.append(_first(self))\n"
        "    return _cache[0]\n"
        "offline_runtime.OfflineRuntimeService._account = _one_account\n"
    )
    return naive_passes_on(TARGET, task, shared + code)


@pytest.mark.parametrize(
    "attack",
    [
        "QiskitRuntimeService().least_busy().set_options(noise_model=None)\n",
        "from qiskit_aer import AerSimulator\n"
        "QiskitRuntimeService().least_busy().run = AerSimulator().run\n",
    ],
    ids=["noise-option-off", "run-shadowed"],
)
def test_changing_the_backend_a_program_was_handed_leaves_the_tests_backend_alone(manila, attack):
    # A service that cached one backend object for everyone would fall for it.
    code = "from qiskit_ibm_runtime import QiskitRuntimeService\n" + attack + IDEAL_CLAIM
    assert naive_passes_in_one_service(NOISE_TASK, code)
    assert manila.verify(NOISE_TASK, code).outcome is Outcome.FAILED


def test_shadowing_the_shared_simulators_run_with_an_ideal_one(manila):
    code = (
        "from qiskit_aer import AerSimulator\n"
        "from qiskit_ibm_runtime import QiskitRuntimeService\n"
        "QiskitRuntimeService().least_busy()._served.simulator.run = AerSimulator().run\n"
        + IDEAL_CLAIM
    )
    verdict = assert_fooled_naive_not_us(manila, NOISE_TASK, code)
    assert "offline runtime: the served devices (fake_manila)" in verdict.detail


def test_resetting_the_served_devices_noise_model(manila):
    code = (
        "from qiskit_ibm_runtime import QiskitRuntimeService\n"
        "QiskitRuntimeService().least_busy().options.noise_model.reset()\n" + IDEAL_CLAIM
    )
    verdict = assert_fooled_naive_not_us(manila, NOISE_TASK, code)
    assert "offline runtime: the shared noise models (fake_manila)" in verdict.detail


# Inside the form the simulator reads on every job: each error's first outcome (no error on this
# device's model) made certain, each readout error made perfect. No object is replaced.
IN_PLACE_NOISE_EDIT = (
    "from qiskit_ibm_runtime import QiskitRuntimeService\n"
    "model = QiskitRuntimeService().least_busy().options.noise_model\n"
    "for error in model.to_dict(serializable=True)['errors']:\n"
    "    p = error['probabilities']\n"
    "    if error['type'] == 'roerror':\n"
    "        for i, row in enumerate(p):\n"
    "            row[:] = [1.0 if j == i else 0.0 for j in range(len(row))]\n"
    "    else:\n"
    "        p[:] = [1.0] + [0.0] * (len(p) - 1)\n"
)


def test_editing_the_shared_noise_model_in_place_is_tampering(manila):
    verdict = assert_fooled_naive_not_us(manila, NOISE_TASK, IN_PLACE_NOISE_EDIT + IDEAL_CLAIM)
    assert "the shared noise model's contents (FakeManilaV2): changed" in verdict.detail


def test_emptying_the_shared_noise_model_of_the_device_class(manila):
    # The test builds its own FakeManilaV2(): it shares the zygote's noise model, unlike a
    # fresh interpreter where each instance builds its own.
    code = (
        "from qiskit_ibm_runtime.fake_provider import FakeManilaV2\n"
        "FakeManilaV2()._get_noise_model_from_backend_v2().reset()\n" + IDEAL_CLAIM
    )
    verdict = assert_fooled_naive_not_us(manila, NOISE_FROM_FAKE_CLASS, code)
    assert "noise model" in verdict.detail


def test_replacing_the_shared_noise_model_table(manila):
    code = (
        "from qiskit_aer.noise import NoiseModel\n"
        "from qiskit_ibm_runtime.fake_provider import FakeManilaV2\n"
        "from qsandbox_env.sandbox import offline_runtime\n"
        "offline_runtime._SHARED_NOISE[FakeManilaV2] = NoiseModel()\n" + IDEAL_CLAIM
    )
    verdict = assert_fooled_naive_not_us(manila, NOISE_FROM_FAKE_CLASS, code)
    assert "noise model" in verdict.detail


def test_honest_programs_using_the_served_device_are_not_flagged(manila):
    honest = (
        "from qiskit import QuantumCircuit, transpile\n"
        "from qiskit_ibm_runtime import QiskitRuntimeService\n"
        "from qiskit_ibm_runtime.fake_provider import FakeManilaV2\n"
        "from qiskit.circuit.library import HGate\n"
        "def ghz_fidelity():\n"
        "    backend = QiskitRuntimeService().least_busy()\n"
        "    mine = FakeManilaV2()  # the program's own device: changing it is its business\n"
        "    mine.target.add_instruction(HGate(), {(0,): None})\n"
        "    mine.set_options(shots=10)\n"
        "    qc = QuantumCircuit(3)\n"
        "    qc.h(0)\n"
        "    qc.cx(0, 1)\n"
        "    qc.cx(1, 2)\n"
        "    qc.measure_all()\n"
        "    isa = transpile(qc, backend, seed_transpiler=3)\n"
        "    counts = backend.run(isa, shots=2000, seed_simulator=3).result().get_counts()\n"
        "    return (counts.get('000', 0) + counts.get('111', 0)) / 2000\n"
    )
    for task in (NOISE_TASK, NOISE_FROM_FAKE_CLASS):
        verdict = manila.verify(task, honest)
        assert verdict.outcome is Outcome.PASSED, verdict.detail


# -- the QPU broker (ibm: targets) ---------------------------------------------------------------
QPU_DEVICE = "fake_manila"
# Enough for the child: the broker does the simulating, in the parent.
QPU_PRELOAD = ("numpy", "qiskit", "qiskit.circuit.library", "qiskit_ibm_runtime")


@pytest.fixture(scope="module")
def qpu():
    broker = Broker(QiskitRuntimeLocalService(), batch_window=0.0)
    with Verifier(1, target=f"ibm:{QPU_DEVICE}", broker=broker, preload=QPU_PRELOAD) as v:
        yield v


def naive_passes_with_broker(task: Task, code: str) -> bool:
    """A fresh interpreter with the sandbox's QPU proxy attached to a real broker, no guard."""
    broker = Broker(QiskitRuntimeLocalService(), batch_window=0.0)
    ours, theirs = socket.socketpair()

    def serve() -> None:
        with broker.session(QPU_DEVICE) as session:
            while (message := protocol.read_message(ours.fileno())) is not None:
                protocol.write_message(ours.fileno(), session.handle(message))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    source = (
        "import warnings\nwarnings.simplefilter('ignore')\n"
        "from qsandbox_env.sandbox import qpu_proxy\n"
        "getattr(qpu_proxy, 'install', lambda: None)()\n"
        f"qpu_proxy.attach({theirs.fileno()}, {QPU_DEVICE!r})\n"
        + assemble(task, code).source
        + f"\ncheck({task.entry_point})\n"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", source],
            capture_output=True,
            timeout=300,
            cwd="/",
            pass_fds=(theirs.fileno(),),
        )
    finally:
        theirs.close()
        server.join(10)
        ours.close()
    return proc.returncode == 0


# The test runs the program's circuit on the device itself and expects |11>.
QPU_TASK = program_task(
    "    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2\n"
    "    circuit = candidate()\n"
    "    backend = QiskitRuntimeService().backend()\n"
    "    counts = SamplerV2(mode=backend).run([circuit], shots=200).result()[0].data.meas\n"
    "    assert counts.get_counts().get('11', 0) > 150, counts.get_counts()\n",
    entry_point="ones",
)
# An ISA circuit for the device, but it prepares |00>.
ZEROS = (
    "from qiskit import QuantumCircuit\n"
    "def ones():\n"
    "    qc = QuantumCircuit(2)\n"
    "    qc.measure_all()\n"
    "    return qc\n"
)
# Rewrites every result the broker sends back to all-ones bits.
FORGER = (
    "import numpy as np\n"
    "from qsandbox_env.sandbox import qpu_codec, qpu_proxy\n"
    "def forged(reply):\n"
    "    for result in reply.get('results', []):\n"
    "        for field in result['fields'].values():\n"
    "            bits = qpu_codec.decode_array(field['array'])\n"
    "            field['array'] = qpu_codec.encode_array(np.full_like(bits, 3))\n"
    "    return reply\n"
)


def test_the_qpu_task_fails_a_circuit_that_prepares_zeros(qpu):
    assert qpu.verify(QPU_TASK, ZEROS).outcome is Outcome.FAILED
    assert qpu.verify(
        QPU_TASK, ZEROS.replace("    qc.measure_all", "    qc.x([0, 1])\n    qc.measure_all")
    ).passed


def test_replacing_the_broker_channel_with_a_forger(qpu):
    code = FORGER + (
        "real = qpu_proxy._LINK['channel']\n"
        "class Forger:\n"
        "    def request(self, message):\n"
        "        return forged(real.request(message))\n"
        "qpu_proxy._LINK['channel'] = Forger()\n" + ZEROS
    )
    assert naive_passes_with_broker(QPU_TASK, code), "the attack does not fool a naive harness"
    verdict = qpu.verify(QPU_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED, (verdict.outcome, verdict.detail)
    assert "QPU proxy: the link to the broker" in verdict.detail


def test_shadowing_the_channels_request_method(qpu):
    code = FORGER + (
        "channel = qpu_proxy._LINK['channel']\n"
        "real = channel.request\n"
        "channel.request = lambda message: forged(real(message))\n" + ZEROS
    )
    assert naive_passes_with_broker(QPU_TASK, code), "the attack does not fool a naive harness"
    verdict = qpu.verify(QPU_TASK, code)
    assert verdict.outcome is Outcome.TAMPERED, (verdict.outcome, verdict.detail)
    assert "QPU proxy: the link to the broker" in verdict.detail


# -- the broker's result cache -----------------------------------------------------------------
def _switched(case: int) -> QuantumCircuit:
    """Measures |1>, then flips the qubit back only if the measured bit equals ``case``."""
    qc = QuantumCircuit(1, 2)
    qc.x(0)
    qc.measure(0, 0)
    with qc.switch(qc.clbits[0]) as cases, cases(case):
        qc.x(0)
    qc.measure(0, 1)
    return qc


def _sampler_request(circuit: QuantumCircuit) -> dict:
    pub = qpu_codec.encode_pub("sampler", SamplerPub.coerce(circuit, 200))
    return {"op": "primitive", "primitive": "sampler", "pubs": [pub], "options": {}}


def _ones_in_second_bit(reply: dict) -> int:
    field = reply["ok"]["results"][0]["fields"]["c"]
    bits = qpu_codec.decode_array(field["array"])  # packed: clbit 1 is bit 1 of the last byte
    return int(sum((int(row[-1]) >> 1) & 1 for row in bits))


def test_a_different_circuit_cannot_plant_its_result_in_the_cache():
    # The two circuits differ only in a switch's case value, which the cache key did not cover;
    # the second program must get its own circuit's result, not the one the first planted.
    broker = Broker(QiskitRuntimeLocalService(), batch_window=0.0)
    with broker.session(QPU_DEVICE) as session:
        planted = session.handle(_sampler_request(_switched(0)))
        own = session.handle(_sampler_request(_switched(1)))
    assert _ones_in_second_bit(planted) > 150, planted
    assert broker.usage.cache_hits == 0
    assert _ones_in_second_bit(own) < 50, own


# -- names the test borrows from the prompt ------------------------------------------------------
# Like most Qiskit-HumanEval tests, this one uses names that only the prompt imports. An answer is
# assembled after the prompt and before the test, so it can rebind them before the test runs.
BORROWING_TASK = Task(
    "borrow/0",
    "from qiskit.quantum_info import Statevector\nfrom math import sqrt\n\n"
    "def create_bell_statevector() -> Statevector:\n"
    '    """Return a phi+ Bell statevector."""\n',
    "def check(candidate):\n"
    "    result = candidate()\n"
    "    solution = (Statevector.from_label('00') + Statevector.from_label('11')) / sqrt(2)\n"
    "    assert result.equiv(solution), 'not the phi+ state'\n",
    "create_bell_statevector",
)
# |01> is wrong; the test's own reference becomes |01> too.
SHADOWS = (
    "_Real = Statevector\n\n\n"
    "class Statevector(_Real):\n"
    "    @staticmethod\n"
    "    def from_label(label):\n"
    "        return _Real.from_label('01')\n\n\n"
    "def sqrt(x):\n"
    "    return 2.0\n"
)


def test_a_body_that_goes_on_to_shadow_the_prompts_imports(verifier):
    body = "    return Statevector.from_label('01')\n\n\n" + SHADOWS
    # The judge runs the prompt's imports itself: the program's names are its own.
    verdict = assert_plain_attack_fails(verifier, BORROWING_TASK, body, expected=Outcome.FAILED)
    assert "not the phi+ state" in verdict.detail


def test_a_whole_function_answer_that_shadows_the_prompts_imports(verifier):
    answer = (
        "from qiskit.quantum_info import Statevector\n"
        "from math import sqrt\n\n\n"
        "def create_bell_statevector():\n"
        "    return Statevector.from_label('01')\n\n\n" + SHADOWS
    )
    verdict = assert_plain_attack_fails(verifier, BORROWING_TASK, answer, expected=Outcome.FAILED)
    assert "not the phi+ state" in verdict.detail


def test_a_constant_the_test_borrows_cannot_be_changed_either(verifier):
    task = Task(
        "borrow/1",
        "from math import pi\n\ndef half_turn() -> float:\n",
        "def check(candidate):\n    assert abs(candidate() - pi) < 1e-9\n",
        "half_turn",
    )
    verdict = assert_plain_attack_fails(
        verifier, task, "    return 3.0\n\n\npi = 3.0\n", expected=Outcome.FAILED
    )
    assert "abs(candidate() - pi) < 1e-9" in verdict.detail


def test_reimporting_or_aliasing_the_prompts_names_is_not_flagged(verifier):
    answer = (
        "import numpy as np\n"
        "from qiskit.quantum_info import Statevector\n"
        "from numpy import sqrt\n"
        "from math import pi\n"
        "pi = np.pi\n\n\n"
        "def create_bell_statevector():\n"
        "    return (Statevector.from_label('00') + Statevector.from_label('11')) / sqrt(2)\n"
    )
    verdict = verifier.verify(BORROWING_TASK, answer)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


# -- requests too big for the parent -------------------------------------------------------------
@pytest.mark.parametrize(
    ("shots", "shape", "reason"),
    [
        (10**9, [], "fake_manila runs at most 100000 shots per PUB, got 1000000000"),
        # 2**64 parameter sets: an int64 product wraps to 0, which made the PUB look free.
        (1000, [2**32, 2**32], "got 18446744073709551616000"),
    ],
    ids=["shots", "parameter-sets"],
)
def test_a_request_too_big_to_run_is_refused_before_anything_runs(shots, shape, reason):
    broker = Broker(QiskitRuntimeLocalService(), batch_window=0.0)
    message = _sampler_request(_switched(1))
    message["pubs"][0].update(shots=shots, shape=shape)
    with broker.session(QPU_DEVICE) as session:
        reply = session.handle(message)
    assert reply["kind"] == "invalid"
    assert reply["error"].startswith("invalid request: shots: ") and reply["error"].endswith(reason)
    assert broker.usage.jobs == 0


def test_resending_a_costly_cached_request_does_not_stretch_the_wall_clock_limit(qpu):
    # Each resend costs the parent a decode of 10,000 instructions but no job (the cache answers):
    # if all of that counted as waiting on the QPU, the loop would outlive its limit many times.
    code = (
        "from qiskit import QuantumCircuit\n"
        "from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2\n"
        "def ones():\n"
        "    backend = QiskitRuntimeService().backend()\n"
        "    qc = QuantumCircuit(5)\n"
        "    for _ in range(2000):\n"
        "        qc.x(range(5))\n"
        "    qc.measure_all()\n"
        "    while True:\n"
        "        SamplerV2(mode=backend).run([qc], shots=10).result()\n"
    )
    task = program_task("    candidate()\n", entry_point="ones", timeout=5)
    verdict = qpu.verify(task, code)
    assert verdict.outcome is Outcome.TIMEOUT
    assert verdict.seconds < 9, verdict.seconds  # 5 s, plus the one job that really ran


# -- class attributes of the fake devices --------------------------------------------------------
def test_pointing_a_fake_device_class_at_doctored_calibration_files(verifier):
    # The test builds its own FakeManilaV2(); a configuration that says "simulator" makes the
    # runtime skip its ISA check, and the class finds its files through a string attribute.
    task = program_task(
        ISA_TASK.test.split("\n\ncheck(")[0]
        .replace("def check(candidate):\n", "")
        .replace(
            "    backend = QiskitRuntimeService().least_busy()\n",
            "    from qiskit_ibm_runtime.fake_provider import FakeManilaV2\n"
            "    backend = FakeManilaV2()\n",
        ),
        entry_point="bell",
    )
    code = (
        "import json, os, shutil, tempfile\n"
        "from qiskit_ibm_runtime.fake_provider import FakeManilaV2 as Device\n"
        "doctored = tempfile.mkdtemp()\n"
        "conf = json.load(open(os.path.join(Device.dirname, Device.conf_filename)))\n"
        "conf['simulator'] = True\n"
        "json.dump(conf, open(os.path.join(doctored, Device.conf_filename), 'w'))\n"
        "shutil.copy(os.path.join(Device.dirname, Device.props_filename), doctored)\n"
        "Device.dirname = doctored\n" + UNTRANSPILED
    )
    verdict = assert_plain_attack_fails(verifier, task, code, expected=Outcome.NOT_ISA)
    assert "The instruction h on qubits (0,) is not supported" in verdict.detail


def test_skipping_the_proxys_isa_check_meets_the_brokers_own(qpu):
    # Not a pass even in a naive harness: the broker checks ISA-ness again, in the parent, with
    # the real device's target. Here the test runs the candidate's circuit through the judge's
    # own proxy, whose check the program's change to its copy does not reach.
    code = (
        "from qsandbox_env.sandbox import qpu_proxy\n"
        "qpu_proxy._RUNTIME_VALIDATE[0] = lambda circuits, target: None\n"
        + ZEROS.replace("    qc.measure_all", "    qc.y([0, 1])\n    qc.measure_all")
    )
    verdict = qpu.verify(QPU_TASK, code)
    assert verdict.outcome is Outcome.NOT_ISA, (verdict.outcome, verdict.detail)
