"""Execution targets: parsing, the offline Runtime inside the sandbox, noise and ISA rejection."""

from __future__ import annotations

import gymnasium
import pytest

from qsandbox_env import Outcome, QiskitCodeEnv, TaskSet, Verifier
from qsandbox_env.targets import Target, fake_device_names, parse_target
from tests.conftest import program_task

FORMS = "'aer', 'fake:<device>' (e.g. 'fake:sherbrooke'), 'ibm:<backend>' or 'ibm:least_busy'"

# A Bell pair through the service's device, as generated Runtime code is written. Seeded, so a
# target gives the same counts every run.
BELL = """
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2


def solve(transpiled=True):
    backend = QiskitRuntimeService().least_busy()
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    if transpiled:
        circuit = generate_preset_pass_manager(
            optimization_level=1, backend=backend, seed_transpiler=7
        ).run(circuit)
    sampler = SamplerV2(mode=backend)
    sampler.options.simulator.seed_simulator = 7
    return sampler.run([circuit], shots=4000).result()[0].data.meas.get_counts()
"""
ONLY_CORRELATED = (
    "    counts = candidate()\n"
    "    assert sum(counts.values()) == 4000\n"
    "    assert set(counts) <= {'00', '11'}, counts\n"
)
SOME_ANTICORRELATED = (
    "    counts = candidate()\n    assert counts.get('01', 0) + counts.get('10', 0) > 0, counts\n"
)


@pytest.fixture(scope="module")
def sherbrooke():
    with Verifier(workers=1, target="fake:sherbrooke") as v:
        yield v


def service_task(body: str) -> object:
    """A program task whose test asks the sandbox's QiskitRuntimeService directly."""
    header = "    from qiskit_ibm_runtime import QiskitRuntimeService\n"
    return program_task(header + body)


SOLVE = "def solve():\n    return None\n"


# -- parsing -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("aer", Target("aer")),
        ("fake:sherbrooke", Target("fake", "fake_sherbrooke")),
        ("fake:FakeKyoto", Target("fake", "fake_kyoto")),
        ("FAKE:fake_fez", Target("fake", "fake_fez")),
        ("ibm:ibm_torino", Target("ibm", "ibm_torino")),
        ("ibm:least_busy", Target("ibm", "least_busy")),
    ],
)
def test_target_forms_parse_to_a_kind_and_device(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["aer", "fake:sherbrooke", "ibm:ibm_torino", "ibm:least_busy"])
def test_a_targets_spec_reads_back_as_the_same_target(text):
    assert parse_target(parse_target(text).spec) == parse_target(text)


def test_least_busy_is_only_the_ibm_least_busy_target():
    assert parse_target("ibm:least_busy").least_busy
    assert not parse_target("ibm:ibm_torino").least_busy


@pytest.mark.parametrize("text", ["foo", "ibm:", "fake:", "aer:x", ""])
def test_an_unknown_form_names_the_valid_forms(text):
    with pytest.raises(ValueError) as info:
        parse_target(text)
    assert str(info.value) == f"target: expected {FORMS}, got {text!r}"


def test_an_unknown_fake_device_lists_the_fake_providers_devices():
    with pytest.raises(ValueError) as info:
        parse_target("fake:atlantis")
    message = str(info.value)
    assert message.startswith("target: unknown fake device 'fake:atlantis'; valid fake devices: ")
    assert "fake:sherbrooke" in message and "fake:kyoto" in message
    assert message.count("fake:") == len(fake_device_names()) + 1


def test_an_ibm_backend_name_must_look_like_one():
    with pytest.raises(ValueError, match=r"got 'ibm:Ibm Torino'$"):
        parse_target("ibm:Ibm Torino")


def test_a_non_string_target_is_a_type_error():
    with pytest.raises(TypeError, match=r"^target: expected a string such as 'aer', got int$"):
        parse_target(3)  # type: ignore[arg-type]


def test_the_verifier_rejects_an_unknown_target_before_starting_sandboxes():
    with pytest.raises(ValueError, match="unknown fake device 'fake:atlantis'"):
        Verifier(workers=1, target="fake:atlantis")


# -- noise and constraints of a fake device ----------------------------------------------------
def test_a_bell_pair_on_the_aer_target_shows_no_noise(verifier):
    verdict = verifier.verify(program_task(ONLY_CORRELATED), BELL)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_a_bell_pair_on_a_fake_device_shows_its_noise(sherbrooke):
    verdict = sherbrooke.verify(program_task(SOME_ANTICORRELATED), BELL)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_noise_fails_a_test_that_expects_ideal_counts(sherbrooke):
    verdict = sherbrooke.verify(program_task(ONLY_CORRELATED), BELL)
    assert verdict.outcome is Outcome.FAILED
    assert "'01'" in verdict.detail or "'10'" in verdict.detail


def test_a_circuit_not_transpiled_for_the_device_is_rejected_as_not_isa(sherbrooke):
    code = BELL.replace("def solve(transpiled=True)", "def solve(transpiled=False)")
    verdict = sherbrooke.verify(program_task(SOME_ANTICORRELATED), code)
    assert verdict.outcome is Outcome.NOT_ISA
    assert verdict.error_type == "NotISAError"
    assert "is not supported by the target" in verdict.detail


