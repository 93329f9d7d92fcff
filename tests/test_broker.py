"""The QPU broker: ibm: targets run through a parent-side broker, offline against fake devices.

The broker's service here is ``QiskitRuntimeLocalService`` (fake devices in the runtime's local
mode): the same primitives code path as hardware, minus the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets

import pytest
from qiskit_ibm_runtime.fake_provider.local_service import QiskitRuntimeLocalService

from qsandbox_env import Broker, Budget, BudgetLedger, Outcome, Verifier
from tests.conftest import program_task

DEVICE = "fake_manila"  # 5 qubits: its noisy simulation takes well under a second
# Enough for the child: the broker does the simulating, in the parent.
PRELOAD = ("numpy", "qiskit", "qiskit.circuit.library", "qiskit_ibm_runtime")
SECRET = "qsandbox-secret-" + secrets.token_hex(8)


class AccountService(QiskitRuntimeLocalService):
    """Fake devices behind a service that, like a real one, holds the account's token."""

    def __init__(self) -> None:
        super().__init__()
        self.token = os.environ["QISKIT_IBM_TOKEN"]


@pytest.fixture(scope="module")
def account_home(tmp_path_factory):
    """The parent's credentials: QISKIT_IBM_TOKEN and a saved account under a temporary HOME."""
    home = tmp_path_factory.mktemp("home")
    (home / ".qiskit").mkdir()
    account = {"default-ibm-quantum-platform": {"channel": "ibm_quantum_platform", "token": SECRET}}
    (home / ".qiskit" / "qiskit-ibm.json").write_text(json.dumps(account))
    saved = {key: os.environ.get(key) for key in ("HOME", "QISKIT_IBM_TOKEN")}
    os.environ.update(HOME=str(home), QISKIT_IBM_TOKEN=SECRET)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def qpu(account_home):
    broker = Broker(AccountService(), batch_window=20.0)
    with Verifier(3, target=f"ibm:{DEVICE}", broker=broker, preload=PRELOAD) as verifier:
        yield verifier


SAMPLER_PROGRAM = """
from qiskit import QuantumCircuit, transpile
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

def solve():
    backend = QiskitRuntimeService().least_busy(operational=True, simulator=False)
    qc = QuantumCircuit(2)
    qc.ry({angle}, 0)
    qc.cx(0, 1)
    qc.measure_all()
    isa = transpile(qc, backend, optimization_level=1, seed_transpiler=7)
    result = SamplerV2(mode=backend).run([isa], shots=400).result()
    print("batched requests:", result[0].metadata and result.metadata.get("batched_requests"))
    return backend.name, result[0].data.meas.get_counts()
"""

SAMPLER_TEST = """
    name, counts = candidate()
    assert name == "fake_manila", name
    assert sum(counts.values()) == 400
    assert counts.get("00", 0) + counts.get("11", 0) > 300, counts
"""


def sampler_program(angle: float) -> str:
    return SAMPLER_PROGRAM.replace("{angle}", repr(angle))


def test_sampler_program_on_ibm_target_passes_through_the_broker(qpu):
    before = qpu.broker.usage
    verdict = qpu.verify(program_task(SAMPLER_TEST), sampler_program(1.2))
    assert verdict.outcome is Outcome.PASSED, verdict.detail
    assert qpu.broker.usage.jobs == before.jobs + 1
    assert qpu.broker.usage.shots == before.shots + 400


def test_estimator_and_backend_run_go_through_the_broker(qpu):
    program = """
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import SparsePauliOp
from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService

def solve():
    backend = QiskitRuntimeService().backend("ibm_anything")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    isa = transpile(qc, backend, optimization_level=1, seed_transpiler=7)
    observable = SparsePauliOp("ZZ").apply_layout(isa.layout)
    evs = EstimatorV2(mode=backend).run([(isa, observable)]).result()[0].data.evs
    qc.measure_all()
    counts = backend.run(transpile(qc, backend, seed_transpiler=7), shots=300).result().get_counts()
    return float(evs), counts
"""
    test = """
    ev, counts = candidate()
    assert ev > 0.7, ev
    assert sum(counts.values()) == 300 and counts.get("00", 0) + counts.get("11", 0) > 240
"""
    before = qpu.broker.usage
    verdict = qpu.verify(program_task(test), program)
    assert verdict.outcome is Outcome.PASSED, verdict.detail
    assert qpu.broker.usage.jobs == before.jobs + 2


