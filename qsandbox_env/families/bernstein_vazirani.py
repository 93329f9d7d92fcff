"""Family ``bernstein_vazirani``: the Bernstein–Vazirani circuit for a random hidden string.

- basic: a secret of 3–6 bits, given as a bitstring; the test runs the circuit.
- intermediate: 4–8 bits; the oracle must also be appended once as a gate named ``"oracle"``,
  whose action the test checks on a random superposition.
- difficult: 6–10 bits, the secret given as an integer (the little-endian conversion is part of
  the task), oracle gate as above.

The test runs the circuit on ``AerSimulator`` (fixed seed) and needs the secret in every shot;
the outcome is deterministic, so the seed only pins the simulator down. Distinct tasks: 116 at
basic (one per non-zero secret and length), 491 at intermediate, 1,979 at difficult.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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
class BernsteinVaziraniConfig:
    """Knobs of one difficulty.

    Attributes:
        min_bits: Shortest secret.
        max_bits: Longest secret.
        oracle_gate: Require the oracle as one gate named ``"oracle"`` (its action is tested).
        secret_as_integer: Give the secret as an integer instead of a bitstring.
    """

    min_bits: int = 3
    max_bits: int = 6
    oracle_gate: bool = False
    secret_as_integer: bool = False

    def __post_init__(self) -> None:
        require_int_range(
            "BernsteinVaziraniConfig", "min_bits", self.min_bits, "max_bits", self.max_bits
        )
        if self.max_bits > 12:
            raise ValueError(
                f"BernsteinVaziraniConfig.max_bits: expected at most 12 (tests simulate the "
                f"whole register), got {self.max_bits}"
            )


PRESETS = {
    "basic": BernsteinVaziraniConfig(3, 6),
    "intermediate": BernsteinVaziraniConfig(4, 8, oracle_gate=True),
    "difficult": BernsteinVaziraniConfig(6, 10, oracle_gate=True, secret_as_integer=True),
}


def generate(rng: random.Random, config: BernsteinVaziraniConfig) -> GeneratedTask:
    """Draw a non-zero secret and write the task for it."""
    num_bits = rng.randint(config.min_bits, config.max_bits)
    value = rng.randrange(1, 2**num_bits)
    secret = format(value, f"0{num_bits}b")
    if config.secret_as_integer:
        given = (
            f"s, given as the integer {value}: little-endian, bit i of s is the secret bit of "
            f"query qubit i (so the measured bitstring is format(s, '0{num_bits}b'))"
        )
    else:
        given = (
            f"s = '{secret}', written in Qiskit's order (the rightmost character is the "
            "secret bit of query qubit 0)"
        )
    paragraphs = [
        f"Build the Bernstein-Vazirani circuit that finds the hidden {num_bits}-bit string "
        f"{given}.",
        f"Use qubits 0..{num_bits - 1} as the query register and qubit {num_bits} as the "
        f"oracle's target; the oracle maps |x>|y> to |x>|y XOR (s.x mod 2)>. The circuit has "
        f"{num_bits + 1} qubits and {num_bits} classical bits, measures query qubit i into "
        "classical bit i, and returns the secret in every shot.",
    ]
    if config.oracle_gate:
        paragraphs.append(
            f'Build the oracle as its own {num_bits + 1}-qubit circuit named "oracle", turn it '
            "into a gate with to_gate() and append it exactly once, on qubits "
            f"0..{num_bits} in order."
        )
    prompt = function_prompt(
        ["from qiskit import QuantumCircuit"], "bernstein_vazirani() -> QuantumCircuit", paragraphs
    )
    return GeneratedTask(
        entry_point="bernstein_vazirani",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(secret, value, config)),
        test=_test(secret, config.oracle_gate, rng.randrange(10_000)),
        parameters={"secret": secret, "num_bits": num_bits, "oracle_gate": config.oracle_gate},
    )


def _solution_lines(secret: str, value: int, config: BernsteinVaziraniConfig) -> list[str]:
    num_bits = len(secret)
    given = f'format({value}, "0{num_bits}b")' if config.secret_as_integer else repr(secret)
    oracle_name = ', name="oracle"' if config.oracle_gate else ""
    lines = [
        f"secret = {given}",
        "n = len(secret)",
        f"oracle = QuantumCircuit(n + 1{oracle_name})",
        "for qubit, bit in enumerate(reversed(secret)):",
        '    if bit == "1":',
        "        oracle.cx(qubit, n)",
        "qc = QuantumCircuit(n + 1, n)",
        "qc.x(n)",
        "qc.h(range(n + 1))",
    ]
    if config.oracle_gate:
        lines.append("qc.append(oracle.to_gate(), range(n + 1))")
    else:
        lines.append("qc.compose(oracle, inplace=True)")
    return [*lines, "qc.h(range(n))", "qc.measure(range(n), range(n))", "return qc"]


def _test(secret: str, oracle_gate: bool, seed: int) -> str:
    return check_function(
        [
            "import numpy as np",
            "from qiskit import transpile",
            "from qiskit.quantum_info import Statevector",
            "from qiskit_aer import AerSimulator",
        ],
        {"SECRET": secret, "ORACLE_GATE": oracle_gate, "SEED": seed},
        """
        n = len(SECRET)
        circuit = candidate()
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == n + 1, f"expected {n + 1} qubits"
        assert circuit.num_clbits == n, f"expected {n} classical bits"
        # Unrolling to a small basis is ~100x faster than transpiling for Aer's large target.
        unrolled = transpile(circuit, basis_gates=["u", "cx", "measure"], optimization_level=0)
        counts = AerSimulator(seed_simulator=SEED).run(unrolled, shots=64).result().get_counts()
        assert counts == {SECRET: 64}, f"expected {SECRET!r} in every shot, got {counts}"
        if ORACLE_GATE:
            found = [item for item in circuit.data if item.operation.name == "oracle"]
            assert len(found) == 1, f"expected one gate named 'oracle', found {len(found)}"
            qubits = [circuit.find_bit(qubit).index for qubit in found[0].qubits]
            assert qubits == list(range(n + 1)), f"oracle applied on {qubits}"
            rng = np.random.default_rng(SEED)
            data = rng.normal(size=2 ** (n + 1)) + 1j * rng.normal(size=2 ** (n + 1))
            data /= np.linalg.norm(data)
            expected = np.zeros_like(data)
            s = int(SECRET, 2)
            for index, amplitude in enumerate(data):
                x, y = index & ((1 << n) - 1), index >> n
                expected[x | ((y ^ (bin(s & x).count("1") & 1)) << n)] = amplitude
            evolved = Statevector(data).evolve(found[0].operation)
            assert evolved.equiv(Statevector(expected)), "the oracle computes the wrong function"
        """,
    )


register_family(
    Family(
        "bernstein_vazirani",
        "Bernstein-Vazirani circuits for random secrets",
        BernsteinVaziraniConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 116, "intermediate": 491, "difficult": 1979},
    )
)
