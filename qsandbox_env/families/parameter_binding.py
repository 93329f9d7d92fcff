"""Family ``parameter_binding``: a parameterized template from a ParameterVector, then bound.

The prompt names a ``ParameterVector`` and lists gates whose angles are expressions in its
elements; the solution returns the template (still parameterized) and a copy bound with
``assign_parameters``.

- basic: 2 qubits, 2 parameters, 3–4 gates, angles that are single parameters.
- intermediate: 2–3 qubits, 3 parameters, 4–6 gates, angles such as ``2*v[0]`` or ``-v[1]``.
- difficult: 3–4 qubits, 4–5 parameters, 6–9 gates including RZZ and CRX, angles such as
  ``v[0] + v[2]`` and ``v[3] - v[1]``.

The test checks the template's parameters by name, that the bound circuit has none, and both
circuits' unitaries at three value sets. Distinct tasks: millions at every difficulty.
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
    require_choices,
    require_int_range,
)

ONE_QUBIT = ("rx", "ry", "rz")
TWO_QUBIT = ("rzz", "crx")
VECTOR_NAMES = ("theta", "phi", "alpha", "beta", "gamma", "w", "x", "params")
FORMS = ("single", "scaled", "sum")


@dataclass(frozen=True)
class ParameterBindingConfig:
    """Knobs of one difficulty.

    Attributes:
        min_qubits: Fewest qubits.
        max_qubits: Most qubits.
        min_parameters: Fewest vector elements.
        max_parameters: Most vector elements.
        min_gates: Fewest parameterized gates (a CX is added after every second one).
        max_gates: Most parameterized gates.
        forms: Angle expressions: ``"single"`` (v[i]), ``"scaled"`` (2*v[i], -v[i]),
            ``"sum"`` (v[i] + v[j], v[i] - v[j]).
        two_qubit: Also draw RZZ and CRX gates.
    """

    min_qubits: int = 2
    max_qubits: int = 2
    min_parameters: int = 2
    max_parameters: int = 2
    min_gates: int = 3
    max_gates: int = 4
    forms: tuple[str, ...] = ("single",)
    two_qubit: bool = False

    def __post_init__(self) -> None:
        owner = "ParameterBindingConfig"
        require_int_range(owner, "min_qubits", self.min_qubits, "max_qubits", self.max_qubits)
        require_int_range(
            owner, "min_parameters", self.min_parameters, "max_parameters", self.max_parameters
        )
        require_int_range(owner, "min_gates", self.min_gates, "max_gates", self.max_gates)
        require_choices(owner, "forms", self.forms, FORMS)
        if self.min_qubits < 2:
            raise ValueError(f"{owner}.min_qubits: expected at least 2, got {self.min_qubits}")
        if self.max_parameters > self.min_gates:
            raise ValueError(
                f"{owner}: every parameter needs a gate; expected max_parameters <= min_gates, "
                f"got {self.max_parameters} > {self.min_gates}"
            )


PRESETS = {
    "basic": ParameterBindingConfig(2, 2, 2, 2, 3, 4, ("single",)),
    "intermediate": ParameterBindingConfig(2, 3, 3, 3, 4, 6, ("single", "scaled")),
    "difficult": ParameterBindingConfig(3, 4, 4, 5, 6, 9, FORMS, two_qubit=True),
}


def generate(rng: random.Random, config: ParameterBindingConfig) -> GeneratedTask:
    """Draw a template and write the task for it."""
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    num_parameters = rng.randint(config.min_parameters, config.max_parameters)
    vector = rng.choice(VECTOR_NAMES)
    ops = _draw_ops(rng, config, num_qubits, num_parameters)
    values = [[round(rng.uniform(-3.1, 3.1), 3) for _ in range(num_parameters)] for _ in range(3)]
    listing = "\n".join(f"- {_describe(op, vector)}" for op in ops)
    prompt = function_prompt(
        ["from qiskit import QuantumCircuit", "from qiskit.circuit import ParameterVector"],
        "bind_parameters(values: list[float]) -> tuple[QuantumCircuit, QuantumCircuit]",
        [
            f'Create a ParameterVector named "{vector}" of length {num_parameters} and a '
            f"template circuit on {num_qubits} qubits (no classical bits) that applies, in "
            f"order:\n{listing}",
            f"Return (template, bound): template keeps all {num_parameters} parameters free; "
            f"bound is a new circuit made with assign_parameters, {vector}[i] = values[i] for "
            "every i (template itself stays unbound).",
        ],
    )
    return GeneratedTask(
        entry_point="bind_parameters",
        prompt=prompt,
        canonical_solution=function_body(_solution_lines(num_qubits, num_parameters, vector, ops)),
        test=_test(num_qubits, vector, ops, values),
        parameters={"num_qubits": num_qubits, "vector": vector, "ops": ops},
    )


def _draw_ops(
    rng: random.Random, config: ParameterBindingConfig, num_qubits: int, num_parameters: int
) -> list[list]:
    """Gates as [name, qubits, coefficients]; every parameter appears in at least one angle."""
    count = rng.randint(config.min_gates, config.max_gates)
    # Each parameter leads one gate, the rest lead random ones: none is left out of the template.
    leads = list(range(num_parameters)) + [
        rng.randrange(num_parameters) for _ in range(count - num_parameters)
    ]
    rng.shuffle(leads)
    ops: list[list] = []
    for position, lead in enumerate(leads):
        names = ONE_QUBIT + (TWO_QUBIT if config.two_qubit else ())
        name = rng.choice(names)
        width = 2 if name in TWO_QUBIT else 1
        qubits = rng.sample(range(num_qubits), width)
        ops.append([name, qubits, _coefficients(rng, config, num_parameters, lead)])
        if position % 2 == 1:
            ops.append(["cx", rng.sample(range(num_qubits), 2), []])
    return ops


def _coefficients(
    rng: random.Random, config: ParameterBindingConfig, num_parameters: int, lead: int
) -> list[int]:
    coefficients = [0] * num_parameters
    form = rng.choice(config.forms)
    coefficients[lead] = rng.choice((2, -1, 3)) if form == "scaled" else 1
    if form == "sum":
        other = rng.choice([i for i in range(num_parameters) if i != lead])
        coefficients[other] = rng.choice((1, -1))
    return coefficients


def _expression(coefficients: list[int], vector: str) -> str:
    text = ""
    for index, coefficient in enumerate(coefficients):
        if not coefficient:
            continue
        term = f"{vector}[{index}]"
        if abs(coefficient) != 1:
            term = f"{abs(coefficient)} * {term}"
        sign = "-" if coefficient < 0 else "+"
        text = f"{text} {sign} {term}" if text else ("-" * (coefficient < 0)) + term
    return text


def _describe(op: list, vector: str) -> str:
    name, qubits, coefficients = op
    if name == "cx":
        return f"CX with control qubit {qubits[0]} and target qubit {qubits[1]}"
    angle = _expression(coefficients, vector)
    if name == "rzz":
        return f"RZZ({angle}) on qubits {qubits[0]} and {qubits[1]}"
    if name == "crx":
        return f"CRX({angle}) with control qubit {qubits[0]} and target qubit {qubits[1]}"
    return f"{name.upper()}({angle}) on qubit {qubits[0]}"


def _solution_lines(num_qubits: int, num_parameters: int, vector: str, ops: list[list]) -> list:
    lines = [
        f'{vector} = ParameterVector("{vector}", {num_parameters})',
        f"template = QuantumCircuit({num_qubits})",
    ]
    for name, qubits, coefficients in ops:
        where = ", ".join(str(q) for q in qubits)
        if name == "cx":
            lines.append(f"template.cx({where})")
        else:
            lines.append(f"template.{name}({_expression(coefficients, vector)}, {where})")
    return [
        *lines,
        f"bound = template.assign_parameters(dict(zip({vector}, values)))",
        "return template, bound",
    ]


def _test(num_qubits: int, vector: str, ops: list[list], values: list[list[float]]) -> str:
    return check_function(
        ["from qiskit.quantum_info import Operator"],
        {"NUM_QUBITS": num_qubits, "VECTOR": vector, "OPS": ops, "VALUES": values},
        """
        def reference(numbers):
            circuit = QuantumCircuit(NUM_QUBITS)
            for name, qubits, coefficients in OPS:
                if name == "cx":
                    circuit.cx(*qubits)
                else:
                    angle = sum(c * v for c, v in zip(coefficients, numbers))
                    getattr(circuit, name)(angle, *qubits)
            return Operator(circuit)

        names = [f"{VECTOR}[{i}]" for i in range(len(VALUES[0]))]
        template, bound = candidate(list(VALUES[0]))
        assert isinstance(template, QuantumCircuit) and isinstance(bound, QuantumCircuit)
        assert template is not bound, "template and bound must be different circuits"
        assert template.num_qubits == NUM_QUBITS and bound.num_qubits == NUM_QUBITS
        assert template.num_clbits == 0, "expected no classical bits"
        found = [parameter.name for parameter in template.parameters]
        assert found == names, f"expected parameters {names}, found {found}"
        assert bound.num_parameters == 0, "bound still has free parameters"
        assert Operator(bound).equiv(reference(VALUES[0])), "bound has the wrong unitary"
        for numbers in VALUES[1:]:
            other = template.assign_parameters(dict(zip(template.parameters, numbers)))
            assert Operator(other).equiv(reference(numbers)), f"wrong template at {numbers}"
        """,
    )


register_family(
    Family(
        "parameter_binding",
        "ParameterVector templates bound with assign_parameters",
        ParameterBindingConfig,
        PRESETS,
        generate,
    )
)
