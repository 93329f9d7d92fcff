"""Family ``pauli_expectation``: expectation value of a Pauli-sum observable with the Estimator.

The prompt spells out a circuit of rotations (angles taken from the function's ``theta``
argument) and entangling gates, and an observable as a ``SparsePauliOp`` list; the solution
evaluates <psi|O|psi> with the V2 ``StatevectorEstimator`` and returns a float.

- basic: 2 qubits, 2–3 gates, 1–2 Pauli terms.
- intermediate: 3 qubits, 4–6 gates, 2–3 terms.
- difficult: 4–5 qubits, 7–10 gates (RX/RY/RZ, H, CX, CZ), 3–4 terms.

The test evaluates the candidate at three angle vectors against an exact ``Statevector``
reference (tolerance 1e-6). At least one Pauli label is not a palindrome, so reading labels in
the wrong qubit order gives another number. Distinct tasks: millions at every difficulty.
"""

from __future__ import annotations

import cmath
import math
import random
from dataclasses import dataclass

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

ROTATIONS = ("rx", "ry", "rz")
GATES = (*ROTATIONS, "h", "cx", "cz")
_COEFFICIENTS = [c / 4 for c in range(-8, 9) if c]  # multiples of 0.25 in [-2, 2], never zero


@dataclass(frozen=True)
class PauliExpectationConfig:
    """Knobs of one difficulty.

    Attributes:
        min_qubits: Fewest qubits.
        max_qubits: Most qubits.
        min_gates: Fewest gates in the circuit.
        max_gates: Most gates in the circuit.
        min_terms: Fewest Pauli terms in the observable.
        max_terms: Most Pauli terms in the observable.
        gates: Gate names to draw from (at least one rotation and one two-qubit gate).
    """

    min_qubits: int = 2
    max_qubits: int = 2
    min_gates: int = 2
    max_gates: int = 3
    min_terms: int = 1
    max_terms: int = 2
    gates: tuple[str, ...] = ("ry", "cx")

    def __post_init__(self) -> None:
        owner = "PauliExpectationConfig"
        require_int_range(owner, "min_qubits", self.min_qubits, "max_qubits", self.max_qubits)
        require_int_range(owner, "min_gates", self.min_gates, "max_gates", self.max_gates)
        require_int_range(owner, "min_terms", self.min_terms, "max_terms", self.max_terms)
        require_choices(owner, "gates", self.gates, GATES)
        if self.min_qubits < 2 or self.min_gates < 2:
            raise ValueError(
                f"{owner}: expected min_qubits >= 2 and min_gates >= 2 (a rotation and an "
                f"entangling gate), got {self.min_qubits} and {self.min_gates}"
            )
        if not set(self.gates) & set(ROTATIONS) or not set(self.gates) & {"cx", "cz"}:
            raise ValueError(
                f"{owner}.gates: expected at least one rotation and one of cx/cz, "
                f"got {self.gates!r}"
            )


PRESETS = {
    "basic": PauliExpectationConfig(2, 2, 2, 3, 1, 2, ("ry", "cx")),
    "intermediate": PauliExpectationConfig(3, 3, 4, 6, 2, 3, ("rx", "ry", "h", "cx")),
    "difficult": PauliExpectationConfig(4, 5, 7, 10, 3, 4, GATES),
}


