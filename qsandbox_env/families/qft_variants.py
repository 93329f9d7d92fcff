"""Family ``qft_variants``: the quantum Fourier transform on part of a register, in variants.

- basic: the QFT or its inverse on a block of consecutive qubits of a 3–5 qubit register.
- intermediate: on 2–4 qubits taken in a given (shuffled) order from a 4–6 qubit register, with
  or without the final qubit-order reversal, forward or inverse.
- difficult: as intermediate on 3–5 of 5–7 qubits, built only from H, controlled-phase and SWAP
  gates (no library QFT).

The test compares the candidate's unitary with one built from ``QFTGate``, global phase ignored,
and refuses a ``UnitaryGate`` of the transform's matrix (`checks.GATES_ONLY_RULE`). For difficult
tasks it accepts genuine h, cp and swap gates only and refuses code that calls the library's QFT
(``QFTGate``, ``QFT``, ``synth_qft_full``, ``synth_qft_line``), whose decomposition would
otherwise pass as hand-built. Distinct tasks: 38 at basic; thousands above.
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
    require_int_range,
)

LIBRARY_QFT = ["QFT", "QFTGate", "synth_qft_full", "synth_qft_line"]
"""Library routines that build the transform: forbidden where the task is building it."""


@dataclass(frozen=True)
class QftConfig:
    """Knobs of one difficulty.

    Attributes:
        min_qubits: Smallest register.
        max_qubits: Largest register.
        min_size: Fewest qubits the transform acts on (2 or more).
        max_size: Most qubits the transform acts on.
        scattered: Take the transform's qubits in a random order from anywhere in the register
            (otherwise a block of consecutive qubits in increasing order).
        vary_swaps: Sometimes ask for the transform without its final qubit reversal.
        elementary_gates: Ask for H, CP and SWAP gates only.
    """

    min_qubits: int = 3
    max_qubits: int = 5
    min_size: int = 2
    max_size: int = 5
    scattered: bool = False
    vary_swaps: bool = False
    elementary_gates: bool = False

    def __post_init__(self) -> None:
        require_int_range("QftConfig", "min_qubits", self.min_qubits, "max_qubits", self.max_qubits)
        require_int_range("QftConfig", "min_size", self.min_size, "max_size", self.max_size)
        require_int_range("QftConfig", "min_size", self.min_size, "min_qubits", self.min_qubits)
        if self.min_size < 2:
            raise ValueError(f"QftConfig.min_size: expected at least 2, got {self.min_size}")
        if self.max_qubits > 8:
            raise ValueError(
                f"QftConfig.max_qubits: expected at most 8 (tests compare unitaries), "
                f"got {self.max_qubits}"
            )


PRESETS = {
    "basic": QftConfig(3, 5, 2, 5),
    "intermediate": QftConfig(4, 6, 2, 4, scattered=True, vary_swaps=True),
    "difficult": QftConfig(5, 7, 3, 5, scattered=True, vary_swaps=True, elementary_gates=True),
}


def generate(rng: random.Random, config: QftConfig) -> GeneratedTask:
    """Draw a register, the transform's qubits and its variant, and write the task."""
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    size = rng.randint(config.min_size, min(config.max_size, num_qubits))
    if config.scattered:
        qubits = rng.sample(range(num_qubits), size)
    else:
        start = rng.randint(0, num_qubits - size)
        qubits = list(range(start, start + size))
    inverse = rng.random() < 0.5
    swaps = not config.vary_swaps or rng.random() < 0.5
    variant = {"inverse": inverse, "swaps": swaps, "elementary": config.elementary_gates}
    imports = ["import numpy as np", "from qiskit import QuantumCircuit"]
    if not config.elementary_gates:
        imports.append("from qiskit.circuit.library import QFTGate")
    prompt = function_prompt(
        imports, "qft_circuit() -> QuantumCircuit", _description(num_qubits, qubits, variant)
    )
    return GeneratedTask(
        entry_point="qft_circuit",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(num_qubits, qubits, variant)),
        test=_test(num_qubits, qubits, variant),
        parameters={"num_qubits": num_qubits, "qubits": qubits, **variant},
    )


