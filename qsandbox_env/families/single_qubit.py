"""Family ``single_qubit``: rotation angles and single-qubit unitaries.

- basic: apply a listed sequence of rotations (angles in multiples of pi/8) and H/S/T gates to one
  qubit of a 1–3 qubit register; the test compares unitaries.
- intermediate: prepare the Bloch-sphere state cos(theta/2)|0> + e^(i*phi) sin(theta/2)|1>
  (angles in multiples of pi/12) on one qubit of a 1–3 qubit register; the test compares states.
- difficult: ``implement_unitary(matrix)``: apply any given 2x2 unitary to one qubit of a 1–4
  qubit register using only the gates of one Euler basis (RZ/RY, RZ/RX, RX/RY or RZ/SX); the
  test tries four unitaries and checks the gate set.

Global phases never matter. The rotations and Bloch tasks refuse instructions defined by a state
vector or matrix (`checks.GATES_ONLY_RULE`); the unitary task accepts only genuine library gates
of its basis (a custom gate named ``rz`` wrapping a ``UnitaryGate`` fails). Distinct tasks:
millions at basic, 1,584 at intermediate, 40 at difficult (the matrices are arguments, so only
the basis and qubit vary in the prompt).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from qsandbox_env.families.checks import GATES_ONLY_RULE
from qsandbox_env.families.core import (
    Family,
    GeneratedTask,
    check_function,
    function_body,
    function_prompt,
    register_family,
    require_choices,
    require_int_range,
)

KINDS = ("rotations", "bloch", "unitary")
ROTATIONS = ("rx", "ry", "rz")
FIXED_GATES = ("h", "s", "t")
# Euler bases of OneQubitEulerDecomposer and the gates each one produces.
BASES = {"ZYZ": ("rz", "ry"), "ZXZ": ("rz", "rx"), "XYX": ("rx", "ry"), "ZSX": ("rz", "sx")}


@dataclass(frozen=True)
class SingleQubitConfig:
    """Knobs of one difficulty.

    Attributes:
        kind: ``"rotations"`` (apply listed gates), ``"bloch"`` (prepare a Bloch-sphere state)
            or ``"unitary"`` (implement a given matrix in an Euler basis).
        min_qubits: Smallest register.
        max_qubits: Largest register.
        min_gates: Fewest gates, for ``"rotations"``.
        max_gates: Most gates, for ``"rotations"``.
    """

    kind: str = "rotations"
    min_qubits: int = 1
    max_qubits: int = 3
    min_gates: int = 2
    max_gates: int = 4

    def __post_init__(self) -> None:
        owner = "SingleQubitConfig"
        require_choices(owner, "kind", (self.kind,), KINDS)
        require_int_range(owner, "min_qubits", self.min_qubits, "max_qubits", self.max_qubits)
        require_int_range(owner, "min_gates", self.min_gates, "max_gates", self.max_gates)


PRESETS = {
    "basic": SingleQubitConfig("rotations", 1, 3, 2, 4),
    "intermediate": SingleQubitConfig("bloch", 1, 3),
    "difficult": SingleQubitConfig("unitary", 1, 4),
}


def generate(rng: random.Random, config: SingleQubitConfig) -> GeneratedTask:
    """Draw a register, a target qubit and the kind's parameters, and write the task."""
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    qubit = rng.randrange(num_qubits)
    where = f"qubit {qubit} of a {num_qubits}-qubit register"
    if config.kind == "rotations":
        return _rotations(rng, config, num_qubits, qubit, where)
    if config.kind == "bloch":
        return _bloch(rng, num_qubits, qubit, where)
    return _unitary(rng, num_qubits, qubit, where)


def _angle(numerator: int, denominator: int) -> tuple[str, str]:
    """(prompt text, Python expression) for numerator*pi/denominator, as a reduced fraction."""
    common = math.gcd(numerator, denominator)
    top, bottom = numerator // common, denominator // common
    sign = "-" if top < 0 else ""
    factor = "" if abs(top) == 1 else f"{abs(top)}*"
    text = f"{sign}{factor}pi" + (f"/{bottom}" if bottom != 1 else "")
    code = f"{sign}{factor.replace('*', ' * ')}np.pi" + (f" / {bottom}" if bottom != 1 else "")
    return text, code