def generate(rng: random.Random, config: PauliExpectationConfig) -> GeneratedTask:
    """Draw a circuit and an observable and write the task for them."""
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    while True:
        ops = _draw_circuit(rng, config, num_qubits)
        terms = _draw_observable(rng, config, num_qubits)
        num_angles = sum(op[0] in ROTATIONS for op in ops)
        thetas = [[round(rng.uniform(-3.1, 3.1), 4) for _ in range(num_angles)] for _ in range(3)]
        if _discriminating(num_qubits, ops, terms, thetas):
            break
    prompt = function_prompt(
        [
            "from qiskit import QuantumCircuit",
            "from qiskit.primitives import StatevectorEstimator",
            "from qiskit.quantum_info import SparsePauliOp",
        ],
        "expectation_value(theta: list[float]) -> float",
        [
            f"Build this circuit on {num_qubits} qubits, starting from |0...0> and applying, "
            "in order:\n" + "\n".join(f"- {_describe(op)}" for op in ops),
            f"theta holds {num_angles} angle{'s' * (num_angles != 1)} in radians. Return the "
            "expectation value <psi|O|psi> of the observable\n"
            f"    O = SparsePauliOp.from_list({terms!r})\n"
            "in the state psi the circuit prepares (Pauli labels in Qiskit's order: the "
            "rightmost letter acts on qubit 0). Compute it with the V2 StatevectorEstimator "
            "and return it as a Python float.",
        ],
    )
    return GeneratedTask(
        entry_point="expectation_value",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(num_qubits, ops, terms)),
        test=_test(num_qubits, ops, terms, thetas),
        parameters={
            "num_qubits": num_qubits,
            "ops": [list(op) for op in ops],
            "terms": [list(term) for term in terms],
        },
    )


def _draw_circuit(
    rng: random.Random, config: PauliExpectationConfig, num_qubits: int
) -> list[tuple]:
    """Gates as (name, qubits..., angle index); every circuit has a rotation and an entangler."""
    rotations = [g for g in config.gates if g in ROTATIONS]
    entanglers = [g for g in config.gates if g in ("cx", "cz")]
    names = [rng.choice(rotations), rng.choice(entanglers)]
    names += [
        rng.choice(config.gates) for _ in range(rng.randint(config.min_gates, config.max_gates) - 2)
    ]
    rng.shuffle(names)
    ops: list[tuple] = []
    angle = 0
    for name in names:
        if name in ("cx", "cz"):
            control, target = rng.sample(range(num_qubits), 2)
            ops.append((name, control, target))
        elif name in ROTATIONS:
            ops.append((name, rng.randrange(num_qubits), angle))
            angle += 1
        else:
            ops.append((name, rng.randrange(num_qubits)))
    return ops


def _draw_observable(
    rng: random.Random, config: PauliExpectationConfig, num_qubits: int
) -> list[tuple[str, float]]:
    count = rng.randint(config.min_terms, config.max_terms)
    while True:
        labels = {"".join(rng.choice("IXYZ") for _ in range(num_qubits)) for _ in range(count)}
        labels.discard("I" * num_qubits)
        # A label that reads the same both ways would not catch a reversed qubit order.
        if len(labels) == count and any(label != label[::-1] for label in labels):
            return [(label, rng.choice(_COEFFICIENTS)) for label in sorted(labels)]


def _describe(op: tuple) -> str:
    name = op[0]
    if name in ROTATIONS:
        return f"{name.upper()}(theta[{op[2]}]) on qubit {op[1]}"
    if name == "h":
        return f"H on qubit {op[1]}"
    return f"{name.upper()} with control qubit {op[1]} and target qubit {op[2]}"


def _call(op: tuple) -> str:
    if op[0] in ROTATIONS:
        return f"qc.{op[0]}(theta[{op[2]}], {op[1]})"
    return f"qc.{op[0]}({', '.join(str(q) for q in op[1:])})"


def _solution_lines(num_qubits: int, ops: list[tuple], terms: list) -> list[str]:
    return [
        f"qc = QuantumCircuit({num_qubits})",
        *(_call(op) for op in ops),
        f"observable = SparsePauliOp.from_list({terms!r})",
        "result = StatevectorEstimator().run([(qc, observable)]).result()",
        "return float(result[0].data.evs)",
    ]