def _description(num_qubits: int, qubits: list[int], variant: dict) -> list[str]:
    size = len(qubits)
    order = ", ".join(f"qubit {q} is its qubit {i}" for i, q in enumerate(qubits))
    name = (
        "inverse quantum Fourier transform" if variant["inverse"] else "quantum Fourier transform"
    )
    paragraphs = [
        f"Return a circuit on {num_qubits} qubits (no classical bits) that applies the "
        f"{size}-qubit {name} to qubits {qubits} of the register, taken in that order: "
        f"{order} (its qubit 0 holds the least significant bit). The other qubits are left "
        "alone.",
        f"The quantum Fourier transform here is Qiskit's QFTGate({size}): |j> -> "
        f"sum_l exp(2*pi*i*j*l / 2**{size}) |l> / sqrt(2**{size}), which includes a final "
        "reversal of the qubit order.",
    ]
    if not variant["swaps"]:
        inverse = " Apply the inverse of that transform." if variant["inverse"] else ""
        paragraphs.append(
            "Leave that final reversal out: the transform wanted equals QFTGate followed by "
            f"reversing the order of its {size} qubits.{inverse}"
        )
    if variant["elementary"]:
        paragraphs.append(
            "Use only h, cp and swap gates, placed yourself: no QFTGate, QFT, synth_qft_full or "
            "other library QFT, not even decomposed. A global phase does not matter."
        )
    else:
        paragraphs.append(f"A global phase does not matter. {GATES_ONLY_RULE}")
    return paragraphs


def _solution_lines(num_qubits: int, qubits: list[int], variant: dict) -> list[str]:
    lines = [f"qubits = {qubits}", "k = len(qubits)", "block = QuantumCircuit(k)"]
    if variant["elementary"]:
        lines += [
            "for j in reversed(range(k)):",
            "    block.h(j)",
            "    for m in reversed(range(j)):",
            "        block.cp(np.pi / 2 ** (j - m), j, m)",
        ]
        if variant["swaps"]:
            lines += ["for i in range(k // 2):", "    block.swap(i, k - 1 - i)"]
    else:
        lines.append("block.append(QFTGate(k), range(k))")
        if not variant["swaps"]:
            lines += ["for i in range(k // 2):", "    block.swap(i, k - 1 - i)"]
    if variant["inverse"]:
        lines.append("block = block.inverse()")
    return [
        *lines,
        f"qc = QuantumCircuit({num_qubits})",
        "qc.compose(block, qubits, inplace=True)",
        "return qc",
    ]


def _test(num_qubits: int, qubits: list[int], variant: dict) -> str:
    return check_function(
        ["from qiskit.circuit.library import QFTGate", "from qiskit.quantum_info import Operator"],
        {
            "NUM_QUBITS": num_qubits,
            "QUBITS": qubits,
            "INVERSE": variant["inverse"],
            "SWAPS": variant["swaps"],
            "ELEMENTARY": variant["elementary"],
            "LIBRARY_QFT": LIBRARY_QFT,
        },
        """
        # The candidate runs before the test computes anything it could read from this frame.
        circuit = candidate()
        k = len(QUBITS)
        block = QuantumCircuit(k)
        block.append(QFTGate(k), range(k))
        if not SWAPS:
            for i in range(k // 2):
                block.swap(i, k - 1 - i)
        if INVERSE:
            block = block.inverse()
        reference = QuantumCircuit(NUM_QUBITS)
        reference.compose(block, QUBITS, inplace=True)
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == NUM_QUBITS, f"expected {NUM_QUBITS} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        if ELEMENTARY:
            assert_only_gates(circuit, {"h", "cp", "swap"})
            assert_not_used(candidate, LIBRARY_QFT)
        else:
            assert_built_from_gates(circuit, candidate)
        assert Operator(circuit).equiv(Operator(reference)), "wrong unitary"
        """,
        snippets=("assert_only_gates", "assert_not_used", "assert_built_from_gates"),
    )


register_family(
    Family(
        "qft_variants",
        "QFT variants: inverse, on a register subset, with or without swaps",
        QftConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 38},
    )
)
