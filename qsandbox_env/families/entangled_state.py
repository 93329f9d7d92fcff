"""Family ``entangled_state``: prepare a GHZ-type or W state on chosen qubits of a register.

- basic: a GHZ state (|0..0> + |1..1>)/sqrt(2) or a W state on 2 or more chosen qubits of a
  3–6 qubit register; the other qubits stay |0>.
- intermediate: the same on a 4–7 qubit register, GHZ states with a relative phase k*pi/4.
- difficult: on a 5–8 qubit register, GHZ-type states between a random basis state and its
  complement with a relative phase, or W states on 4 or more qubits.

The test compares the whole register's state with the target, global phase ignored, and
refuses instructions defined by a state vector or matrix (`checks.GATES_ONLY_RULE`). Distinct
tasks: 196 at basic (one per register size, qubit subset and kind); over a thousand above.
"""

from __future__ import annotations

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

KINDS = ("ghz", "w")


@dataclass(frozen=True)
class EntangledStateConfig:
    """Knobs of one difficulty.

    Attributes:
        min_qubits: Smallest register.
        max_qubits: Largest register.
        kinds: Which states to draw: ``"ghz"`` and/or ``"w"``.
        min_subset: Fewest qubits the state is spread over (2 or more).
        phases: Give GHZ states a relative phase ``k*pi/4`` (k = 1..7).
        patterns: Let GHZ states superpose a random basis state and its complement, not 0..0/1..1.
    """

    min_qubits: int = 3
    max_qubits: int = 6
    kinds: tuple[str, ...] = KINDS
    min_subset: int = 2
    phases: bool = False
    patterns: bool = False

    def __post_init__(self) -> None:
        require_int_range(
            "EntangledStateConfig", "min_qubits", self.min_qubits, "max_qubits", self.max_qubits
        )
        require_choices("EntangledStateConfig", "kinds", self.kinds, KINDS)
        require_int_range(
            "EntangledStateConfig", "min_subset", self.min_subset, "min_qubits", self.min_qubits
        )
        if self.min_subset < 2:
            raise ValueError(
                f"EntangledStateConfig.min_subset: expected at least 2, got {self.min_subset}"
            )


PRESETS = {
    "basic": EntangledStateConfig(3, 6, KINDS, 2),
    "intermediate": EntangledStateConfig(4, 7, KINDS, 3, phases=True),
    "difficult": EntangledStateConfig(5, 8, KINDS, 4, phases=True, patterns=True),
}


def generate(rng: random.Random, config: EntangledStateConfig) -> GeneratedTask:
    """Draw a register, a qubit subset and a state, and write the task for it."""
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    size = rng.randint(config.min_subset, num_qubits)
    qubits = sorted(rng.sample(range(num_qubits), size))
    kind = rng.choice(config.kinds)
    bits = [0] * size
    phase = 0
    if kind == "ghz" and config.patterns:
        bits = [rng.randint(0, 1) for _ in qubits]
    if kind == "ghz" and config.phases:
        phase = rng.randint(1, 7)
    parameters = {
        "num_qubits": num_qubits,
        "kind": kind,
        "qubits": qubits,
        "bits": bits,
        "phase_quarter_pis": phase,
    }
    entry_point = "prepare_ghz_state" if kind == "ghz" else "prepare_w_state"
    prompt = function_prompt(
        ["import numpy as np", "from qiskit import QuantumCircuit"],
        f"{entry_point}() -> QuantumCircuit",
        [_target_text(num_qubits, kind, qubits, bits, phase), _CONTRACT.format(n=num_qubits)],
    )
    lines = _ghz_lines(qubits, bits, phase) if kind == "ghz" else _w_lines(qubits)
    return GeneratedTask(
        entry_point=entry_point,
        prompt=prompt,
        canonical_solution=function_body(
            [f"qc = QuantumCircuit({num_qubits})", *lines, "return qc"]
        ),
        test=_test(parameters),
        parameters=parameters,
    )