def test_session_and_batch_modes_run_through_the_broker(qpu):
    program = """
from qiskit import QuantumCircuit, transpile
from qiskit_ibm_runtime import Batch, QiskitRuntimeService, SamplerV2, Session

def solve():
    backend = QiskitRuntimeService().backend("ibm_brisbane")
    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    isa = transpile(qc, backend, seed_transpiler=7)
    totals = []
    for mode in (Session, Batch):
        with mode(backend=backend) as context:
            counts = SamplerV2(mode=context).run([isa], shots={shots}).result()[0].data.meas
            totals.append(counts.get_counts().get("1", 0))
    return totals
"""
    test = "    assert all(ones > 0.8 * {shots} for ones in candidate())\n"
    before = qpu.broker.usage
    shots = 321  # shots no other test uses, so that nothing comes from the cache
    verdict = qpu.verify(
        program_task(test.replace("{shots}", str(shots))), program.replace("{shots}", str(shots))
    )
    assert verdict.outcome is Outcome.PASSED, verdict.detail
    assert qpu.broker.usage.jobs == before.jobs + 1  # the second run is the first one's PUB
    assert qpu.broker.usage.cache_hits == before.cache_hits + 1


def test_circuit_not_transpiled_for_the_device_is_not_isa_and_submits_nothing(qpu):
    program = SAMPLER_PROGRAM.replace("isa = transpile(qc, backend, optimization_level=1, "
                                      "seed_transpiler=7)", "isa = qc")  # fmt: skip
    before = qpu.broker.usage
    verdict = qpu.verify(program_task(SAMPLER_TEST), program.replace("{angle}", "0.2"))
    assert verdict.outcome is Outcome.NOT_ISA, verdict.detail
    assert qpu.broker.usage.requests == before.requests


def test_identical_program_is_answered_from_the_cache_without_a_job(qpu):
    task, code = program_task(SAMPLER_TEST), sampler_program(0.9)
    first = qpu.verify(task, code)
    after_first = qpu.broker.usage
    second = qpu.verify(task, code)
    assert first.outcome is second.outcome is Outcome.PASSED
    assert qpu.broker.usage.jobs == after_first.jobs
    assert qpu.broker.usage.cache_hits == after_first.cache_hits + 1


def test_concurrent_programs_are_batched_into_one_job(qpu):
    before = qpu.broker.usage
    pairs = [(program_task(SAMPLER_TEST, task_id=f"t/{i}"), sampler_program(a)) for i, a in
             enumerate((0.3, 0.4, 0.5))]  # fmt: skip
    verdicts = qpu.verify_many(pairs)
    assert [v.outcome for v in verdicts] == [Outcome.PASSED] * 3, [v.detail for v in verdicts]
    assert qpu.broker.usage.requests == before.requests + 3
    assert qpu.broker.usage.jobs == before.jobs + 1
    assert all("batched requests: 3" in v.output for v in verdicts)


def test_identical_pubs_in_one_batch_are_submitted_once(qpu):
    before = qpu.broker.usage
    pair = (program_task(SAMPLER_TEST), sampler_program(0.77))
    verdicts = qpu.verify_many([pair, pair])
    assert [v.outcome for v in verdicts] == [Outcome.PASSED] * 2
    assert qpu.broker.usage.jobs == before.jobs + 1
    assert qpu.broker.usage.shots == before.shots + 400
    assert qpu.broker.usage.cache_hits == before.cache_hits + 1


