"""The judge/child value codec: round trips, exact types, hostile bytes, handles, write_back."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsandbox_env.sandbox import codec
from qsandbox_env.sandbox.codec import CodecError, decode, encode, handle_class, write_back


def roundtrip(value, **kwargs):
    return decode(encode(value, **kwargs))


def same(a, b) -> bool:
    """Equal with exactly the same types all the way down (nan equal to nan, -0.0 to -0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if type(a) is complex:
        return same(a.real, b.real) and same(a.imag, b.imag)
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return len(a) == len(b) and all(
            same(k, j) and same(x, y) for (k, x), (j, y) in zip(a.items(), b.items(), strict=True)
        )
    if type(a) is np.ndarray:
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    return a == b


# -- built-ins ------------------------------------------------------------------------------------

BUILTINS = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(10**5000),
    1.5,
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    1 + 2j,
    complex(float("nan"), -0.0),
    "",
    "héllo \x00 \udc80 \U0001f600",
    b"\x00\xff",
    bytearray(b"abc"),
    [],
    [1, [2, [3]]],
    (),
    (1, "a", (None,)),
    {"b": 1, "a": 2, 3: [4], (1, 2): None, frozenset({1}): 0},
    set(),
    {1, "x", (2, 3)},
    frozenset({1.5}),
    range(0),
    range(-5, 10**30, 7),
    slice(None),
    slice(1, "x", [2]),
    ...,
]


@pytest.mark.parametrize("value", BUILTINS, ids=lambda v: type(v).__name__)
def test_builtin_round_trip_keeps_exact_type_and_value(value):
    assert same(roundtrip(value), value)