_CONTRACT = (
    "Return a QuantumCircuit on exactly {n} qubits, with no classical bits and no measurements, "
    "that maps |0...0> to this state; every qubit not listed stays in |0>. A global phase does "
    "not matter. " + GATES_ONLY_RULE
)


def _listing(qubits: list[int]) -> str:
    return ", ".join(str(q) for q in qubits[:-1]) + f" and {qubits[-1]}"


def _target_text(num_qubits: int, kind: str, qubits: list[int], bits: list[int], phase: int) -> str:
    where = f"qubits {_listing(qubits)} of a {num_qubits}-qubit register"
    if kind == "w":
        return (
            f"Prepare the W state on {where}: the equal superposition, with amplitude "
            f"1/sqrt({len(qubits)}) each, of the {len(qubits)} basis states in which exactly one "
            "of these qubits is |1>."
        )
    relative = "" if not phase else f" with relative phase phi = {phase}*pi/4"
    if any(bits):
        x_bits = ", ".join(str(b) for b in bits)
        y_bits = ", ".join(str(1 - b) for b in bits)
        return (
            f"Prepare a GHZ-type state on {where}: (|x> + e^(i*phi)|y>)/sqrt(2){relative}, where "
            f"in |x> these qubits hold {x_bits} (in the order listed) and in |y> they hold "
            f"{y_bits}."
        )
    formula = "(|0...0> + |1...1>)/sqrt(2)" if not phase else "(|0...0> + e^(i*phi)|1...1>)/sqrt(2)"
    return f"Prepare the GHZ state {formula}{relative} on {where}."


def _ghz_lines(qubits: list[int], bits: list[int], phase: int) -> list[str]:
    lines = [f"qubits = {qubits}", "qc.h(qubits[0])"]
    if phase:
        lines.append(f"qc.p({phase} * np.pi / 4, qubits[0])")
    lines += ["for target in qubits[1:]:", "    qc.cx(qubits[0], target)"]
    flipped = [q for q, bit in zip(qubits, bits, strict=True) if bit]
    if flipped:
        lines += [f"for qubit in {flipped}:", "    qc.x(qubit)"]
    return lines


def _w_lines(qubits: list[int]) -> list[str]:
    # Move one excitation down the chain, leaving amplitude 1/sqrt(k) behind at every qubit.
    return [
        f"qubits = {qubits}",
        "qc.x(qubits[0])",
        "for i in range(len(qubits) - 1):",
        "    theta = 2 * np.arccos(np.sqrt(1 / (len(qubits) - i)))",
        "    qc.cry(theta, qubits[i], qubits[i + 1])",
        "    qc.cx(qubits[i + 1], qubits[i])",
    ]


def _test(parameters: dict) -> str:
    return check_function(
        ["from qiskit.quantum_info import Statevector"],
        {
            "NUM_QUBITS": parameters["num_qubits"],
            "KIND": parameters["kind"],
            "QUBITS": parameters["qubits"],
            "BITS": parameters["bits"],
            "PHASE_QUARTER_PIS": parameters["phase_quarter_pis"],
        },
        """
        # The candidate runs before the test computes anything it could read from this frame.
        circuit = candidate()
        expected = np.zeros(2**NUM_QUBITS, dtype=complex)
        if KIND == "w":
            for qubit in QUBITS:
                expected[1 << qubit] = 1 / np.sqrt(len(QUBITS))
        else:
            x = sum(bit << qubit for qubit, bit in zip(QUBITS, BITS))
            y = sum((1 - bit) << qubit for qubit, bit in zip(QUBITS, BITS))
            expected[x] = 1 / np.sqrt(2)
            expected[y] = np.exp(1j * PHASE_QUARTER_PIS * np.pi / 4) / np.sqrt(2)
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == NUM_QUBITS, f"expected {NUM_QUBITS} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(circuit, candidate)
        state = Statevector(circuit)
        assert state.equiv(Statevector(expected)), "the circuit prepares the wrong state"
        """,
        snippets=("assert_built_from_gates",),
    )


register_family(
    Family(
        "entangled_state",
        "prepare GHZ-type and W states on chosen qubits",
        EntangledStateConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 196},
    )
)
