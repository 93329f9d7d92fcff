"""Family ``basis_state``: prepare a computational-basis or single-qubit product state.

- basic: a basis state given as a label such as ``|0110>`` on 2–6 qubits.
- intermediate: a basis state given as an integer ``k`` on 4–8 qubits (the little-endian
  conversion is part of the task).
- difficult: a product of single-qubit Pauli eigenstates (``|0>``, ``|1>``, ``|+>``, ``|->``,
  ``|+i>``, ``|-i>``) on 3–7 qubits, listed qubit by qubit.

The test compares the circuit's state with the target (global phase ignored), so any gate
sequence that prepares it passes; handing the target to ``initialize``, ``StatePreparation`` or
another instruction defined by a state vector or matrix fails (`checks.GATES_ONLY_RULE`).
Distinct tasks: 119 at basic and 491 at intermediate (one per non-zero basis state), over
280,000 at difficult.
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

SYMBOLS = ("0", "1", "+", "-", "r", "l")
# Gates that take |0> to each symbol's state (Statevector.from_label's "r" is |+i>, "l" is |-i>).
_GATES = {"0": (), "1": ("x",), "+": ("h",), "-": ("x", "h"), "r": ("h", "s"), "l": ("h", "sdg")}
_KET = {"0": "|0>", "1": "|1>", "+": "|+>", "-": "|->", "r": "|+i>", "l": "|-i>"}


@dataclass(frozen=True)
class BasisStateConfig:
    """Knobs of one difficulty.

    Attributes:
        min_qubits: Fewest qubits in the register.
        max_qubits: Most qubits in the register.
        symbols: Single-qubit states to draw from, as ``Statevector.from_label`` symbols.
        as_integer: Describe the target as an integer ``k`` instead of a label (0/1 only).
    """

    min_qubits: int = 2
    max_qubits: int = 6
    symbols: tuple[str, ...] = ("0", "1")
    as_integer: bool = False

    def __post_init__(self) -> None:
        require_int_range(
            "BasisStateConfig", "min_qubits", self.min_qubits, "max_qubits", self.max_qubits
        )
        require_choices("BasisStateConfig", "symbols", self.symbols, SYMBOLS)
        if len(self.symbols) < 2:
            raise ValueError(
                f"BasisStateConfig.symbols: expected at least two symbols, got {self.symbols!r}"
            )
        if self.as_integer and set(self.symbols) != {"0", "1"}:
            raise ValueError(
                "BasisStateConfig.as_integer: an integer describes basis states only; "
                f"expected symbols ('0', '1'), got {self.symbols!r}"
            )


PRESETS = {
    "basic": BasisStateConfig(2, 6, ("0", "1")),
    "intermediate": BasisStateConfig(4, 8, ("0", "1"), as_integer=True),
    "difficult": BasisStateConfig(3, 7, SYMBOLS),
}


def generate(rng: random.Random, config: BasisStateConfig) -> GeneratedTask:
    """Draw a non-trivial target state and write the task for it."""
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    label = "0" * num_qubits
    while set(label) == {"0"}:  # |0...0> needs no gate at all: not a task
        label = "".join(rng.choice(config.symbols) for _ in range(num_qubits))
    entry_point = "prepare_product_state" if set(label) - {"0", "1"} else "prepare_basis_state"
    prompt = function_prompt(
        ["from qiskit import QuantumCircuit"],
        f"{entry_point}() -> QuantumCircuit",
        [_target_text(label, config), _contract_text(num_qubits)],
    )
    return GeneratedTask(
        entry_point=entry_point,
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(label)),
        test=_test(label),
        parameters={"num_qubits": num_qubits, "label": label},
    )


def _target_text(label: str, config: BasisStateConfig) -> str:
    num_qubits = len(label)
    if config.as_integer:
        return (
            f"Prepare the computational basis state |k> for k = {int(label, 2)} on {num_qubits} "
            "qubits, in Qiskit's little-endian convention: qubit i holds bit i of k (the state "
            f"equals Statevector.from_int(k, 2**{num_qubits}))."
        )
    if set(label) <= {"0", "1"}:
        return (
            f"Prepare the computational basis state |{label}> on {num_qubits} qubits, written in "
            "Qiskit's order: the rightmost character is qubit 0."
        )
    states = "\n".join(f"- qubit {q}: {_KET[label[-1 - q]]}" for q in range(num_qubits))
    return (
        f"Prepare the product state of {num_qubits} qubits in which each qubit is in the "
        "single-qubit state listed below (|+i> = (|0> + i|1>)/sqrt(2), "
        "|-i> = (|0> - i|1>)/sqrt(2)):\n" + states
    )


def _contract_text(num_qubits: int) -> str:
    return (
        f"Return a QuantumCircuit on exactly {num_qubits} qubits, with no classical bits and no "
        "measurements, that maps |0...0> to this state (a global phase does not matter). "
        + GATES_ONLY_RULE
    )


def _solution_lines(label: str) -> list[str]:
    lines = [f"qc = QuantumCircuit({len(label)})"]
    for qubit in range(len(label)):
        lines += [f"qc.{gate}({qubit})" for gate in _GATES[label[-1 - qubit]]]
    return [*lines, "return qc"]


def _test(label: str) -> str:
    return check_function(
        ["from qiskit.quantum_info import Statevector"],
        {"LABEL": label},
        """
        circuit = candidate()
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == len(LABEL), f"expected {len(LABEL)} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(circuit, candidate)
        expected = Statevector.from_label(LABEL)
        assert Statevector(circuit).equiv(expected), "the circuit prepares the wrong state"
        """,
        snippets=("assert_built_from_gates",),
    )


register_family(
    Family(
        "basis_state",
        "prepare a basis or product state",
        BasisStateConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 119, "intermediate": 491},
    )
)