def test_a_rejection_wrapped_by_the_test_is_still_not_isa(sherbrooke):
    code = BELL.replace("def solve(transpiled=True)", "def solve(transpiled=False)")
    body = (
        "    try:\n        candidate()\n    except Exception as exc:\n"
        "        raise AssertionError('the job failed') from exc\n"
    )
    assert sherbrooke.verify(program_task(body), code).outcome is Outcome.NOT_ISA


def test_the_estimator_runs_on_a_served_device_in_local_mode(verifier):
    code = """
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService


def solve():
    backend = QiskitRuntimeService().least_busy()
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(circuit)
    observable = SparsePauliOp("ZZ").apply_layout(isa.layout)
    return float(EstimatorV2(mode=backend).run([(isa, observable)]).result()[0].data.evs)
"""
    verdict = verifier.verify(program_task("    assert candidate() == 1.0\n"), code)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


# -- the offline QiskitRuntimeService ----------------------------------------------------------
def test_the_aer_target_serves_the_default_devices_sherbrooke_least_busy(verifier):
    body = (
        "    service = QiskitRuntimeService()\n"
        "    assert isinstance(service, QiskitRuntimeService)\n"
        "    names = [b.name for b in service.backends()]\n"
        "    assert names == ['fake_sherbrooke', 'fake_brisbane', 'fake_kyiv', 'fake_torino', "
        "'fake_fez', 'fake_marrakesh'], names\n"
        "    assert service.least_busy().name == 'fake_sherbrooke'\n"
    )
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_a_fake_target_serves_its_one_device(sherbrooke):
    body = (
        "    service = QiskitRuntimeService(channel='ibm_quantum_platform', token='unused')\n"
        "    assert [b.name for b in service.backends()] == ['fake_sherbrooke']\n"
        "    assert service.least_busy(min_num_qubits=100).name == 'fake_sherbrooke'\n"
    )
    verdict = sherbrooke.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_backends_filter_on_configuration_and_status_attributes(verifier):
    body = (
        "    service = QiskitRuntimeService()\n"
        "    heron = service.backends(simulator=False, operational=True, min_num_qubits=150)\n"
        "    assert [b.name for b in heron] == ['fake_fez', 'fake_marrakesh']\n"
        "    cz = service.least_busy(filters=lambda b: 'cz' in b.basis_gates)\n"
        "    assert cz.name == 'fake_torino'\n"
    )
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_backend_finds_a_device_by_its_fake_or_real_name(verifier):
    body = (
        "    service = QiskitRuntimeService()\n"
        "    assert service.backend('fake_kyiv').name == 'fake_kyiv'\n"
        "    assert service.backend('ibm_kyiv') is service.backend('fake_kyiv')\n"
        "    assert service.backend('ibm_kyiv').properties().readout_error(0) >= 0\n"
    )
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_an_unknown_backend_raises_what_the_runtime_raises(verifier):
    body = "    QiskitRuntimeService().backend('ibm_atlantis')\n"
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.error_type == "QiskitBackendNotFoundError"


def test_an_offline_account_has_no_jobs(verifier):
    body = "    assert QiskitRuntimeService().jobs(limit=5) == []\n"
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_an_invalid_channel_is_rejected_as_the_runtime_does(verifier):
    body = "    QiskitRuntimeService(channel='quantum_cloud')\n"
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.error_type == "ValueError"
    assert "'channel' can only be" in verdict.detail


def test_changing_a_handed_out_backend_does_not_change_the_services(verifier):
    body = (
        "    first = QiskitRuntimeService().least_busy()\n"
        "    first.configuration().coupling_map = [[0, 1]]\n"
        "    again = QiskitRuntimeService().least_busy()\n"
        "    assert again is not first\n"
        "    assert len(again.configuration().coupling_map) > 100\n"
    )
    verdict = verifier.verify(service_task(body), SOLVE)
    assert verdict.outcome is Outcome.PASSED, verdict.detail


def test_a_program_that_replaces_the_offline_account_is_tampering(verifier):
    code = (
        "import sys\n"
        "def solve():\n"
        "    sys.modules['qsandbox_env.sandbox.offline_runtime']._FLEET = ()\n"
    )
    verdict = verifier.verify(program_task("    candidate()\n"), code)
    assert verdict.outcome is Outcome.TAMPERED
    assert verdict.detail.startswith("offline runtime: the served devices"), verdict.detail


# -- the environment ---------------------------------------------------------------------------
def bell_tasks() -> TaskSet:
    return TaskSet([program_task(ONLY_CORRELATED, task_id="bell/0")], source="test")


def test_the_environment_runs_on_its_target(sherbrooke):
    env = QiskitCodeEnv(bell_tasks(), target="fake:sherbrooke", verifier=sherbrooke)
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(BELL)
    assert (reward, terminated, info["outcome"]) == (0.0, True, "failed")


def test_gymnasium_make_passes_the_target_through(sherbrooke):
    env = gymnasium.make("qsandbox/QiskitCode-v0", target="fake:sherbrooke", verifier=sherbrooke)
    assert env.unwrapped.target == Target("fake", "fake_sherbrooke")
    env.close()


def test_a_shared_verifier_with_another_target_is_refused(verifier):
    with pytest.raises(ValueError) as info:
        QiskitCodeEnv(bell_tasks(), target="fake:sherbrooke", verifier=verifier)
    assert str(info.value) == (
        "target: the given verifier runs target 'aer', not 'fake:sherbrooke'; pass a "
        "Verifier(target='fake:sherbrooke') or leave target unset"
    )