def _rotations(
    rng: random.Random, config: SingleQubitConfig, num_qubits: int, qubit: int, where: str
) -> GeneratedTask:
    count = rng.randint(config.min_gates, config.max_gates)
    names = [rng.choice(ROTATIONS)] + [
        rng.choice(ROTATIONS + FIXED_GATES) for _ in range(count - 1)
    ]
    rng.shuffle(names)
    ops: list[tuple[str, int]] = []
    for name in names:
        eighths = rng.choice([k for k in range(-15, 16) if k % 8]) if name in ROTATIONS else 0
        ops.append((name, eighths))
    listing = []
    lines = [f"qc = QuantumCircuit({num_qubits})"]
    for name, eighths in ops:
        if name in ROTATIONS:
            text, code = _angle(eighths, 8)
            listing.append(f"- {name.upper()}({text})")
            lines.append(f"qc.{name}({code}, {qubit})")
        else:
            listing.append(f"- {name.upper()}")
            lines.append(f"qc.{name}({qubit})")
    prompt = function_prompt(
        ["import numpy as np", "from qiskit import QuantumCircuit"],
        "rotation_circuit() -> QuantumCircuit",
        [
            f"Return a circuit (no classical bits) that applies these gates, in order, to "
            f"{where}:\n" + "\n".join(listing),
            f"Angles are in radians. A global phase does not matter. {GATES_ONLY_RULE}",
        ],
    )
    test = check_function(
        ["from qiskit.quantum_info import Operator"],
        {"NUM_QUBITS": num_qubits, "QUBIT": qubit, "OPS": ops},
        """
        # The candidate runs before the test computes anything it could read from this frame.
        circuit = candidate()
        reference = QuantumCircuit(NUM_QUBITS)
        for name, eighths in OPS:
            if name in ("rx", "ry", "rz"):
                getattr(reference, name)(eighths * np.pi / 8, QUBIT)
            else:
                getattr(reference, name)(QUBIT)
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == NUM_QUBITS, f"expected {NUM_QUBITS} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(circuit, candidate)
        assert Operator(circuit).equiv(Operator(reference)), "wrong unitary"
        """,
        snippets=("assert_built_from_gates",),
    )
    return GeneratedTask(
        "rotation_circuit",
        prompt,
        function_body([*lines, "return qc"]),
        _with_numpy(test),
        {"num_qubits": num_qubits, "qubit": qubit, "ops": ops},
    )


def _bloch(rng: random.Random, num_qubits: int, qubit: int, where: str) -> GeneratedTask:
    theta = rng.randint(1, 11)  # in units of pi/12; never a pole, so its sign matters
    phi = rng.randint(0, 23)
    theta_text, theta_code = _angle(theta, 12)
    lines = [f"qc = QuantumCircuit({num_qubits})", f"qc.ry({theta_code}, {qubit})"]
    if phi:
        phi_text, phi_code = _angle(phi, 12)
        lines.append(f"qc.rz({phi_code}, {qubit})")
    else:
        phi_text = "0"
    prompt = function_prompt(
        ["import numpy as np", "from qiskit import QuantumCircuit"],
        "prepare_bloch_state() -> QuantumCircuit",
        [
            f"Return a circuit (no classical bits, no measurements) that prepares, on {where}, "
            "the state cos(theta/2)|0> + e^(i*phi) sin(theta/2)|1> with "
            f"theta = {theta_text} and phi = {phi_text}, starting from |0...0>; every other "
            f"qubit stays |0>. A global phase does not matter. {GATES_ONLY_RULE}",
        ],
    )
    test = check_function(
        ["from qiskit.quantum_info import Statevector"],
        {"NUM_QUBITS": num_qubits, "QUBIT": qubit, "THETA_TWELFTHS": theta, "PHI_TWELFTHS": phi},
        """
        # The candidate runs before the test computes anything it could read from this frame.
        circuit = candidate()
        theta, phi = THETA_TWELFTHS * np.pi / 12, PHI_TWELFTHS * np.pi / 12
        expected = np.zeros(2**NUM_QUBITS, dtype=complex)
        expected[0] = np.cos(theta / 2)
        expected[1 << QUBIT] = np.exp(1j * phi) * np.sin(theta / 2)
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == NUM_QUBITS, f"expected {NUM_QUBITS} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(circuit, candidate)
        assert Statevector(circuit).equiv(Statevector(expected)), "wrong state"
        """,
        snippets=("assert_built_from_gates",),
    )
    return GeneratedTask(
        "prepare_bloch_state",
        prompt,
        function_body([*lines, "return qc"]),
        _with_numpy(test),
        {"num_qubits": num_qubits, "qubit": qubit, "theta_twelfths": theta, "phi_twelfths": phi},
    )


