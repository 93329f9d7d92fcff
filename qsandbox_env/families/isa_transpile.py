"""Family ``isa_transpile``: transpile a circuit into an ISA circuit for a fake IBM device.

The prompt names a small fake backend from ``qiskit_ibm_runtime.fake_provider`` (5 or 7 qubits,
cheap to load), an optimization level and a transpiler seed; the solution builds a preset pass
manager for it and runs the given circuit through it.

- basic: a 5-qubit device, optimization level 1; test circuits on 2–3 qubits.
- intermediate: a 5-qubit device, level 2 or 3; test circuits on 3–4 qubits with Toffolis.
- difficult: a 7-qubit device, level 1–3 and a given ``initial_layout``; test circuits on 3–5
  qubits.

The test transpiles two random circuits with the candidate and checks that every operation is
supported by the device's target on the qubits it acts on and is the target's own operation (a
custom gate that merely carries a native name, wrapping anything, fails), that the unitary is
unchanged once the layout is taken into account, and (difficult) that the initial layout is the
one asked for. Distinct tasks: tens of thousands at every difficulty (the seed is part of the
task).
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

# Small devices only: each loads in a few milliseconds and keeps unitary checks cheap.
DEVICES = {
    "FakeAthensV2": 5,
    "FakeBelemV2": 5,
    "FakeBogotaV2": 5,
    "FakeLimaV2": 5,
    "FakeManilaV2": 5,
    "FakeQuitoV2": 5,
    "FakeRomeV2": 5,
    "FakeSantiagoV2": 5,
    "FakeYorktownV2": 5,
    "FakeCasablancaV2": 7,
    "FakeJakartaV2": 7,
    "FakeLagosV2": 7,
    "FakeNairobiV2": 7,
    "FakeOslo": 7,
    "FakePerth": 7,
}
GATES = ("h", "x", "ry", "rz", "cx", "cz", "swap", "ccx")


@dataclass(frozen=True)
class IsaTranspileConfig:
    """Knobs of one difficulty.

    Attributes:
        devices: Fake backend class names (keys of `DEVICES`) to draw from.
        levels: Optimization levels to draw from.
        min_qubits: Fewest qubits in the test circuits.
        max_qubits: Most qubits in the test circuits.
        gates: Gate names the test circuits use.
        initial_layout: Ask for a given initial layout.
    """

    devices: tuple[str, ...] = ("FakeManilaV2",)
    levels: tuple[int, ...] = (1,)
    min_qubits: int = 2
    max_qubits: int = 3
    gates: tuple[str, ...] = ("h", "x", "cx")
    initial_layout: bool = False

    def __post_init__(self) -> None:
        owner = "IsaTranspileConfig"
        require_choices(owner, "devices", self.devices, tuple(DEVICES))
        require_choices(owner, "levels", self.levels, (0, 1, 2, 3))
        require_choices(owner, "gates", self.gates, GATES)
        require_int_range(owner, "min_qubits", self.min_qubits, "max_qubits", self.max_qubits)
        smallest = min(DEVICES[name] for name in self.devices)
        if self.min_qubits < 2 or self.max_qubits > smallest:
            raise ValueError(
                f"{owner}: expected 2 <= min_qubits and max_qubits <= {smallest} (the smallest "
                f"device), got {self.min_qubits} and {self.max_qubits}"
            )
        if "ccx" in self.gates and self.min_qubits < 3:
            raise ValueError(f"{owner}.gates: 'ccx' needs min_qubits >= 3, got {self.min_qubits}")


_FIVE = tuple(name for name, size in DEVICES.items() if size == 5)
_SEVEN = tuple(name for name, size in DEVICES.items() if size == 7)
PRESETS = {
    "basic": IsaTranspileConfig(_FIVE, (1,), 2, 3, ("h", "x", "ry", "cx")),
    "intermediate": IsaTranspileConfig(_FIVE, (2, 3), 3, 4, ("h", "ry", "rz", "cx", "cz", "ccx")),
    "difficult": IsaTranspileConfig(_SEVEN, (1, 2, 3), 3, 5, GATES, initial_layout=True),
}


def generate(rng: random.Random, config: IsaTranspileConfig) -> GeneratedTask:
    """Draw a device, settings and two test circuits, and write the task."""
    device = rng.choice(config.devices)
    level = rng.choice(config.levels)
    seed = rng.randrange(10_000)
    num_qubits = rng.randint(config.min_qubits, config.max_qubits)
    layout = rng.sample(range(DEVICES[device]), num_qubits) if config.initial_layout else None
    circuits = [_draw_circuit(rng, config, num_qubits) for _ in range(2)]
    settings = f"optimization_level={level} and seed_transpiler={seed}"
    if layout:
        settings += (
            f", and initial_layout={layout} (virtual qubit i starts on physical qubit "
            "initial_layout[i])"
        )
    prompt = function_prompt(
        [
            "from qiskit import QuantumCircuit",
            "from qiskit.transpiler import generate_preset_pass_manager",
            f"from qiskit_ibm_runtime.fake_provider import {device}",
        ],
        "to_isa(circuit: QuantumCircuit) -> QuantumCircuit",
        [
            f"Transpile circuit, which has {num_qubits} qubits and no measurements, into an ISA "
            f"circuit for the fake IBM backend {device}: use generate_preset_pass_manager with "
            f"the backend, {settings}.",
            f"Return the transpiled circuit. It acts on the backend's {DEVICES[device]} physical "
            "qubits, uses only operations the backend's target supports on the qubits they act "
            "on, and implements the same unitary as circuit once its layout is taken into "
            "account.",
        ],
    )
    layout_argument = f", initial_layout={layout}" if layout else ""
    solution = [
        f"backend = {device}()",
        "pass_manager = generate_preset_pass_manager(",
        f"    optimization_level={level}, backend=backend, seed_transpiler={seed}{layout_argument}",
        ")",
        "return pass_manager.run(circuit)",
    ]
    return GeneratedTask(
        entry_point="to_isa",
        prompt=prompt,
        canonical_solution=function_body(solution),
        test=_test(device, num_qubits, layout, circuits),
        parameters={
            "device": device,
            "optimization_level": level,
            "seed_transpiler": seed,
            "initial_layout": layout,
            "num_qubits": num_qubits,
        },
    )


def _draw_circuit(rng: random.Random, config: IsaTranspileConfig, num_qubits: int) -> list[list]:
    """Gates as [name, qubits, angle or None]; at least one two-qubit gate, so routing matters."""
    names = [rng.choice([g for g in config.gates if g in ("cx", "cz")] or ["cx"])]
    names += [rng.choice(config.gates) for _ in range(rng.randint(4, 9))]
    rng.shuffle(names)
    ops = []
    for name in names:
        width = 3 if name == "ccx" else 2 if name in ("cx", "cz", "swap") else 1
        angle = round(rng.uniform(-3.1, 3.1), 3) if name in ("ry", "rz") else None
        ops.append([name, rng.sample(range(num_qubits), width), angle])
    return ops


def _test(device: str, num_qubits: int, layout: list[int] | None, circuits: list) -> str:
    return check_function(
        [
            "from qiskit.quantum_info import Operator",
            "from qiskit_ibm_runtime import fake_provider",
        ],
        {"DEVICE": device, "NUM_QUBITS": num_qubits, "LAYOUT": layout, "CIRCUITS": circuits},
        """
        backend = getattr(fake_provider, DEVICE)()
        target = backend.target
        for ops in CIRCUITS:
            circuit = QuantumCircuit(NUM_QUBITS)
            for name, qubits, angle in ops:
                if angle is None:
                    getattr(circuit, name)(*qubits)
                else:
                    getattr(circuit, name)(angle, *qubits)
            isa = candidate(circuit.copy())
            assert isinstance(isa, QuantumCircuit), f"expected a QuantumCircuit, got {isa!r}"
            assert isa.num_qubits == backend.num_qubits, f"expected {backend.num_qubits} qubits"
            for instruction in isa.data:
                name = instruction.operation.name
                qargs = tuple(isa.find_bit(qubit).index for qubit in instruction.qubits)
                assert target.instruction_supported(name, qargs), f"{name} on {qargs} is not ISA"
                native = library_class(target.operation_from_name(name))
                genuine = library_class(instruction.operation) is native
                assert genuine, f"{name} on {qargs} is a custom gate, not the device's {name}"
            if LAYOUT is not None:
                found = isa.layout.initial_index_layout(filter_ancillas=True)
                assert found == LAYOUT, f"expected initial layout {LAYOUT}, got {found}"
            padded = QuantumCircuit(backend.num_qubits)
            padded.compose(circuit, range(NUM_QUBITS), inplace=True)
            assert Operator.from_circuit(isa).equiv(Operator(padded)), "the unitary changed"
        """,
        snippets=("operations",),
    )


register_family(
    Family(
        "isa_transpile",
        "ISA transpilation for small fake IBM devices",
        IsaTranspileConfig,
        PRESETS,
        generate,
    )
)
