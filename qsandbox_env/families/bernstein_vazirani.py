"""Family ``bernstein_vazirani``: the Bernstein–Vazirani circuit for a hidden string.

- basic: ``bernstein_vazirani(oracle)`` receives the oracle as a black box, an opaque gate with
  no definition, for a hidden string of 3–8 bits; the prompt places the oracle's target on a
  random qubit, the query register on the others.
- intermediate: the secret (4–8 bits) is given as a bitstring; the solution builds the oracle
  itself, as one gate named ``"oracle"`` appended once, whose action the test checks on a random
  superposition.
- difficult: 6–10 bits, the secret given as an integer (the little-endian conversion is part of
  the task), oracle gate as above.

Whatever the level, the test finds the oracle in the returned circuit (it must be queried exactly
once), swaps in oracles for other secrets and runs every version on ``AerSimulator`` (fixed seed,
one job): each must read its own secret in every shot. So the circuit has to find the secret
through the oracle; writing the secret with X gates, with or without an idle oracle beside
them, fails. Distinct tasks: 39 at basic (one per length and target position), 491 at
intermediate, 1,979 at difficult.
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

OTHER_SECRETS = 2
"""Oracles for this many other secrets are swapped into each candidate circuit."""


@dataclass(frozen=True)
class BernsteinVaziraniConfig:
    """Knobs of one difficulty.

    Attributes:
        min_bits: Shortest secret.
        max_bits: Longest secret.
        oracle_given: Pass the oracle to the solution as an opaque gate; the secret is not told.
        oracle_gate: Give the secret and require the oracle as one gate named ``"oracle"``.
        secret_as_integer: Give the secret as an integer instead of a bitstring.
    """

    min_bits: int = 3
    max_bits: int = 8
    oracle_given: bool = True
    oracle_gate: bool = False
    secret_as_integer: bool = False

    def __post_init__(self) -> None:
        owner = "BernsteinVaziraniConfig"
        require_int_range(owner, "min_bits", self.min_bits, "max_bits", self.max_bits)
        if self.max_bits > 12:
            raise ValueError(
                f"{owner}.max_bits: expected at most 12 (tests simulate the whole register), "
                f"got {self.max_bits}"
            )
        if self.min_bits < 2:
            raise ValueError(
                f"{owner}.min_bits: expected at least 2 (other secrets are swapped in), "
                f"got {self.min_bits}"
            )
        if self.oracle_given == self.oracle_gate:
            raise ValueError(
                f"{owner}: expected exactly one of oracle_given and oracle_gate, "
                f"got {self.oracle_given} and {self.oracle_gate}"
            )
        if self.oracle_given and self.secret_as_integer:
            raise ValueError(
                f"{owner}.secret_as_integer: a given oracle keeps its secret hidden; "
                "expected False with oracle_given"
            )


PRESETS = {
    "basic": BernsteinVaziraniConfig(3, 8),
    "intermediate": BernsteinVaziraniConfig(4, 8, oracle_given=False, oracle_gate=True),
    "difficult": BernsteinVaziraniConfig(
        6, 10, oracle_given=False, oracle_gate=True, secret_as_integer=True
    ),
}


def generate(rng: random.Random, config: BernsteinVaziraniConfig) -> GeneratedTask:
    """Draw a secret (and, for a given oracle, the target's position) and write the task."""
    num_bits = rng.randint(config.min_bits, config.max_bits)
    secrets = [
        format(value, f"0{num_bits}b")
        for value in rng.sample(range(1, 2**num_bits), 1 + OTHER_SECRETS)
    ]
    target = rng.randint(0, num_bits) if config.oracle_given else num_bits
    query = [qubit for qubit in range(num_bits + 1) if qubit != target]
    if config.oracle_given:
        signature = "bernstein_vazirani(oracle: Gate) -> QuantumCircuit"
        paragraphs = _given_oracle_text(num_bits, query, target)
        lines = _given_oracle_solution(query, target)
    else:
        signature = "bernstein_vazirani() -> QuantumCircuit"
        paragraphs = _oracle_gate_text(secrets[0], config.secret_as_integer)
        lines = _oracle_gate_solution(secrets[0], config.secret_as_integer)
    prompt = function_prompt(
        ["from qiskit import QuantumCircuit", "from qiskit.circuit import Gate"],
        signature,
        paragraphs,
    )
    return GeneratedTask(
        entry_point="bernstein_vazirani",
        prompt=prompt,
        canonical_solution=function_body(lines),
        test=_test(secrets, query, target, config.oracle_given, rng.randrange(10_000)),
        parameters={
            "secret": secrets[0],
            "other_secrets": secrets[1:],
            "num_bits": num_bits,
            "target_qubit": target,
            "oracle_given": config.oracle_given,
            "oracle_gate": config.oracle_gate,
        },
    )


def _given_oracle_text(num_bits: int, query: list[int], target: int) -> list[str]:
    return [
        f"oracle is a black-box {num_bits + 1}-qubit gate for a hidden {num_bits}-bit string "
        f"s: applied to qubits (x_0, ..., x_{num_bits - 1}, y), in that order, it maps "
        "|x>|y> to |x>|y XOR (s.x mod 2)>, where x_i is bit i of x. It is opaque (no "
        "definition to inspect or simulate); the test fills it in with several secrets.",
        f"Return the Bernstein-Vazirani circuit that finds s with one query: "
        f"{num_bits + 1} qubits and {num_bits} classical bits, qubit {target} as the oracle's "
        f"target y and qubits {query} as x_0, ..., x_{num_bits - 1}. Append oracle exactly "
        f"once, on qubits {[*query, target]}, and measure x_i into classical bit i, so that "
        "every shot reads s (bit i of s in classical bit i).",
    ]


def _oracle_gate_text(secret: str, as_integer: bool) -> list[str]:
    num_bits = len(secret)
    if as_integer:
        given = (
            f"s, given as the integer {int(secret, 2)}: little-endian, bit i of s is the secret "
            f"bit of query qubit i (so the measured bitstring is format(s, '0{num_bits}b'))"
        )
    else:
        given = (
            f"s = '{secret}', written in Qiskit's order (the rightmost character is the "
            "secret bit of query qubit 0)"
        )
    return [
        f"Build the Bernstein-Vazirani circuit that finds the hidden {num_bits}-bit string "
        f"{given}.",
        f"Use qubits 0..{num_bits - 1} as the query register and qubit {num_bits} as the "
        f"oracle's target; the oracle maps |x>|y> to |x>|y XOR (s.x mod 2)>. The circuit has "
        f"{num_bits + 1} qubits and {num_bits} classical bits, measures query qubit i into "
        "classical bit i, and returns the secret in every shot.",
        f'Build the oracle as its own {num_bits + 1}-qubit circuit named "oracle", turn it '
        "into a gate with to_gate() and append it exactly once, on qubits "
        f"0..{num_bits} in order. The rest of the circuit must not depend on s: the test swaps "
        f"in oracles for other secrets and expects to read each of them. {GATES_ONLY_RULE}",
    ]


def _given_oracle_solution(query: list[int], target: int) -> list[str]:
    return [
        f"query, target = {query}, {target}",
        "n = len(query)",
        "qc = QuantumCircuit(n + 1, n)",
        "qc.x(target)",
        "qc.h(range(n + 1))",
        "qc.append(oracle, [*query, target])",
        "qc.h(query)",
        "qc.measure(query, range(n))",
        "return qc",
    ]


def _oracle_gate_solution(secret: str, as_integer: bool) -> list[str]:
    given = f'format({int(secret, 2)}, "0{len(secret)}b")' if as_integer else repr(secret)
    return [
        f"secret = {given}",
        "n = len(secret)",
        'oracle = QuantumCircuit(n + 1, name="oracle")',
        "for qubit, bit in enumerate(reversed(secret)):",
        '    if bit == "1":',
        "        oracle.cx(qubit, n)",
        "qc = QuantumCircuit(n + 1, n)",
        "qc.x(n)",
        "qc.h(range(n + 1))",
        "qc.append(oracle.to_gate(), range(n + 1))",
        "qc.h(range(n))",
        "qc.measure(range(n), range(n))",
        "return qc",
    ]


def _test(secrets: list[str], query: list[int], target: int, given: bool, seed: int) -> str:
    body = """
        def reference_oracle(secret):
            oracle = QuantumCircuit(n + 1, name="oracle")
            for qubit, bit in enumerate(reversed(secret)):
                if bit == "1":
                    oracle.cx(qubit, n)
            return oracle.to_gate()

        n = len(SECRETS[0])
        if ORACLE_GIVEN:
            circuit = candidate(Gate("oracle", n + 1, []))
        else:
            circuit = candidate()
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == n + 1, f"expected {n + 1} qubits"
        assert circuit.num_clbits == n, f"expected {n} classical bits"
        assert_built_from_gates(circuit, candidate)
        calls = oracle_calls(circuit)
        assert len(calls) == 1, f"expected one query of the oracle, found {len(calls)}"
        if ORACLE_GIVEN:
            versions = [with_oracle(circuit, reference_oracle(secret)) for secret in SECRETS]
        else:
            rng = np.random.default_rng(SEED)
            data = rng.normal(size=2 ** (n + 1)) + 1j * rng.normal(size=2 ** (n + 1))
            data /= np.linalg.norm(data)
            expected = np.zeros_like(data)
            s = int(SECRETS[0], 2)
            for index, amplitude in enumerate(data):
                x, y = index & ((1 << n) - 1), index >> n
                expected[x | ((y ^ (bin(s & x).count("1") & 1)) << n)] = amplitude
            evolved = Statevector(data).evolve(calls[0])
            assert evolved.equiv(Statevector(expected)), "the oracle computes the wrong function"
            versions = [circuit] + [with_oracle(circuit, reference_oracle(s)) for s in SECRETS[1:]]
        # Unrolling to a small basis is ~100x faster than transpiling for Aer's large target.
        unrolled = transpile(versions, basis_gates=["u", "cx", "measure"], optimization_level=0)
        result = AerSimulator(seed_simulator=SEED).run(unrolled, shots=64).result()
        for number, secret in enumerate(SECRETS):
            counts = result.get_counts(number)
            assert counts == {secret: 64}, f"oracle for {secret!r}: read {counts} instead"
        """
    return check_function(
        [
            "import numpy as np",
            "from qiskit import transpile",
            "from qiskit.circuit import Gate",
            "from qiskit.quantum_info import Statevector",
            "from qiskit_aer import AerSimulator",
        ],
        {"SECRETS": secrets, "ORACLE_GIVEN": given, "SEED": seed},
        body,
        snippets=("assert_built_from_gates", "oracle_calls", "with_oracle"),
    )


register_family(
    Family(
        "bernstein_vazirani",
        "Bernstein-Vazirani circuits: a black-box oracle, then secrets to build oracles for",
        BernsteinVaziraniConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 39, "intermediate": 491, "difficult": 1979},
    )
)
