"""Family ``grover_search``: Grover's search for marked bitstrings, a given number of rounds.

- basic: 2–4 qubits, one marked state, the (optimal) number of iterations given.
- intermediate: 3–4 qubits, 1–2 marked states, a given number of iterations (1 to one past the
  optimum, so over-rotation is part of the task).
- difficult: 4–5 qubits, 2–3 marked states; the solution computes the optimal number of
  iterations itself from the formula in the prompt.

The solution builds the phase oracle as one gate named ``"oracle"`` and appends it once per
iteration. After k iterations the state is sin((2k+1)t)/sqrt(M) on each marked state and
cos((2k+1)t)/sqrt(N-M) on every other one, with sin(t) = sqrt(M/N). The test checks that the
oracle is queried k times and flips exactly the marked states, compares the whole state with the
formula (global phase ignored), then swaps in oracles for other sets of M marked states and
compares again: preparing the final state directly, or anything else that does not search
through the oracle, fails. Distinct tasks: 28 at basic (one per marked state), 504 at
intermediate, thousands at difficult.
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
    require_int_range,
)


@dataclass(frozen=True)
class GroverSearchConfig:
    """Knobs of one difficulty.

    Attributes:
        min_qubits: Fewest qubits.
        max_qubits: Most qubits.
        min_marked: Fewest marked states.
        max_marked: Most marked states (capped at a quarter of the basis states per task).
        vary_iterations: Give a number of iterations between 1 and one past the optimum.
        derive_iterations: Ask the solution to compute the optimal number itself.
    """

    min_qubits: int = 2
    max_qubits: int = 4
    min_marked: int = 1
    max_marked: int = 1
    vary_iterations: bool = False
    derive_iterations: bool = False

    def __post_init__(self) -> None:
        owner = "GroverSearchConfig"
        require_int_range(owner, "min_qubits", self.min_qubits, "max_qubits", self.max_qubits)
        require_int_range(owner, "min_marked", self.min_marked, "max_marked", self.max_marked)
        if self.min_qubits < 2 or self.max_qubits > 8:
            raise ValueError(
                f"{owner}: expected 2 <= min_qubits and max_qubits <= 8, "
                f"got {self.min_qubits} and {self.max_qubits}"
            )
        if 4 * self.min_marked > 2**self.min_qubits:
            raise ValueError(
                f"{owner}.min_marked: Grover needs at most a quarter of the states marked; "
                f"expected at most {2**self.min_qubits // 4} for {self.min_qubits} qubits, "
                f"got {self.min_marked}"
            )
        if self.vary_iterations and self.derive_iterations:
            raise ValueError(f"{owner}: choose vary_iterations or derive_iterations, not both")


OTHER_MARKED_SETS = 2
"""Oracles for this many other sets of marked states are swapped into each candidate circuit."""

PRESETS = {
    "basic": GroverSearchConfig(2, 4, 1, 1),
    "intermediate": GroverSearchConfig(3, 4, 1, 2, vary_iterations=True),
    "difficult": GroverSearchConfig(4, 5, 2, 3, derive_iterations=True),
}


def optimal_iterations(num_qubits: int, num_marked: int) -> int:
    """floor(pi / (4 t)) with sin(t) = sqrt(M / N): the count that brings the state closest to
    the marked subspace.

    Example:
        >>> optimal_iterations(2, 1), optimal_iterations(5, 1)
        (1, 4)
    """
    theta = math.asin(math.sqrt(num_marked / 2**num_qubits))
    return math.floor(math.pi / (4 * theta))


def generate(rng: random.Random, config: GroverSearchConfig) -> GeneratedTask:
    """Draw the marked states and the iteration count, and write the task."""
    n = rng.randint(config.min_qubits, config.max_qubits)
    count = rng.randint(config.min_marked, min(config.max_marked, 2**n // 4))
    marked = sorted(format(value, f"0{n}b") for value in rng.sample(range(2**n), count))
    iterations = optimal_iterations(n, count)
    if config.vary_iterations:
        iterations = rng.randint(1, iterations + 1)
    if config.derive_iterations:
        rounds = (
            "Apply the number of Grover iterations that maximises the probability of measuring "
            "a marked state, k = floor(pi / (4*t)) with t = arcsin(sqrt(M / N)), where M is the "
            f"number of marked states and N = 2**{n}; compute k in your code."
        )
    else:
        rounds = f"Apply exactly {iterations} Grover iteration{'s' * (iterations != 1)}."
    imports = ["import math"] if config.derive_iterations else []
    prompt = function_prompt(
        [*imports, "from qiskit import QuantumCircuit"],
        "grover_circuit() -> QuantumCircuit",
        [
            f"Return a circuit on {n} qubits (no classical bits, no measurements) that runs "
            f"Grover's search for the marked basis states {marked} (bitstrings in Qiskit's "
            "order: the rightmost character is qubit 0).",
            "Start from the uniform superposition (H on every qubit); each Grover iteration is "
            "the phase oracle that flips the sign of the marked states, followed by the diffusion "
            f"operator 2|s><s| - I about the uniform superposition |s>. {rounds} A global phase "
            "does not matter.",
            f'Build the oracle as its own {n}-qubit circuit named "oracle", turn it into a gate '
            f"with to_gate() and append it on qubits 0..{n - 1}, once per iteration. The rest "
            "of the circuit must not depend on the marked states: the test swaps in oracles "
            f"for other marked states and expects Grover's state for them. {GATES_ONLY_RULE}",
        ],
    )
    others = [_draw_marked(rng, n, count, avoid=marked) for _ in range(OTHER_MARKED_SETS)]
    return GeneratedTask(
        entry_point="grover_circuit",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(n, marked, iterations, config)),
        test=_test([marked, *others], iterations),
        parameters={
            "num_qubits": n,
            "marked": marked,
            "iterations": iterations,
            "other_marked": others,
        },
    )


def _draw_marked(rng: random.Random, n: int, count: int, avoid: list[str]) -> list[str]:
    """Another set of ``count`` marked states, not the set ``avoid``."""
    while True:
        marked = sorted(format(value, f"0{n}b") for value in rng.sample(range(2**n), count))
        if marked != avoid:
            return marked


def _solution_lines(
    n: int, marked: list[str], iterations: int, config: GroverSearchConfig
) -> list[str]:
    lines = [f"n = {n}", f"marked = {marked}"]
    if config.derive_iterations:
        lines += [
            "theta = math.asin(math.sqrt(len(marked) / 2**n))",
            "iterations = math.floor(math.pi / (4 * theta))",
        ]
    else:
        lines.append(f"iterations = {iterations}")
    return [
        *lines,
        "",
        "def flip_phase_of_all_ones(qc):",
        "    qc.h(n - 1)",
        "    qc.mcx(list(range(n - 1)), n - 1)",
        "    qc.h(n - 1)",
        "",
        'oracle = QuantumCircuit(n, name="oracle")',
        "for bits in marked:",
        '    zeros = [q for q in range(n) if bits[n - 1 - q] == "0"]',
        "    if zeros:",
        "        oracle.x(zeros)",
        "    flip_phase_of_all_ones(oracle)",
        "    if zeros:",
        "        oracle.x(zeros)",
        "oracle = oracle.to_gate()",
        "qc = QuantumCircuit(n)",
        "qc.h(range(n))",
        "for _ in range(iterations):",
        "    qc.append(oracle, range(n))",
        "    qc.h(range(n))",
        "    qc.x(range(n))",
        "    flip_phase_of_all_ones(qc)",
        "    qc.x(range(n))",
        "    qc.h(range(n))",
        "return qc",
    ]


def _test(marked_sets: list[list[str]], iterations: int) -> str:
    return check_function(
        [
            "import numpy as np",
            "from qiskit.circuit.library import DiagonalGate",
            "from qiskit.quantum_info import Operator, Statevector",
        ],
        {"MARKED_SETS": marked_sets, "ITERATIONS": iterations},
        """
        def signs(marked):
            values = np.ones(size)
            for bits in marked:
                values[int(bits, 2)] = -1
            return values

        def grover_state(marked):
            angle = (2 * ITERATIONS + 1) * np.arcsin(np.sqrt(count / size))
            state = np.full(size, np.cos(angle) / np.sqrt(size - count), dtype=complex)
            for bits in marked:
                state[int(bits, 2)] = np.sin(angle) / np.sqrt(count)
            return Statevector(state)

        n, count = len(MARKED_SETS[0][0]), len(MARKED_SETS[0])
        size = 2**n
        circuit = candidate()
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == n, f"expected {n} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(circuit, candidate)
        calls = oracle_calls(circuit)
        assert len(calls) == ITERATIONS, f"expected {ITERATIONS} oracle calls, found {len(calls)}"
        wanted = Operator(np.diag(signs(MARKED_SETS[0])))
        for oracle in {id(oracle): oracle for oracle in calls}.values():  # each gate once
            assert Operator(oracle).equiv(wanted), "the oracle flips the wrong states"
        state = Statevector(circuit)
        assert state.equiv(grover_state(MARKED_SETS[0])), "wrong state after the Grover iterations"
        for marked in MARKED_SETS[1:]:
            other = Statevector(with_oracle(circuit, DiagonalGate(list(signs(marked)))))
            assert other.equiv(grover_state(marked)), f"with {marked} marked: not Grover's state"
        """,
        snippets=("assert_built_from_gates", "oracle_calls", "with_oracle"),
    )


register_family(
    Family(
        "grover_search",
        "Grover search for marked bitstrings",
        GroverSearchConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 28, "intermediate": 504},
    )
)
