"""Tests for the isa_transpile family."""

from __future__ import annotations

import pytest

from qsandbox_env import Task
from qsandbox_env.families.isa_transpile import DEVICES, IsaTranspileConfig
from tests.families import helpers

FAMILY = "isa_transpile"


def test_config_rejects_circuits_wider_than_the_smallest_device():
    with pytest.raises(ValueError) as error:
        IsaTranspileConfig(devices=("FakeLimaV2", "FakeLagosV2"), max_qubits=6)
    assert str(error.value) == (
        "IsaTranspileConfig: expected 2 <= min_qubits and max_qubits <= 5 (the smallest "
        "device), got 2 and 6"
    )


def test_config_rejects_a_device_outside_the_cheap_list():
    with pytest.raises(ValueError) as error:
        IsaTranspileConfig(devices=("FakeSherbrooke",))
    assert str(error.value) == (
        f"IsaTranspileConfig.devices: unknown value 'FakeSherbrooke'; expected some of "
        f"{', '.join(DEVICES)}"
    )


def test_same_arguments_give_the_same_tasks_and_another_seed_other_ones():
    helpers.assert_deterministic(FAMILY)


def test_every_task_is_rebuilt_from_its_metadata():
    helpers.assert_rebuilt_from_metadata(FAMILY)


def test_prompts_do_not_repeat():
    helpers.assert_prompts_unique(FAMILY)


def test_difficulty_moves_to_larger_devices_and_a_given_layout():
    tasks = helpers.by_difficulty(FAMILY)
    params = {level: [t.metadata["parameters"] for t in tasks[level]] for level in tasks}
    assert {DEVICES[p["device"]] for p in params["basic"]} == {5}
    assert {p["optimization_level"] for p in params["basic"]} == {1}
    assert {p["optimization_level"] for p in params["intermediate"]} == {2, 3}
    assert {DEVICES[p["device"]] for p in params["difficult"]} == {7}
    assert all(p["initial_layout"] is None for p in params["basic"] + params["intermediate"])
    assert all(len(p["initial_layout"]) == p["num_qubits"] for p in params["difficult"])


def test_twenty_canonical_solutions_pass(verifier):
    helpers.assert_canonical_solutions_pass(verifier, helpers.twenty_tasks(FAMILY))


def without_the_device(task: Task) -> str:
    """Transpiled to the device's basis gates but not its coupling map or qubit count."""
    return task.canonical_solution.replace("backend=backend", 'basis_gates=["rz", "sx", "x", "cx"]')


def test_transpiling_without_the_device_fails(verifier):
    helpers.assert_mutants_fail(verifier, helpers.twenty_tasks(FAMILY)[:9], without_the_device, 9)


def look_alike_native_gates(task: Task) -> str:
    """The shortcut: route the circuit onto the device but skip basis translation, wrapping each
    foreign gate in a custom gate named like a native one (rz for one qubit, cx for two). The old
    tests read only names and qubits, and passed it."""
    p = task.metadata["parameters"]
    layout = p["initial_layout"]
    return helpers.whole_function(
        task,
        [
            "from qiskit import QuantumCircuit, transpile",
            "from qiskit.circuit import Gate",
            f"from qiskit_ibm_runtime.fake_provider import {p['device']}",
            f"backend = {p['device']}()",
            "routed = transpile(",
            "    args[0], coupling_map=backend.coupling_map, optimization_level=0,",
            f"    seed_transpiler={p['seed_transpiler']}, initial_layout={layout},",
            "    basis_gates=['h', 'x', 'ry', 'rz', 'cx', 'cz', 'swap'],",
            ")",
            "native = set(backend.target.operation_names)",
            "isa = routed.copy_empty_like()",
            "for item in routed.data:",
            "    operation = item.operation",
            "    if operation.name not in native:",
            "        inner = QuantumCircuit(operation.num_qubits)",
            "        inner.append(operation, range(operation.num_qubits))",
            '        operation = Gate("rz" if operation.num_qubits == 1 else "cx",'
            " operation.num_qubits, [])",
            "        operation.definition = inner",
            "    isa.append(operation, item.qubits, item.clbits)",
            "return isa",
        ],
    )


def test_look_alike_native_gates_fail(verifier):
    tasks = helpers.twenty_tasks(FAMILY)[:9]
    helpers.assert_mutants_fail(verifier, tasks, look_alike_native_gates, 9)
