"""The bundled task set: well-formed, every canonical solution passes, plausible mistakes fail."""

from __future__ import annotations

import pathlib

import pytest

import qsandbox_env
from qsandbox_env import load_tasks

BUNDLED = pathlib.Path(qsandbox_env.__file__).parent / "data" / "bundled.jsonl"
DIFFICULTIES = {"basic", "intermediate", "difficult"}

# One plausible wrong body per task: the kind of slip a model makes, which the test must catch.
WRONG_ANSWERS = {
    # Entangles only the first and last qubit.
    "qsandbox/ghz_circuit": """
    qc = QuantumCircuit(num_qubits)
    qc.h(0)
    qc.cx(0, num_qubits - 1)
    return qc
""",
    # Big-endian preparation of |k>.
    "qsandbox/qft_of_basis_state": """
    qc = QuantumCircuit(num_qubits)
    for qubit in range(num_qubits):
        if (k >> qubit) & 1:
            qc.x(num_qubits - 1 - qubit)
    qc.append(QFTGate(num_qubits), range(num_qubits))
    return Statevector(qc)
""",
    # Control and target of the CX swapped.
    "qsandbox/bound_ansatz": """
    a = Parameter("a")
    b = Parameter("b")
    template = QuantumCircuit(2)
    template.ry(a, 0)
    template.rx(b, 1)
    template.cx(1, 0)
    template.rz(a + b, 1)
    return template, template.assign_parameters({a: a_value, b: b_value})
""",
    # Indexes the bitstring from the left.
    "qsandbox/zz_expectation_from_counts": """
    total = sum(counts.values())
    value = 0
    for key, count in counts.items():
        bits = key.replace(" ", "")
        value += count if bits[i] == bits[j] else -count
    return float(value / total)
""",
    # Pauli labels written big-endian.
    "qsandbox/ising_energy": """
    n = len(fields)
    terms = []
    for q in range(n - 1):
        label = ["I"] * n
        label[q] = label[q + 1] = "Z"
        terms.append(("".join(label), -coupling))
    for q in range(n):
        label = ["I"] * n
        label[q] = "X"
        terms.append(("".join(label), -fields[q]))
    hamiltonian = SparsePauliOp.from_list(terms)
    return hamiltonian, float(Statevector(circuit).expectation_value(hamiltonian).real)
""",
    # Broadcasts to shape (len(observables), K): the transpose.
    "qsandbox/expectation_grid": """
    obs = [[o] for o in observables]
    result = StatevectorEstimator().run([(circuit, obs, parameter_values)]).result()[0]
    return np.real(result.data.evs)
""",
    # Prepares |Phi+> instead of |Psi+>.
    "qsandbox/sample_psi_plus": """
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    result = SamplerV2(seed=seed).run([qc], shots=shots).result()[0]
    return result.data.meas.get_counts()
""",
    # Translates to the basis gates but ignores the coupling map.
    "qsandbox/to_isa_circuit": """
    backend = FakeManilaV2()
    pass_manager = generate_preset_pass_manager(
        optimization_level=2, basis_gates=list(backend.operation_names), seed_transpiler=seed
    )
    return pass_manager.run(circuit)
""",
    # Round-trips the program without inverting it.
    "qsandbox/invert_qasm3": """
    return qasm3.dumps(qasm3.loads(program))
""",
    # Mixing weights swapped.
    "qsandbox/werner_state": """
    phi_plus = Statevector(np.array([1, 0, 0, 1]) / np.sqrt(2))
    rho = DensityMatrix(p * DensityMatrix(phi_plus).data + (1 - p) * np.eye(4) / 4)
    return rho, float(state_fidelity(rho, phi_plus)), float(rho.purity().real)
""",
    # Natural logarithm instead of bits.
    "qsandbox/subsystem_entropy": """
    import math
    state = Statevector(circuit)
    traced = [q for q in range(circuit.num_qubits) if q not in keep]
    return float(entropy(partial_trace(state, traced), base=math.e))
""",
    # Forgets the Z correction.
    "qsandbox/teleport_circuit": """
    cr = ClassicalRegister(3, "c")
    qc = QuantumCircuit(QuantumRegister(3, "q"), cr)
    qc.compose(prep, [0], inplace=True)
    qc.h(1)
    qc.cx(1, 2)
    qc.cx(0, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.measure(1, 1)
    with qc.if_test((cr[1], 1)):
        qc.x(2)
    if basis == "X":
        qc.h(2)
    qc.measure(2, 2)
    return qc
""",
    # Control and target swapped.
    "qsandbox/controlled_rz_from_cx": """
    qc = QuantumCircuit(2)
    qc.rz(theta / 2, 0)
    qc.cx(1, 0)
    qc.rz(-theta / 2, 0)
    qc.cx(1, 0)
    return qc
""",
}


@pytest.fixture(scope="module")
def tasks():
    return load_tasks(BUNDLED)


def test_bundled_tasks_are_well_formed(tasks):
    assert len(tasks) >= 12
    ids = [task.task_id for task in tasks.values()]
    assert len(ids) == len(set(ids))
    for task in tasks.values():
        assert task.task_id.startswith("qsandbox/")
        assert task.format == "completion"
        assert task.canonical_solution.strip(), task.task_id
        assert task.difficulty in DIFFICULTIES, (task.task_id, task.difficulty)
        assert task.metadata.get("topic"), task.task_id
        assert f"def {task.entry_point}(" in task.prompt
        assert task.prompt.endswith("\n")
        assert "def check(candidate):" in task.test


def test_every_task_has_a_wrong_answer(tasks):
    assert set(WRONG_ANSWERS) == set(tasks)


def test_canonical_solutions_pass(tasks, verifier):
    verdicts = verifier.verify_many([(t, t.canonical_solution) for t in tasks.values()])
    failed = [(v.task_id, v.outcome.value, v.detail) for v in verdicts if not v.passed]
    assert not failed


def test_wrong_answers_fail(tasks, verifier):
    pairs = [(tasks[task_id], body) for task_id, body in WRONG_ANSWERS.items()]
    pairs += [(task, "\n    return None\n") for task in tasks.values()]
    verdicts = verifier.verify_many(pairs)
    passed = [v.task_id for v in verdicts if v.passed]
    assert not passed
