"""Family ``deutsch_jozsa``: build the Deutsch–Jozsa oracle for a constant or balanced function.

The oracle acts on n query qubits and one target, mapping |x>|y> to |x>|y XOR f(x)>.

- basic: n = 2–4; f is constant, a single input bit or a parity of input bits, possibly negated.
- intermediate: n = 3–6; f is constant or a parity of some input bits, possibly negated.
- difficult: n = 3–4; f is balanced and given by the list of inputs where it is 1.

The test refuses instructions defined by a matrix (a ``UnitaryGate`` of the truth table's
permutation is not a construction; `checks.GATES_ONLY_RULE`), checks the oracle's action on a
random superposition (so phases count too), then runs Deutsch–Jozsa with it: |0...0> is measured
with certainty exactly when f is constant. Distinct tasks: 56 at basic (few such functions
exist), 240 at intermediate, 12,940 at difficult.
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

KINDS = ("constant", "bit", "parity", "table")


@dataclass(frozen=True)
class DeutschJozsaConfig:
    """Knobs of one difficulty.

    Attributes:
        min_inputs: Fewest input bits.
        max_inputs: Most input bits.
        kinds: Function shapes to draw: ``"constant"``, ``"bit"`` (one input bit), ``"parity"``
            (XOR of some input bits) and ``"table"`` (balanced, given by its 1-inputs).
    """

    min_inputs: int = 2
    max_inputs: int = 4
    kinds: tuple[str, ...] = ("constant", "bit")

    def __post_init__(self) -> None:
        require_int_range(
            "DeutschJozsaConfig", "min_inputs", self.min_inputs, "max_inputs", self.max_inputs
        )
        require_choices("DeutschJozsaConfig", "kinds", self.kinds, KINDS)
        if "table" in self.kinds and self.max_inputs > 5:
            raise ValueError(
                "DeutschJozsaConfig.max_inputs: truth tables are listed in the prompt; expected "
                f"at most 5 inputs with kind 'table', got {self.max_inputs}"
            )


PRESETS = {
    "basic": DeutschJozsaConfig(2, 4, ("constant", "bit", "parity")),
    "intermediate": DeutschJozsaConfig(3, 6, ("constant", "parity")),
    "difficult": DeutschJozsaConfig(3, 4, ("table",)),
}


def generate(rng: random.Random, config: DeutschJozsaConfig) -> GeneratedTask:
    """Draw a function and write the task for its oracle."""
    n = rng.randint(config.min_inputs, config.max_inputs)
    kind = rng.choice(config.kinds)
    # Constant functions are few and easy: redraw half of them.
    if kind == "constant" and rng.random() < 0.5:
        kind = rng.choice([k for k in config.kinds if k != "constant"] or ["constant"])
    negate = rng.randint(0, 1)
    if kind == "constant":
        bits: list[int] = []
        description = f"f(x) = {negate} for every x"
    elif kind in ("bit", "parity"):
        count = 1 if kind == "bit" else rng.randint(1, n)
        bits = sorted(rng.sample(range(n), count))
        description = "f(x) = " + " XOR ".join(f"x_{q}" for q in bits) + " XOR 1" * negate
    else:
        bits = sorted(rng.sample(range(2**n), 2 ** (n - 1)))
        negate = 0
        description = f"f(x) = 1 exactly for x in {bits}, and 0 for every other x"
    truth = _truth_table(n, kind, bits, negate)
    prompt = function_prompt(
        ["from qiskit import QuantumCircuit"],
        "deutsch_jozsa_oracle() -> QuantumCircuit",
        [
            f"Build the Deutsch-Jozsa oracle for the {n}-bit function {description}.",
            f"Here x is the integer held by qubits 0..{n - 1} (qubit i holds bit i of x, so "
            f"x_i is the value of qubit i). Return a circuit on exactly {n + 1} qubits, with no "
            f"classical bits, that maps |x>|y> to |x>|y XOR f(x)> for every x and every y, with "
            f"y on qubit {n}. A global phase does not matter; relative phases do. "
            + GATES_ONLY_RULE,
        ],
    )
    return GeneratedTask(
        entry_point="deutsch_jozsa_oracle",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(n, kind, bits, negate)),
        test=_test(truth, rng.randrange(10_000)),
        parameters={
            "num_inputs": n,
            "kind": kind,
            "bits": bits,
            "negate": negate,
            "truth_table": truth,
        },
    )


def _truth_table(n: int, kind: str, bits: list[int], negate: int) -> str:
    """f(0), f(1), ... as a string of 0/1 characters."""
    if kind == "table":
        return "".join("1" if x in bits else "0" for x in range(2**n))
    return "".join(str((sum(x >> q & 1 for q in bits) + negate) % 2) for x in range(2**n))


def _solution_lines(n: int, kind: str, bits: list[int], negate: int) -> list[str]:
    lines = [f"n = {n}", "qc = QuantumCircuit(n + 1)"]
    if kind == "table":
        lines += [
            f"for x in {bits}:",
            "    zeros = [q for q in range(n) if not (x >> q) & 1]",
            "    if zeros:",
            "        qc.x(zeros)",
            "    qc.mcx(list(range(n)), n)",
            "    if zeros:",
            "        qc.x(zeros)",
        ]
    elif bits:
        lines += [f"for qubit in {bits}:", "    qc.cx(qubit, n)"]
    if negate:
        lines.append("qc.x(n)")
    return [*lines, "return qc"]


def _test(truth: str, seed: int) -> str:
    return check_function(
        ["import numpy as np", "from qiskit.quantum_info import Statevector"],
        {"TRUTH_TABLE": truth, "SEED": seed},
        """
        n = len(TRUTH_TABLE).bit_length() - 1
        oracle = candidate()
        assert isinstance(oracle, QuantumCircuit), f"expected a QuantumCircuit, got {oracle!r}"
        assert oracle.num_qubits == n + 1, f"expected {n + 1} qubits"
        assert oracle.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(oracle, candidate)
        rng = np.random.default_rng(SEED)
        data = rng.normal(size=2 ** (n + 1)) + 1j * rng.normal(size=2 ** (n + 1))
        data /= np.linalg.norm(data)
        expected = np.zeros_like(data)
        for index, amplitude in enumerate(data):
            x, y = index & ((1 << n) - 1), index >> n
            expected[x | ((y ^ int(TRUTH_TABLE[x])) << n)] = amplitude
        evolved = Statevector(data).evolve(oracle)
        assert evolved.equiv(Statevector(expected)), "the oracle computes the wrong function"
        algorithm = QuantumCircuit(n + 1)
        algorithm.x(n)
        algorithm.h(range(n + 1))
        algorithm.compose(oracle, inplace=True)
        algorithm.h(range(n))
        all_zero = Statevector(algorithm).probabilities(range(n))[0]
        constant = len(set(TRUTH_TABLE)) == 1
        assert abs(all_zero - (1.0 if constant else 0.0)) < 1e-9, "Deutsch-Jozsa misreads f"
        """,
        snippets=("assert_built_from_gates",),
    )


register_family(
    Family(
        "deutsch_jozsa",
        "Deutsch-Jozsa oracles for constant and balanced functions",
        DeutschJozsaConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 56, "intermediate": 240},
    )
)