def _unitary(rng: random.Random, num_qubits: int, qubit: int, where: str) -> GeneratedTask:
    basis = rng.choice(sorted(BASES))
    gates = BASES[basis]
    prompt = function_prompt(
        [
            "import numpy as np",
            "from qiskit import QuantumCircuit",
            "from qiskit.synthesis import OneQubitEulerDecomposer",
        ],
        "implement_unitary(matrix: np.ndarray) -> QuantumCircuit",
        [
            "matrix is a 2x2 unitary. Return a circuit (no classical bits) that applies it to "
            f"{where} and nothing to the other qubits, using only {gates[0]} and {gates[1]} "
            "gates. A global phase does not matter.",
        ],
    )
    solution = [
        f'single = OneQubitEulerDecomposer(basis="{basis}")(matrix)',
        f"qc = QuantumCircuit({num_qubits})",
        f"qc.compose(single, [{qubit}], inplace=True)",
        "return qc",
    ]
    seeds = [rng.randrange(10_000) for _ in range(3)]
    test = check_function(
        ["from qiskit.quantum_info import Operator"],
        {"NUM_QUBITS": num_qubits, "QUBIT": qubit, "GATES": list(gates), "SEEDS": seeds},
        """
        def random_unitary(seed):
            # QR of a complex Gaussian matrix, phases fixed: a Haar-random unitary. (Qiskit's
            # random_unitary would import scipy.stats, a second or more in a fresh child.)
            rng = np.random.default_rng(seed)
            q, r = np.linalg.qr(rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))
            return q * (np.diag(r) / np.abs(np.diag(r)))

        hadamard = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
        matrices = [hadamard] + [random_unitary(seed) for seed in SEEDS]
        for matrix in matrices:
            circuit = candidate(matrix.copy())
            assert isinstance(circuit, QuantumCircuit), f"expected a circuit, got {circuit!r}"
            assert circuit.num_qubits == NUM_QUBITS, f"expected {NUM_QUBITS} qubits"
            assert circuit.num_clbits == 0, "expected no classical bits"
            assert_only_gates(circuit, GATES)
            reference = QuantumCircuit(NUM_QUBITS)
            reference.unitary(matrix, [QUBIT])
            assert Operator(circuit).equiv(Operator(reference)), "wrong unitary"
        """,
        snippets=("assert_only_gates",),
    )
    return GeneratedTask(
        "implement_unitary",
        prompt,
        function_body(solution),
        _with_numpy(test),
        {"num_qubits": num_qubits, "qubit": qubit, "basis": basis},
    )


def _with_numpy(test: str) -> str:
    # The prompt imports numpy too, but a test should not depend on the candidate's module.
    return test.replace(
        "def check(candidate):\n", "def check(candidate):\n    import numpy as np\n", 1
    )


register_family(
    Family(
        "single_qubit",
        "rotation angles, Bloch-sphere states and single-qubit unitaries",
        SingleQubitConfig,
        PRESETS,
        generate,
        distinct_tasks={"difficult": 40},
    )
)