def _test(num_qubits: int, ops: list[tuple], terms: list, thetas: list[list[float]]) -> str:
    # The task asks for the V2 StatevectorEstimator: the test requires the candidate's code to
    # run one, so the same number worked out with Statevector (shorter, and common in old code)
    # does not pass. The candidate runs in another process; what its code refers to is read from
    # its text.
    return check_function(
        [
            "from qiskit.primitives import StatevectorEstimator",
            "from qiskit.quantum_info import Statevector",
        ],
        {"NUM_QUBITS": num_qubits, "OPS": ops, "TERMS": terms, "THETAS": thetas},
        """
        observable = SparsePauliOp.from_list(TERMS)
        used = referenced_names(candidate)
        assert {"StatevectorEstimator", "run"} <= used, (
            "the value was not computed with the V2 StatevectorEstimator"
        )
        for theta in THETAS:
            value = candidate(list(theta))
            reference = QuantumCircuit(NUM_QUBITS)
            for name, *args in OPS:
                if name in ("rx", "ry", "rz"):
                    getattr(reference, name)(theta[args[1]], args[0])
                else:
                    getattr(reference, name)(*args)
            expected = Statevector(reference).expectation_value(observable).real
            assert isinstance(value, float), f"expected a float, got {type(value).__name__}"
            assert abs(value - expected) < 1e-6, f"theta={theta}: got {value}, expected {expected}"
        """,
        snippets=["referenced_names"],
    )


# -- a tiny exact simulator, so that only tasks whose test tells answers apart are kept --------
_MARGIN = 0.05  # far above the test's 1e-6 tolerance


def _discriminating(num_qubits: int, ops: list[tuple], terms: list, thetas: list) -> bool:
    """Whether the right answer differs from a constant and from the reversed-label answer."""
    reversed_terms = [(label[::-1], coefficient) for label, coefficient in terms]
    values, mistaken = [], []
    for theta in thetas:
        state = _simulate(num_qubits, ops, theta)
        values.append(_expectation(state, terms))
        mistaken.append(_expectation(state, reversed_terms))
    varies = max(values) - min(values) > _MARGIN
    return varies and max(abs(a - b) for a, b in zip(values, mistaken, strict=True)) > _MARGIN


def _simulate(num_qubits: int, ops: list[tuple], theta: list[float]) -> list[complex]:
    state = [0j] * (1 << num_qubits)
    state[0] = 1
    for op in ops:
        if op[0] in ("cx", "cz"):
            state = _controlled(state, op[0], op[1], op[2])
        else:
            angle = theta[op[2]] if op[0] in ROTATIONS else 0.0
            state = _single(state, _matrix(op[0], angle), op[1])
    return state


def _matrix(name: str, angle: float) -> tuple[complex, complex, complex, complex]:
    c, s = math.cos(angle / 2), math.sin(angle / 2)
    if name == "rx":
        return (c, -1j * s, -1j * s, c)
    if name == "ry":
        return (c, -s, s, c)
    if name == "rz":
        return (cmath.exp(-0.5j * angle), 0, 0, cmath.exp(0.5j * angle))
    r = 1 / math.sqrt(2)
    return (r, r, r, -r)


def _single(state: list[complex], m: tuple, qubit: int) -> list[complex]:
    out = list(state)
    bit = 1 << qubit
    for i in range(len(state)):
        if not i & bit:
            a, b = state[i], state[i | bit]
            out[i], out[i | bit] = m[0] * a + m[1] * b, m[2] * a + m[3] * b
    return out


def _controlled(state: list[complex], name: str, control: int, target: int) -> list[complex]:
    out = list(state)
    for i in range(len(state)):
        if i >> control & 1:
            if name == "cz":
                out[i] = -state[i] if i >> target & 1 else state[i]
            else:
                out[i] = state[i ^ (1 << target)]
    return out


def _expectation(state: list[complex], terms: list) -> float:
    total = 0.0
    for label, coefficient in terms:
        image = list(state)
        for position, letter in enumerate(reversed(label)):  # rightmost letter is qubit 0
            if letter != "I":
                image = _single(image, _PAULI[letter], position)
        total += coefficient * sum(
            (a.conjugate() * b).real for a, b in zip(state, image, strict=True)
        )
    return total


_PAULI = {"X": (0, 1, 1, 0), "Y": (0, -1j, 1j, 0), "Z": (1, 0, 0, -1)}


register_family(
    Family(
        "pauli_expectation",
        "Pauli-sum expectation values with the Estimator",
        PauliExpectationConfig,
        PRESETS,
        generate,
    )
)