def test_dict_order_is_kept():
    value = {k: k for k in "zyxabc"}
    assert list(roundtrip(value)) == list("zyxabc")


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.complex_numbers()
    | st.text()
    | st.binary()
)
hashable_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary()
)
hashables = st.recursive(
    hashable_scalars, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=8
)
nested = st.recursive(
    scalars | st.builds(bytearray, st.binary()),
    lambda c: (
        st.lists(c, max_size=4)
        | st.tuples(c, c)
        | st.dictionaries(hashables, c, max_size=4)
        | st.sets(hashables, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(nested)
def test_nested_builtins_round_trip(value):
    assert same(roundtrip(value), value)


# -- subclasses cross as their base value ---------------------------------------------------------


class RiggedFloat(float):
    def __eq__(self, other):
        return True

    __hash__ = float.__hash__

    def __float__(self):
        return 0.0


class RiggedList(list):
    def __iter__(self):
        return iter([1, 2, 3])

    def __eq__(self, other):
        return True


class RiggedDict(dict):
    def items(self):
        return [("fake", 1)]


class RiggedStr(str):
    def __str__(self):
        return "other"

    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class RiggedInt(int):
    def __index__(self):
        return 99

    def __int__(self):
        return 99


class RiggedArray(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, bool)


@pytest.mark.parametrize(
    "value, expected",
    [
        (RiggedFloat(2.5), 2.5),
        (RiggedList([7]), [7]),
        (RiggedDict(a=1), {"a": 1}),
        (RiggedStr("text"), "text"),
        (RiggedInt(5), 5),
        ((1, RiggedFloat(0.5)), (1, 0.5)),
    ],
    ids=["float", "list", "dict", "str", "int", "nested"],
)
def test_builtin_subclass_decodes_as_exact_base_value(value, expected):
    out = roundtrip(value)
    assert same(out, expected)
    assert type(out) is type(expected)


def test_ndarray_subclass_decodes_as_plain_array():
    value = np.arange(4.0).view(RiggedArray)
    out = roundtrip(value)
    assert type(out) is np.ndarray
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert type(roundtrip(np.matrix([[1, 2]]))) is np.ndarray


# -- numpy ----------------------------------------------------------------------------------------

ARRAYS = [
    np.array(3.5),
    np.arange(12, dtype=np.int32).reshape(3, 4)[:, ::2],  # not contiguous
    np.array([True, False]),
    np.array([1, 2], dtype=np.uint16),
    np.array([[1 + 2j, 3j]], dtype=np.complex64),
    np.zeros((0, 5)),
    np.array([1.0, 2.0], dtype=">f8"),
    np.array(["ab", "c\u00e9"]),
    np.array([b"x", b"yz"]),
    np.float16([1.5]),
]


@pytest.mark.parametrize("value", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_array_round_trip(value):
    out = roundtrip(value)
    assert type(out) is np.ndarray and out.shape == value.shape
    assert out.dtype == value.dtype.newbyteorder("=")
    assert np.array_equal(out, value)
    assert out.flags.writeable and out.flags.c_contiguous


def test_object_array_of_data():
    value = np.array([1, "x", None, [2]], dtype=object)
    out = roundtrip(value)
    assert out.dtype == object and out.tolist() == [1, "x", None, [2]]


@pytest.mark.parametrize(
    "value",
    [
        np.float64(2.5),
        np.int64(-3),
        np.bool_(True),
        np.complex128(1j),
        np.uint8(7),
        np.float32(0.5),
        np.str_("s"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_numpy_scalar_keeps_its_type(value):
    out = roundtrip(value)
    assert type(out) is type(value) and out == value


def test_unsupported_dtype_is_refused():
    with pytest.raises(CodecError, match=r"datetime64|cannot cross"):
        encode(np.array(["2020-01-01"], dtype="datetime64[D]"))


# -- qiskit ---------------------------------------------------------------------------------------


def bell():
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    return qc


def test_circuit_keeps_name_metadata_phase_parameters_registers():
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit import Parameter

    theta = Parameter("θ")
    qc = QuantumCircuit(
        QuantumRegister(2, "q"), ClassicalRegister(2, "c"), name="mine", global_phase=0.25
    )
    qc.metadata = {"k": [1, 2]}
    qc.rx(theta, 0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    out = roundtrip(qc)
    assert type(out) is QuantumCircuit and out == qc
    assert out.name == "mine" and out.metadata == {"k": [1, 2]} and out.global_phase == 0.25
    assert list(out.parameters) == [theta]
    assert [r.name for r in out.qregs + out.cregs] == ["q", "c"]


def test_circuit_subclass_crosses_as_quantum_circuit():
    from qiskit import QuantumCircuit

    class Mine(QuantumCircuit):
        pass

    qc = Mine(1)
    qc.x(0)
    out = roundtrip(qc)
    assert type(out) is QuantumCircuit and out.count_ops() == {"x": 1}


def qiskit_values():
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit import Delay, Parameter, ParameterVector
    from qiskit.circuit.library import CXGate, HGate, LinearFunction, Measure, RZGate
    from qiskit.converters import circuit_to_dag
    from qiskit.primitives import StatevectorEstimator, StatevectorSampler
    from qiskit.quantum_info import (
        PTM,
        Chi,
        Choi,
        Clifford,
        CNOTDihedral,
        DensityMatrix,
        Kraus,
        Operator,
        Pauli,
        PauliList,
        ScalarOp,
        SparsePauliOp,
        StabilizerState,
        Statevector,
        Stinespring,
        SuperOp,
    )
    from qiskit.result import Counts, ProbDistribution, QuasiDistribution
    from qiskit.transpiler import CouplingMap, InstructionProperties, Target

    p = Parameter("p")
    v = ParameterVector("v", 3)
    qr = QuantumRegister(2, "q")
    cr = ClassicalRegister(1, "c")
    cx_only = QuantumCircuit(2)
    cx_only.cx(0, 1)
    measured = bell()
    measured.measure_all()
    target = Target(num_qubits=2)
    target.add_instruction(CXGate(), {(0, 1): InstructionProperties(duration=1e-7, error=0.01)})
    return {
        "gate": HGate(),
        "measure": Measure(),
        "controlled": CXGate().control(1),
        "rz": RZGate(p),
        "delay": Delay(Parameter("t"), "dt"),
        "linear": LinearFunction([[1, 1], [0, 1]]),
        "parameter": p,
        "vector-element": v[2],
        "expression": 2 * p + v[0],
        "instruction": measured.data[0],
        "dag": circuit_to_dag(measured),
        "qreg": qr,
        "creg": cr,
        "qubit": qr[1],
        "clbit": cr[0],
        "statevector": Statevector(bell()),
        "density": DensityMatrix(bell()),
        "operator": Operator(bell()),
        "sparse-pauli": SparsePauliOp(["XZ", "YY"], [1, -2j]),
        "pauli": Pauli("-iXYZ"),
        "pauli-list": PauliList(["XX", "-YZ"]),
        "clifford": Clifford(bell()),
        "stabilizer": StabilizerState(bell()),
        "cnot-dihedral": CNOTDihedral(cx_only),
        "scalar": ScalarOp(4, 2.0),
        "choi": Choi(bell()),
        "superop": SuperOp(bell()),
        "kraus": Kraus(bell()),
        "chi": Chi(bell()),
        "ptm": PTM(bell()),
        "stinespring": Stinespring(bell()),
        "counts": Counts({"00": 3, "11": 5}),
        "quasi": QuasiDistribution({0: 0.5, 3: 0.5}, shots=10),
        "prob": ProbDistribution({1: 1.0}),
        "coupling": CouplingMap([[0, 1], [1, 2]]),
        "sampler-result": StatevectorSampler(seed=1).run([measured], shots=50).result(),
        "estimator-result": StatevectorEstimator().run([(bell(), SparsePauliOp("ZZ"))]).result(),
        "target": target,
    }


QISKIT_NAMES = sorted(
    [
        "gate",
        "measure",
        "controlled",
        "rz",
        "delay",
        "linear",
        "parameter",
        "vector-element",
        "expression",
        "instruction",
        "dag",
        "qreg",
        "creg",
        "qubit",
        "clbit",
        "statevector",
        "density",
        "operator",
        "sparse-pauli",
        "pauli",
        "pauli-list",
        "clifford",
        "stabilizer",
        "cnot-dihedral",
        "scalar",
        "choi",
        "superop",
        "kraus",
        "chi",
        "ptm",
        "stinespring",
        "counts",
        "quasi",
        "prob",
        "coupling",
        "sampler-result",
        "estimator-result",
        "target",
    ]
)


@pytest.fixture(scope="module")
def qvalues():
    return qiskit_values()


@pytest.mark.parametrize("name", QISKIT_NAMES)
def test_qiskit_value_round_trip(qvalues, name):
    value = qvalues[name]
    out = roundtrip(value)
    if hasattr(value, "base_class"):  # a gate may come back as its singleton subclass
        assert out.base_class is value.base_class
    else:
        assert type(out) is type(value)
    if name == "sampler-result":
        assert out[0].data.meas.get_counts() == value[0].data.meas.get_counts()
        assert out.metadata == value.metadata and out[0].metadata == value[0].metadata
    elif name == "estimator-result":
        assert np.allclose(out[0].data.evs, value[0].data.evs)
    elif name == "target":
        assert out.operation_names == value.operation_names
        assert out["cx"][(0, 1)].error == 0.01 and out.num_qubits == 2
    elif name == "dag":
        from qiskit.converters import dag_to_circuit

        assert dag_to_circuit(out) == dag_to_circuit(value)
    else:
        assert out == value


def test_result_round_trip():
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    qc = bell()
    qc.measure_all()
    sim = AerSimulator(seed_simulator=1)
    result = sim.run(transpile(qc, sim), shots=100).result()
    out = roundtrip(result)
    assert type(out) is type(result) and out.get_counts() == result.get_counts()


def test_noise_model_round_trip_keeps_equality_and_basis():
    from qiskit_aer.noise import NoiseModel, ReadoutError, depolarizing_error

    model = NoiseModel(basis_gates=["x", "sx", "rz", "cx", "delay"])
    model.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["x"])
    model.add_quantum_error(depolarizing_error(0.2, 2), ["cx"], [0, 1])
    model.add_readout_error(ReadoutError([[0.9, 0.1], [0.2, 0.8]]), [0])
    out = roundtrip(model)
    assert type(out) is NoiseModel and out == model
    assert out.basis_gates == model.basis_gates


def test_fake_backend_by_name_and_only_fake_backends():
    from qiskit_ibm_runtime.fake_provider import FakeManilaV2

    out = roundtrip(FakeManilaV2())
    assert type(out) is FakeManilaV2 and out.num_qubits == 5
    for name in ("os", "FakeProviderForBackendV2", "FakeBackendV2", "Fake../x"):
        with pytest.raises(CodecError, match="FakeBackend"):
            decode(ext_message("FakeBackend", name))


def test_class_reference_from_table_only():
    from matplotlib.patches import Rectangle
    from qiskit import QuantumCircuit

    assert roundtrip([Rectangle, QuantumCircuit]) == [Rectangle, QuantumCircuit]
    with pytest.raises(CodecError, match="not one that may cross"):
        decode(ext_message("Class", "os.system"))


def test_handle_class_resolves_only_table_names():
    from matplotlib.figure import Figure

    assert handle_class(("user.Thing", "matplotlib.figure.Figure")) is Figure
    assert handle_class(("os.system", "builtins.eval", "subprocess.Popen")) is None
    # data classes can never be claimed by a handle
    assert handle_class(("qiskit.circuit.quantumcircuit.QuantumCircuit",)) is None


# -- handles --------------------------------------------------------------------------------------


class Opaque:
    pass


def test_value_that_is_not_data_needs_a_handle_callback():
    with pytest.raises(CodecError, match=r"Opaque.*not data"):
        encode([Opaque()])
    with pytest.raises(CodecError, match="not data"):
        encode(lambda: 1)


def test_handles_round_trip_with_callbacks():
    a, b = Opaque(), Opaque()
    ids = {}
    seen = []

    def to_handle(obj):
        return ids.setdefault(id(obj), len(ids) + 7)

    def from_handle(ident, names):
        seen.append((ident, names))
        return ("proxy", ident)

    data = encode({"x": a, "y": [b, a], "z": 1}, to_handle=to_handle)
    out = decode(data, from_handle=from_handle)
    assert out == {"x": ("proxy", 7), "y": [("proxy", 8), ("proxy", 7)], "z": 1}
    assert seen[0][1][0] == f"{__name__}.Opaque" and seen[0][1][-1] == "builtins.object"
    with pytest.raises(CodecError, match="handle"):
        decode(data)


def test_to_handle_must_return_an_int():
    with pytest.raises(CodecError, match="to_handle"):
        encode(Opaque(), to_handle=lambda obj: "x")


# -- hostile bytes --------------------------------------------------------------------------------


def ext_message(name: str, payload) -> bytes:
    raw = name.encode()
    return codec.MAGIC + bytes([codec._T_EXT, len(raw)]) + raw + encode(payload)[4:]


def test_deep_nesting_is_a_codec_error_not_recursion_error():
    depth = 100_000
    data = (
        codec.MAGIC
        + (bytes([codec._T_LIST]) + struct.pack("<I", 1)) * depth
        + bytes([codec._T_NONE])
    )
    with pytest.raises(CodecError, match="deeper"):
        decode(data)
    nested = None
    for _ in range(codec.MAX_DEPTH + 5):
        nested = [nested]
    with pytest.raises(CodecError, match="deeper"):
        encode(nested)
    ok = None
    for _ in range(codec.MAX_DEPTH - 1):
        ok = [ok]
    assert roundtrip(ok) == ok


def test_cycles_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(CodecError, match="contains itself"):
        encode(loop)


@pytest.mark.parametrize(
    "body, match",
    [
        (bytes([codec._T_LIST]) + struct.pack("<I", 2**32 - 1), "declares"),
        (bytes([codec._T_DICT]) + struct.pack("<I", 2**31), "declares|pairs"),
        (bytes([codec._T_STR]) + struct.pack("<I", 2**31), "declares"),
        (bytes([codec._T_BIGINT]) + struct.pack("<I", 10**6) + b"\x01" * 10, "size limit"),
        (
            bytes([codec._T_ARRAY, 3])
            + b"<f8"
            + bytes([2])
            + struct.pack("<II", 2**31, 2**31)
            + struct.pack("<Q", 8),
            "array",
        ),
        (bytes([codec._T_OBJARRAY, 1]) + struct.pack("<I", 2**31), "object array"),
    ],
    ids=["list", "dict", "str", "int", "array", "object-array"],
)
def test_huge_declared_sizes_are_refused(body, match):
    with pytest.raises(CodecError, match=match):
        decode(codec.MAGIC + body)


def test_big_ints_are_bounded_both_ways():
    assert roundtrip(10**99_000) == 10**99_000
    with pytest.raises(CodecError, match="size limit"):
        encode(10**120_000)


@pytest.mark.parametrize("tag", [0x00, 0x01, 0x7F, 0xFF, ord("P"), ord("R")])
def test_unknown_tag_bytes_are_refused(tag):
    with pytest.raises(CodecError, match="unknown tag"):
        decode(codec.MAGIC + bytes([tag]))


@pytest.mark.parametrize(
    "name", ["os.system", "builtins.eval", "posix.system", "pickle.loads", "Proxy", ""]
)
def test_extension_tag_naming_an_arbitrary_class_is_refused(name):
    with pytest.raises(CodecError, match="unknown type tag"):
        decode(ext_message(name, "echo pwned"))


@pytest.mark.parametrize("dtype", ["O", "|O8", "V8", "M8[D]", "<U0", "f8,i4", "object"])
def test_disallowed_dtypes_are_refused(dtype):
    raw = dtype.encode()
    body = (
        bytes([codec._T_ARRAY, len(raw)])
        + raw
        + bytes([1])
        + struct.pack("<I", 1)
        + struct.pack("<Q", 8)
        + b"\0" * 8
    )
    with pytest.raises(CodecError, match="dtype"):
        decode(codec.MAGIC + body)


def test_bool_array_bytes_are_normalised_and_bad_code_points_refused():
    body = (
        bytes([codec._T_ARRAY, 3])
        + b"|b1"
        + bytes([1])
        + struct.pack("<I", 2)
        + struct.pack("<Q", 2)
        + b"\x00\x07"
    )
    out = decode(codec.MAGIC + body)
    assert out.tolist() == [False, True] and out.view(np.uint8).tolist() == [0, 1]
    body = (
        bytes([codec._T_ARRAY, 3])
        + b"<U1"
        + bytes([1])
        + struct.pack("<I", 1)
        + struct.pack("<Q", 4)
        + struct.pack("<I", 0x110000)
    )
    with pytest.raises(CodecError, match="code point"):
        decode(codec.MAGIC + body)


def test_truncated_and_garbage_input():
    good = encode({"a": [1, 2.5, "x", np.arange(3)], "b": bell()})
    for cut in range(len(good) - 1):
        with pytest.raises(CodecError):
            decode(good[:cut])
    with pytest.raises(CodecError, match="stray"):
        decode(good + b"\x00")
    with pytest.raises(CodecError, match="magic"):
        decode(b"\x80\x04pickle")
    with pytest.raises(CodecError, match="expected bytes"):
        decode("text")  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    for _ in range(300):
        junk = (
            codec.MAGIC + rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        )
        try:
            decode(junk)
        except CodecError:
            pass


def test_hostile_payloads_of_known_tags_are_codec_errors():
    cases = [
        ("QuantumCircuit", b"not qpy"),
        ("QuantumCircuit", "text"),
        ("Statevector", (np.ones(3), (5,))),
        ("Statevector", ("x", (2,))),
        ("Counts", ({"00": 1}, None, None)),
        ("DataBin", ({"shape": 1}, ())),
        ("DataBin", ({"__class__": 1}, ())),
        ("Pauli", (np.array([True]), np.array([True, False]), 0)),
        ("Target", ({"evil": 1}, None, [])),
        ("NoiseModel", {"basis_gates": []}),
        ("CouplingMap", (2, [(0, 5)])),
        ("range", None),
    ]
    for name, payload in cases:
        with pytest.raises(CodecError):
            decode(ext_message(name, payload))
    with pytest.raises(CodecError, match="unhashable"):
        decode(codec.MAGIC + bytes([codec._T_SET]) + struct.pack("<I", 1) + encode([1])[4:])


# -- write_back -----------------------------------------------------------------------------------


def test_write_back_list_dict_set_bytearray_keep_identity():
    inner = [1]
    original = [inner, 2]
    updated = roundtrip(original)
    updated[0].append(9)
    updated.append(3)
    write_back(original, updated)
    assert original == [[1, 9], 2, 3]

    inner2 = {"k": [1]}
    original_d = {"a": inner2, "b": 1}
    updated_d = roundtrip(original_d)
    updated_d["a"]["k"].append(2)
    del updated_d["b"]
    updated_d["c"] = 3
    write_back(original_d, updated_d)
    assert original_d == {"a": {"k": [1, 2]}, "c": 3} and original_d["a"] is inner2

    original_s = {1, 2}
    write_back(original_s, {3})
    assert original_s == {3}
    original_b = bytearray(b"ab")
    write_back(original_b, bytearray(b"xyz"))
    assert original_b == b"xyz"


def test_write_back_same_length_list_keeps_nested_identity():
    inner = [0]
    original = [inner]
    updated = roundtrip(original)
    updated[0][0] = 5
    write_back(original, updated)
    assert original[0] is inner and inner == [5]


def test_write_back_array():
    original = np.zeros((2, 2))
    updated = roundtrip(original)
    updated[1, 1] = 4.0
    write_back(original, updated)
    assert original[1, 1] == 4.0
    with pytest.raises(CodecError, match="shape"):
        write_back(original, np.zeros(3))
    with pytest.raises(CodecError, match="dtype"):
        write_back(original, np.zeros((2, 2), dtype=int))
    frozen = np.zeros(2)
    frozen.flags.writeable = False
    write_back(frozen, np.zeros(2))  # unchanged: nothing to write
    with pytest.raises(CodecError, match="read-only"):
        write_back(frozen, np.ones(2))


def test_write_back_kind_mismatch_and_immutables():
    with pytest.raises(CodecError, match="came back as"):
        write_back([1], (1,))
    write_back((1,), (2,))  # immutable: nothing to do
    write_back("a", "b")


def test_write_back_circuit_keeps_bits_and_takes_everything_else():
    from qiskit import QuantumCircuit, QuantumRegister
    from qiskit.circuit import Clbit, Parameter, Qubit

    bits = [Qubit(), Qubit()]
    qr = QuantumRegister(1, "r")
    original = QuantumCircuit(bits, qr, [Clbit()])
    original.h(bits[0])
    sent = roundtrip(original)
    # what a candidate may do in place
    theta = Parameter("theta")
    sent.cx(0, 1)
    sent.rz(theta, 2)
    sent.measure_all()
    sent.name = "changed"
    sent.global_phase = 0.5
    sent.metadata = {"by": "candidate"}
    back = roundtrip(sent)
    write_back(original, back)
    assert original == roundtrip(sent)
    assert original.find_bit(bits[1]).index == 1  # the caller's bits still index the circuit
    assert original.find_bit(qr[0]).index == 2
    assert original.name == "changed" and original.global_phase == 0.5
    assert original.metadata == {"by": "candidate"}
    assert list(original.parameters) == [theta]
    assert [r.name for r in original.cregs] == ["meas"]
    original.x(bits[0])  # the circuit still works, builder included
    with original.if_test((original.clbits[0], 1)):
        original.x(0)
    assert original.count_ops()["x"] == 1


def test_write_back_circuit_with_fewer_bits_is_refused():
    from qiskit import QuantumCircuit

    with pytest.raises(CodecError, match="fewer bits"):
        write_back(QuantumCircuit(3), QuantumCircuit(2))


# -- speed ----------------------------------------------------------------------------------------


def test_typical_values_cross_quickly():
    import time

    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Statevector

    small = {"n": 3, "xs": [1.0, 2.0], "s": "abc"}
    qc = QuantumCircuit(10)
    for i in range(100):
        qc.cx(i % 10, (i + 1) % 10)
    sv = Statevector.from_label("0" * 10)
    for value, limit in ((small, 0.002), (qc, 0.05), (sv, 0.02)):
        roundtrip(value)
        start = time.perf_counter()
        for _ in range(5):
            roundtrip(value)
        assert (time.perf_counter() - start) / 5 < limit, type(value).__name__