def test_exhausted_budget_gives_the_budget_outcome_and_says_so():
    broker = Broker(QiskitRuntimeLocalService(), budget=Budget(jobs=1))
    with Verifier(1, target=f"ibm:{DEVICE}", broker=broker, preload=PRELOAD) as verifier:
        first = verifier.verify(program_task(SAMPLER_TEST), sampler_program(1.0))
        second = verifier.verify(program_task(SAMPLER_TEST), sampler_program(1.1))
    assert first.outcome is Outcome.PASSED
    assert second.outcome is Outcome.BUDGET
    assert second.reward == 0.0
    assert second.detail.startswith(
        "QPU budget exhausted: 1 of 1 jobs used; nothing was submitted for this request. "
        "The program's merit is unknown"
    )
    assert "QPUBudgetExhausted" in second.detail
    assert broker.usage.jobs == 1 and broker.usage.refused == 1


def test_the_default_broker_serves_a_fake_device_offline_without_an_account(monkeypatch, tmp_path):
    for key in ("QISKIT_IBM_TOKEN", "QISKIT_IBM_CHANNEL", "QISKIT_IBM_INSTANCE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no saved account either
    with Verifier(1, target=f"ibm:{DEVICE}", budget=Budget(jobs=1), preload=PRELOAD) as verifier:
        verdict = verifier.verify(program_task(SAMPLER_TEST), sampler_program(0.9))
        usage = verifier.broker.usage
    assert verdict.outcome is Outcome.PASSED, verdict.detail
    assert (usage.jobs, usage.shots) == (1, 400)


def test_verifiers_given_one_budget_ledger_keep_to_its_budget_together():
    ledger = BudgetLedger(Budget(jobs=1))
    brokers = [Broker(QiskitRuntimeLocalService(), budget=ledger) for _ in range(2)]
    verdicts = []
    for broker, angle in zip(brokers, (1.0, 1.1), strict=True):
        with Verifier(1, target=f"ibm:{DEVICE}", broker=broker, preload=PRELOAD) as verifier:
            verdicts.append(verifier.verify(program_task(SAMPLER_TEST), sampler_program(angle)))
    assert [v.outcome for v in verdicts] == [Outcome.PASSED, Outcome.BUDGET]
    assert verdicts[1].detail.startswith("QPU budget exhausted: 1 of 1 jobs used; nothing was")
    assert (brokers[0].usage.jobs, brokers[1].usage.jobs, brokers[1].usage.refused) == (1, 0, 1)
    spent = ledger.spent()
    assert [spent[k] for k in ("jobs", "shots", "held_jobs", "held_shots")] == [1, 400, 0, 0]
    assert spent["seconds"] > 0


def test_a_shot_hold_is_all_or_nothing_and_settling_returns_what_the_job_did_not_use():
    ledger = BudgetLedger(Budget(jobs=2, shots=1000))
    assert ledger.hold(1, 800) is None
    refusal = ledger.hold(1, 300)  # the job would fit, the shots would not
    assert refusal == (
        "QPU budget exhausted: this request needs 300 shots and 200 of 1000 remain; nothing was "
        "submitted for this request"
    )
    assert ledger.spent()["held_jobs"] == 1  # the refused request held nothing
    ledger.settle(1, 800, 1, 500, 1.0)  # identical PUBs were sent once: 500 shots ran
    assert ledger.hold(1, 500) is None
    assert ledger.hold(0, 1) is not None
    with pytest.raises(TypeError, match=r"budget: expected a qsandbox_env\.Budget, got dict"):
        BudgetLedger({"jobs": 1})


# Looks for the token everywhere a program could: the environment, files under $HOME and the
# saved-account path, the attributes of the Runtime objects it is given, and the garbage
# collector's view of the process. The test passes only if it finds the token.
SEARCH_PROGRAM = """
import gc, os

def _walk(obj, found, depth=0, seen=None):
    seen = set() if seen is None else seen
    if depth > 4 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        found.append(obj)
        return
    if isinstance(obj, dict):
        items = list(obj.values()) + list(obj.keys())
    elif isinstance(obj, (list, tuple, set)):
        items = list(obj)
    else:
        items = list(getattr(obj, "__dict__", {}).values())
    for item in items:
        _walk(item, found, depth + 1, seen)

def solve():
    found = list(os.environ.values())
    paths = ["/root/.qiskit/qiskit-ibm.json"]
    for base, _, names in os.walk(os.path.expanduser("~")):
        paths += [os.path.join(base, name) for name in names]
    for path in paths:
        try:
            with open(path, errors="replace") as fh:
                found.append(fh.read(1 << 20))
        except OSError:
            pass
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService
        service = QiskitRuntimeService()
        _walk(service, found)
        _walk(service.backend(), found)
        _walk(service.active_account(), found)
    except Exception as exc:
        print("no service:", type(exc).__name__)
    hits = [s for s in found if "qsandbox-secret-" in s]
    print("searched", len(found), "strings, found", len(hits), flush=True)
    # The sandbox reports gc.get_objects (verdict tampered) and the child holds no credential to
    # find; in-process it finds the broker's.
    found.extend(o for o in gc.get_objects() if isinstance(o, str))
    return [s for s in found if "qsandbox-secret-" in s]
"""

SEARCH_TEST = """
    assert candidate(), "no token found"
"""


def test_program_finds_no_credentials_that_a_naive_harness_exposes(qpu, account_home):
    naive: dict = {}
    with contextlib.redirect_stdout(None):
        exec(SEARCH_PROGRAM, naive)  # what an in-process harness would let the program see
        assert any(SECRET in text for text in naive["solve"]())
    verdict = qpu.verify(program_task(SEARCH_TEST), SEARCH_PROGRAM)
    assert verdict.outcome is Outcome.TAMPERED, verdict.detail
    assert verdict.detail.startswith("the program used gc.get_objects"), verdict.detail
    assert "strings, found 0" in verdict.output and SECRET not in verdict.output


def test_broker_answers_a_malformed_request_with_an_error_and_submits_nothing():
    broker = Broker(QiskitRuntimeLocalService())
    with broker.session(DEVICE) as session:
        reply = session.handle({"op": "primitive", "primitive": "sampler", "pubs": [{"x": 1}]})
    assert (reply["error"], reply["kind"]) == (
        "invalid request: circuit: expected base64 QPY text, got NoneType",
        "invalid",
    )
    assert broker.usage.jobs == 0


def test_service_errors_reach_the_program_without_the_token(monkeypatch):
    class LeakyService(QiskitRuntimeLocalService):
        def backend(self, name=None, instance=None):
            raise RuntimeError(f"401 Unauthorized: token {os.environ['QISKIT_IBM_TOKEN']}")

    monkeypatch.setenv("QISKIT_IBM_TOKEN", SECRET)
    broker = Broker(LeakyService())
    with broker.session("ibm_torino") as session:
        reply = session.handle({"op": "describe"})
    assert (reply["error"], reply["kind"]) == ("RuntimeError: 401 Unauthorized: token ***", "job")


def test_budget_on_a_simulated_target_is_refused():
    message = "broker/budget: only ibm: targets submit to a QPU, got target 'aer'"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Verifier(1, budget=Budget(jobs=1), preload=())


def test_budget_rejects_a_negative_limit():
    with pytest.raises(ValueError, match=r"^Budget.jobs: expected a non-negative int or None, "
                       r"got -1$"):  # fmt: skip
        Budget(jobs=-1)


def test_a_budget_shared_over_spenders_rounds_down_and_keeps_no_limit_unlimited():
    assert Budget(jobs=7, shots=10, seconds=3.0).share(3) == Budget(jobs=2, shots=3, seconds=1.0)
    assert Budget().share(4) == Budget()
    with pytest.raises(ValueError, match="parts: expected a positive int, got 0"):
        Budget(jobs=1).share(0)
