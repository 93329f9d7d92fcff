"""Family ``classical_logic``: reversible circuits for adders, parity, majority and comparisons.

Inputs, outputs and scratch qubits sit at random positions of the register, so each task has its
own layout.

- basic: a half adder or the parity of 3 bits.
- intermediate: a full adder, the majority of 3 bits, the parity of 4–5 bits or the AND of 3 bits.
- difficult: a 2-bit adder (3 output bits, one scratch qubit) or a 2-bit equality test (two
  scratch qubits).

The test prepares every input assignment, appends the candidate, measures every qubit and runs
all of them in one ``AerSimulator`` job: each must give one outcome, the inputs unchanged, the
outputs right and the scratch qubits back at 0. Before that it refuses what would pass those
counts without a reversible gate construction: a ``UnitaryGate`` (or other matrix-defined
instruction) of the truth table's permutation, and ``reset``/``measure`` instructions, which
would clear scratch qubits instead of uncomputing them. Distinct tasks: 288 at basic, thousands
above (layouts are permutations).
"""

from __future__ import annotations

import random
from collections.abc import Callable
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
)


@dataclass(frozen=True)
class LogicFunction:
    """One reversible function: roles, what the outputs mean, and the gates that compute it."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    scratch: tuple[str, ...]
    meaning: str
    evaluate: Callable[[dict[str, int]], dict[str, int]]
    gates: tuple[str, ...]  # gate calls over role names, e.g. "ccx(a, b, carry)"


def _majority(x: int, y: int, z: int) -> int:
    return int(x + y + z >= 2)


def _parity(width: int) -> LogicFunction:
    inputs = tuple(f"x{i}" for i in range(width))
    return LogicFunction(
        inputs,
        ("p",),
        (),
        "p = " + " XOR ".join(inputs),
        lambda v: {"p": sum(v[name] for name in inputs) % 2},
        tuple(f"cx({name}, p)" for name in inputs),
    )


FUNCTIONS: dict[str, LogicFunction] = {
    "half_adder": LogicFunction(
        ("a", "b"),
        ("s", "carry"),
        (),
        "s = a XOR b and carry = a AND b",
        lambda v: {"s": v["a"] ^ v["b"], "carry": v["a"] & v["b"]},
        ("cx(a, s)", "cx(b, s)", "ccx(a, b, carry)"),
    ),
    "parity3": _parity(3),
    "full_adder": LogicFunction(
        ("a", "b", "cin"),
        ("s", "cout"),
        (),
        "s = a XOR b XOR cin and cout = 1 exactly when at least two of a, b, cin are 1",
        lambda v: {"s": v["a"] ^ v["b"] ^ v["cin"], "cout": _majority(v["a"], v["b"], v["cin"])},
        (
            "cx(a, s)",
            "cx(b, s)",
            "cx(cin, s)",
            "ccx(a, b, cout)",
            "ccx(a, cin, cout)",
            "ccx(b, cin, cout)",
        ),
    ),
    "majority3": LogicFunction(
        ("a", "b", "c"),
        ("m",),
        (),
        "m = 1 exactly when at least two of a, b, c are 1",
        lambda v: {"m": _majority(v["a"], v["b"], v["c"])},
        ("ccx(a, b, m)", "ccx(a, c, m)", "ccx(b, c, m)"),
    ),
    "parity4": _parity(4),
    "parity5": _parity(5),
    "and3": LogicFunction(
        ("x0", "x1", "x2"),
        ("y",),
        (),
        "y = x0 AND x1 AND x2",
        lambda v: {"y": v["x0"] & v["x1"] & v["x2"]},
        ("mcx([x0, x1, x2], y)",),
    ),
    "two_bit_adder": LogicFunction(
        ("a0", "a1", "b0", "b1"),
        ("s0", "s1", "s2"),
        ("k",),
        "s2 s1 s0 (s0 the lowest bit) = A + B, where A = a0 + 2*a1 and B = b0 + 2*b1",
        lambda v: {
            f"s{i}": (v["a0"] + 2 * v["a1"] + v["b0"] + 2 * v["b1"]) >> i & 1 for i in range(3)
        },
        (
            "ccx(a0, b0, k)",
            "cx(a0, s0)",
            "cx(b0, s0)",
            "cx(a1, s1)",
            "cx(b1, s1)",
            "cx(k, s1)",
            "ccx(a1, b1, s2)",
            "ccx(a1, k, s2)",
            "ccx(b1, k, s2)",
            "ccx(a0, b0, k)",
        ),
    ),
    "equal2": LogicFunction(
        ("a0", "a1", "b0", "b1"),
        ("eq",),
        ("k0", "k1"),
        "eq = 1 exactly when A == B, where A = a0 + 2*a1 and B = b0 + 2*b1",
        lambda v: {"eq": int(v["a0"] == v["b0"] and v["a1"] == v["b1"])},
        (
            "cx(a0, k0)",
            "cx(b0, k0)",
            "x(k0)",
            "cx(a1, k1)",
            "cx(b1, k1)",
            "x(k1)",
            "ccx(k0, k1, eq)",
            "x(k1)",
            "cx(b1, k1)",
            "cx(a1, k1)",
            "x(k0)",
            "cx(b0, k0)",
            "cx(a0, k0)",
        ),
    ),
}


@dataclass(frozen=True)
class ClassicalLogicConfig:
    """Knobs of one difficulty.

    Attributes:
        functions: Names in `FUNCTIONS` to draw from.
        max_idle: Most extra qubits that take no part (each task draws 0..max_idle).
    """

    functions: tuple[str, ...] = ("half_adder", "parity3")
    max_idle: int = 1

    def __post_init__(self) -> None:
        require_choices("ClassicalLogicConfig", "functions", self.functions, tuple(FUNCTIONS))
        if isinstance(self.max_idle, bool) or not isinstance(self.max_idle, int):
            raise TypeError(
                "ClassicalLogicConfig.max_idle: expected an int, "
                f"got {type(self.max_idle).__name__}"
            )
        if not 0 <= self.max_idle <= 3:
            raise ValueError(
                f"ClassicalLogicConfig.max_idle: expected 0 to 3 idle qubits, got {self.max_idle}"
            )


PRESETS = {
    "basic": ClassicalLogicConfig(("half_adder", "parity3"), 1),
    "intermediate": ClassicalLogicConfig(
        ("full_adder", "majority3", "parity4", "parity5", "and3"), 2
    ),
    "difficult": ClassicalLogicConfig(("two_bit_adder", "equal2"), 2),
}


def generate(rng: random.Random, config: ClassicalLogicConfig) -> GeneratedTask:
    """Draw a function and a register layout and write the task for them."""
    name = rng.choice(config.functions)
    function = FUNCTIONS[name]
    roles = function.inputs + function.outputs + function.scratch
    num_qubits = len(roles) + rng.randint(0, config.max_idle)
    layout = dict(zip(roles, rng.sample(range(num_qubits), len(roles)), strict=True))
    prompt = function_prompt(
        ["from qiskit import QuantumCircuit"],
        f"{name}_circuit() -> QuantumCircuit",
        _description(function, layout, num_qubits),
    )
    return GeneratedTask(
        entry_point=f"{name}_circuit",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(function, layout, num_qubits)),
        test=_test(function, layout, num_qubits, rng.randrange(10_000)),
        parameters={"function": name, "num_qubits": num_qubits, "layout": layout},
    )


def _where(names: tuple[str, ...], layout: dict[str, int]) -> str:
    return ", ".join(f"{name} on qubit {layout[name]}" for name in names)


def _description(function: LogicFunction, layout: dict[str, int], num_qubits: int) -> list[str]:
    paragraphs = [
        f"Build a reversible circuit on {num_qubits} qubits computing {function.meaning}.",
        f"Inputs: {_where(function.inputs, layout)}. Outputs: {_where(function.outputs, layout)}.",
    ]
    scratch = ""
    if function.scratch:
        listed = " and ".join(str(layout[name]) for name in function.scratch)
        noun = "Qubits" if len(function.scratch) > 1 else "Qubit"
        scratch = f" {noun} {listed} may be used as scratch space but must end in |0>."
    paragraphs.append(
        "For every assignment of 0/1 to the input qubits, with every other qubit starting in "
        "|0>, the circuit must leave the inputs unchanged, set each output qubit to its value "
        f"and leave every other qubit in |0>.{scratch} No classical bits, no measurements, "
        f"no resets: the circuit is reversible. {GATES_ONLY_RULE}"
    )
    return paragraphs


def _solution_lines(function: LogicFunction, layout: dict[str, int], num_qubits: int) -> list[str]:
    lines = [f"qc = QuantumCircuit({num_qubits})"]
    for group in (function.inputs, function.outputs, function.scratch):
        if group:
            values = ", ".join(str(layout[name]) for name in group)
            lines.append(f"{', '.join(group)} = {values}")
    return [*lines, *(f"qc.{gate}" for gate in function.gates), "return qc"]


def _test(function: LogicFunction, layout: dict[str, int], num_qubits: int, seed: int) -> str:
    cases = []
    for assignment in range(2 ** len(function.inputs)):
        values = {name: assignment >> i & 1 for i, name in enumerate(function.inputs)}
        values.update(function.evaluate(values))
        bits = ["0"] * num_qubits
        for name, value in values.items():
            bits[num_qubits - 1 - layout[name]] = str(value)
        ones = sorted(layout[name] for name in function.inputs if values[name])
        cases.append((ones, "".join(bits)))
    return check_function(
        ["from qiskit import transpile", "from qiskit_aer import AerSimulator"],
        {"NUM_QUBITS": num_qubits, "CASES": cases, "SEED": seed},
        """
        circuit = candidate()
        assert isinstance(circuit, QuantumCircuit), f"expected a QuantumCircuit, got {circuit!r}"
        assert circuit.num_qubits == NUM_QUBITS, f"expected {NUM_QUBITS} qubits"
        assert circuit.num_clbits == 0, "expected no classical bits"
        assert_built_from_gates(circuit, candidate)
        irreversible = sorted({op.name for op in operations(circuit)} & {"reset", "measure"})
        assert not irreversible, f"a reversible circuit has no {irreversible} instructions"
        programs = []
        for ones, _ in CASES:
            program = QuantumCircuit(NUM_QUBITS)
            for qubit in ones:
                program.x(qubit)
            program.compose(circuit, inplace=True)
            program.measure_all()
            programs.append(
                transpile(program, basis_gates=["u", "cx", "measure"], optimization_level=0)
            )
        result = AerSimulator(seed_simulator=SEED).run(programs, shots=32).result()
        for number, (ones, expected) in enumerate(CASES):
            counts = result.get_counts(number)
            assert counts == {expected: 32}, f"inputs {ones} at 1: want {expected}, got {counts}"
        """,
        snippets=("assert_built_from_gates",),
    )


register_family(
    Family(
        "classical_logic",
        "reversible adders, parity, majority and comparators",
        ClassicalLogicConfig,
        PRESETS,
        generate,
        distinct_tasks={"basic": 288},
    )
)
