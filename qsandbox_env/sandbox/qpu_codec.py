"""Wire format between a sandboxed program's QPU proxy and the parent's broker.

Primitive inputs travel from the child to the broker, results travel back, all as plain JSON:
circuits as base64 QPY, parameter values and result arrays as base64 little-endian numbers with
their shape, observables as ``{pauli: coefficient}`` maps. Both sides import this module: the child
(under the sandbox interpreter, which may be an older Qiskit) and the parent.

The parent decodes what an untrusted program sent, so decoding must never run code chosen by the
sender: no pickle, no importing a module or class named in the message (which the runtime's own
JSON decoder does), only QPY parsing, numeric arrays of an allowed dtype, and plain JSON values.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from typing import Any

import numpy as np

# Array dtypes either side accepts: plain numbers only (an object dtype would unpickle).
ALLOWED_DTYPES = frozenset({"bool", "uint8", "int64", "float64", "complex128"})
DEFAULT_SHOTS = 4096
DEFAULT_PRECISION = 0.015625  # the runtime Estimator's default (1 / sqrt(4096))


class CodecError(ValueError):
    """A message that does not describe valid primitive inputs or results."""


# -- arrays and circuits ----------------------------------------------------------------------


def encode_array(array: Any) -> dict:
    data = np.asarray(array)
    data = np.ascontiguousarray(data).reshape(data.shape)  # keeps 0-d arrays 0-d
    dtype = data.dtype.name
    if dtype not in ALLOWED_DTYPES:
        data = data.astype("complex128" if np.iscomplexobj(data) else "float64")
        dtype = data.dtype.name
    return {
        "dtype": dtype,
        "shape": list(data.shape),
        "data": base64.b64encode(data.astype(data.dtype.newbyteorder("<")).tobytes()).decode(),
    }


def decode_array(message: Any) -> np.ndarray:
    if not isinstance(message, dict) or message.get("dtype") not in ALLOWED_DTYPES:
        raise CodecError(f"expected an array of {sorted(ALLOWED_DTYPES)}, got {message!r:.200}")
    shape = message.get("shape")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise CodecError(f"array shape: expected a list of sizes, got {shape!r:.200}")
    raw = base64.b64decode(str(message.get("data", "")), validate=True)
    dtype = np.dtype(message["dtype"]).newbyteorder("<")
    if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise CodecError("array data does not match its shape")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def encode_circuit(circuit: Any) -> str:
    from qiskit import qpy

    buffer = io.BytesIO()
    qpy.dump(circuit, buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def decode_circuit(text: Any) -> Any:
    from qiskit import qpy

    if not isinstance(text, str):
        raise CodecError(f"circuit: expected base64 QPY text, got {type(text).__name__}")
    try:
        circuits = qpy.load(io.BytesIO(base64.b64decode(text, validate=True)))
    except Exception as exc:  # noqa: BLE001 - any parse failure is the sender's problem
        raise CodecError(f"circuit: not a readable QPY payload ({type(exc).__name__}: {exc})")
    if len(circuits) != 1:
        raise CodecError(f"circuit: expected one circuit in the QPY payload, got {len(circuits)}")
    return circuits[0]


def fingerprint(circuit: Any) -> str:
    """A digest of what a circuit does, stable across processes.

    QPY bytes are not stable (parameters carry random UUIDs, circuits get counter names), so the
    digest covers the structure instead: registers, global phase and each instruction's name,
    parameters, bit indices and whatever else decides what it does (a delay's unit, a condition,
    a switch's target and case values). Two circuits that run differently must never share a
    digest: the broker's cache would hand one program's results to another.
    """
    digest = hashlib.sha256()
    digest.update(repr((circuit.num_qubits, str(circuit.global_phase))).encode())
    digest.update(repr([(reg.name, reg.size) for reg in circuit.cregs]).encode())
    for instruction in circuit.data:
        operation = instruction.operation
        params = [_param_text(p) for p in operation.params]
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        clbits = [circuit.find_bit(c).index for c in instruction.clbits]
        extra = _operation_text(circuit, operation)
        digest.update(repr((operation.name, params, qubits, clbits, extra)).encode())
    return digest.hexdigest()


def _operation_text(circuit: Any, operation: Any) -> str:
    """What an operation does beyond its name, parameters and bits."""
    parts = [repr(getattr(operation, "unit", None))]
    for name in ("condition", "target"):
        parts.append(_operand_text(circuit, getattr(operation, name, None)))
    cases = getattr(operation, "cases_specifier", None)
    if callable(cases):
        parts += [_operand_text(circuit, tuple(values)) for values, _ in cases()]
    return " ".join(parts)


def _operand_text(circuit: Any, value: Any) -> str:
    """Bits and registers by their place in the circuit; anything else by its repr."""
    from qiskit.circuit import ClassicalRegister, Clbit

    if isinstance(value, tuple):
        return "(" + ", ".join(_operand_text(circuit, v) for v in value) + ")"
    if isinstance(value, Clbit):
        return f"clbit {circuit.find_bit(value).index}"
    if isinstance(value, ClassicalRegister):
        return f"creg {value.name} {value.size}"
    return repr(value)


def _param_text(param: Any) -> str:
    if hasattr(param, "cregs") and hasattr(param, "data"):  # a control-flow block
        return fingerprint(param)
    if isinstance(param, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(param).tobytes()).hexdigest()
    return str(param)


# -- primitive inputs ---------------------------------------------------------------------------


def encode_pub(primitive: str, pub: Any) -> dict:
    """A coerced ``SamplerPub`` / ``EstimatorPub`` as a message."""
    circuit = pub.circuit
    values = pub.parameter_values
    message: dict[str, Any] = {
        "circuit": encode_circuit(circuit),
        "shape": list(values.shape),
        "parameters": encode_array(values.as_array(circuit.parameters))
        if circuit.num_parameters
        else None,
    }
    if primitive == "sampler":
        message["shots"] = pub.shots
    else:
        message["precision"] = pub.precision
        observables = np.asarray(pub.observables.tolist(), dtype=object)
        message["observables"] = {
            "shape": list(pub.observables.shape),
            "terms": [
                [[label, float(coeff)] for label, coeff in dict(obs).items()]
                for obs in observables.reshape(-1)
            ],
        }
    return message


def decode_pub(primitive: str, message: Any, default_shots: int | None) -> tuple[Any, str, int]:
    """(pub, cache key part, shots it costs) from a message sent by the child."""
    from qiskit.primitives.containers.bindings_array import BindingsArray
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    if not isinstance(message, dict):
        raise CodecError(f"pub: expected an object, got {type(message).__name__}")
    circuit = decode_circuit(message.get("circuit"))
    shape = tuple(_sizes(message.get("shape"), "pub shape"))
    values = None
    if circuit.num_parameters:
        values = decode_array(message.get("parameters")).astype(float)
        if values.shape != (*shape, circuit.num_parameters):
            raise CodecError("pub: parameter values do not match the circuit's parameters")
        bindings = BindingsArray({tuple(circuit.parameters): values}, shape=shape)
    else:
        bindings = BindingsArray(shape=shape)
    count = math.prod(shape)  # exact: a wrapped int64 product would make a huge PUB look free
    key: list[Any] = [primitive, fingerprint(circuit), list(shape)]
    if values is not None:
        key.append(hashlib.sha256(values.tobytes()).hexdigest())
    if primitive == "sampler":
        shots = _positive_int(message.get("shots") or default_shots or DEFAULT_SHOTS, "shots")
        key.append(shots)
        pub = SamplerPub(circuit, bindings, shots)
        return pub, json.dumps(key), shots * count
    precision = message.get("precision") or DEFAULT_PRECISION
    if not isinstance(precision, (int, float)) or not 0 < precision < 1:
        raise CodecError(f"precision: expected a number in (0, 1), got {precision!r:.50}")
    observables = _decode_observables(message.get("observables"))
    key += [float(precision), message.get("observables")]
    pub = EstimatorPub(circuit, observables, bindings, float(precision))
    shots = int(np.ceil(1.0 / float(precision) ** 2))
    return pub, json.dumps(key), shots * max(count, math.prod(observables.shape))


def _decode_observables(message: Any) -> Any:
    from qiskit.primitives.containers.observables_array import ObservablesArray

    if not isinstance(message, dict) or not isinstance(message.get("terms"), list):
        raise CodecError("observables: expected {'shape': [...], 'terms': [...]}")
    shape = tuple(_sizes(message.get("shape"), "observables shape"))
    items = []
    for terms in message["terms"]:
        if not isinstance(terms, list) or not all(
            isinstance(t, list) and len(t) == 2 and isinstance(t[0], str) for t in terms
        ):
            raise CodecError("observables: each observable is a list of [pauli, coefficient]")
        items.append({label: float(coeff) for label, coeff in terms})
    array = np.empty(len(items), dtype=object)
    array[:] = items
    try:
        return ObservablesArray(array.reshape(shape) if shape else array[0])
    except Exception as exc:  # noqa: BLE001 - malformed Pauli labels and the like
        raise CodecError(f"observables: {type(exc).__name__}: {exc}")


def _sizes(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(n, int) and n >= 0 for n in value):
        raise CodecError(f"{name}: expected a list of sizes, got {value!r:.100}")
    return value


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CodecError(f"{name}: expected a positive int, got {value!r:.50}")
    return value


# -- results --------------------------------------------------------------------------------------


def encode_pub_result(result: Any) -> dict:
    """One ``SamplerPubResult`` / ``PubResult`` as a message."""
    from qiskit.primitives.containers.bit_array import BitArray

    fields = {}
    for name, value in result.data.items():
        if isinstance(value, BitArray):
            fields[name] = {"bits": value.num_bits, "array": encode_array(value.array)}
        else:
            fields[name] = {"array": encode_array(np.asarray(value))}
    return {
        "sampler": type(result).__name__ == "SamplerPubResult",
        "shape": list(result.data.shape),
        "fields": fields,
        "metadata": plain(result.metadata),
    }


def decode_pub_result(message: dict) -> Any:
    from qiskit.primitives.containers import DataBin, PubResult, SamplerPubResult
    from qiskit.primitives.containers.bit_array import BitArray

    fields = {}
    for name, value in message["fields"].items():
        array = decode_array(value["array"])
        fields[name] = BitArray(array, value["bits"]) if "bits" in value else array
    data = DataBin(**fields, shape=tuple(message["shape"]))
    kind = SamplerPubResult if message["sampler"] else PubResult
    return kind(data, metadata=message.get("metadata") or {})


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-safe data (metadata carries numpy numbers, dates and the like)."""
    if depth > 20:
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
