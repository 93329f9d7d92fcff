"""Test-code snippets that keep generated tests from rewarding shortcuts.

A policy trained with reinforcement learning finds every answer that earns reward 1 without doing
what the prompt asks: hard-coding the target state with ``initialize`` or ``StatePreparation``,
appending a ``UnitaryGate`` computed from the prompt's own numbers, calling the library routine
a task exists to teach around, producing an algorithm's known answer directly instead of
querying its oracle. Families paste these snippets into their tests (`check_snippets`) and state
the matching rules in their prompts (`GATES_ONLY_RULE`).

The snippets look inside custom gates, sub-circuits and control-flow blocks, so wrapping an
instruction in ``to_gate()`` does not hide it. What they cannot see is a forbidden instruction
already decomposed into ordinary gates (``transpile`` of an ``initialize``); the code-name check
(`referenced_names`) covers the usual way of getting there, by name, and oracle substitution
(`with_oracle`) makes algorithm tasks independent of any such trick.

One rule needs no snippet: a test calls the candidate before it computes its reference answer,
so an answer that reads the calling frame (``sys._getframe(1).f_locals``) finds nothing to copy.

Like `qsandbox_env.families.core`, this module only writes text: it must never import Qiskit or
run the snippets itself.
"""

from __future__ import annotations

__all__ = [
    "GATES_ONLY_RULE",
    "MATRIX_DEFINED_NAMES",
    "SNIPPETS",
    "check_snippets",
]

GATES_ONLY_RULE = (
    "Build it from gates: no initialize, StatePreparation, UnitaryGate or other instruction "
    "defined by a state vector or a matrix."
)
"""The prompt sentence that goes with ``assert_built_from_gates``."""

# Instruction names (as circuits record them) and code names (classes, functions and methods)
# that hard-code a state or a matrix instead of building gates.
MATRIX_DEFINED_NAMES = (
    "initialize",
    "state_preparation",
    "unitary",
    "isometry",
    "hamiltonian",
    "diagonal",
    "multiplexer",
    "ucrx",
    "ucry",
    "ucrz",
    "linear_function",
    "clifford",
)
_MATRIX_DEFINED_CODE_NAMES = (
    "initialize",
    "Initialize",
    "prepare_state",
    "StatePreparation",
    "unitary",
    "UnitaryGate",
    "iso",
    "Isometry",
    "HamiltonianGate",
    "DiagonalGate",
    "UCGate",
    "UCRXGate",
    "UCRYGate",
    "UCRZGate",
    "LinearFunction",
    "Clifford",
)

SNIPPETS = {
    "operations": '''
def operations(circuit, stop=()):
    """Every operation of circuit, including those inside custom gates and blocks (but not
    inside operations named in stop)."""
    for item in circuit.data:
        yield from expand(item.operation, stop)

def library_class(operation):
    """The operation's class, seen through the private singleton classes of fixed gates."""
    cls = type(operation)
    return cls.__mro__[1] if cls.__name__.startswith("_Singleton") else cls

def expand(operation, stop=()):
    yield operation
    # Library gates (h, cx, mcx, ...) hide nothing, and expanding them would only cost time.
    if (library_class(operation).__module__ or "").startswith("qiskit.circuit.library.standard"):
        return
    if operation.name in ("measure", "reset", "barrier", "delay", *stop):
        return
    for inner in (getattr(operation, "base_op", None), getattr(operation, "base_gate", None)):
        if inner is not None:
            yield from expand(inner, stop)
    for block in getattr(operation, "blocks", ()):
        yield from operations(block, stop)
    definition = getattr(operation, "definition", None)
    if definition is not None:
        yield from operations(definition, stop)
''',
    "referenced_names": '''
def referenced_names(function):
    """Names function's code uses (nested code and same-module helpers included), with the
    __name__ of the objects they are bound to, so that an alias does not hide a library call."""
    import types

    names, seen, stack = set(), set(), [function.__code__]
    while stack:
        code = stack.pop()
        if code in seen:
            continue
        seen.add(code)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                stack.append(const)
        for name in code.co_names:
            names.add(name)
            value = function.__globals__.get(name)
            names.add(getattr(value, "__name__", name) if value is not None else name)
            if isinstance(value, types.FunctionType) and value.__globals__ is function.__globals__:
                stack.append(value.__code__)
    return names
''',
    "assert_built_from_gates": f'''
def assert_built_from_gates(circuit, function):
    """No instruction defined by a state vector or a matrix, nor code that makes one."""
    found = sorted({{op.name for op in operations(circuit)}} & set({MATRIX_DEFINED_NAMES!r}))
    assert not found, f"build the circuit from gates; found {{found}} instructions"
    named = sorted(referenced_names(function) & set({_MATRIX_DEFINED_CODE_NAMES!r}))
    assert not named, f"build the circuit from gates; the code uses {{named}}"
''',
    "assert_not_used": '''
def assert_not_used(function, forbidden):
    """function's code names none of forbidden (library routines the task is about)."""
    used = sorted(referenced_names(function) & set(forbidden))
    assert not used, f"the task asks you to build this yourself; the code uses {used}"
''',
    "assert_only_gates": '''
def assert_only_gates(circuit, allowed):
    """Only the library gates named in allowed, at the top level (no look-alike custom gate)."""
    from qiskit.circuit.library import get_standard_gate_name_mapping

    standard = get_standard_gate_name_mapping()
    for item in circuit.data:
        name = item.operation.name
        assert name in allowed, f"only {sorted(allowed)} are allowed, found {name!r}"
        genuine = name in standard and (
            library_class(item.operation) is library_class(standard[name])
        )
        assert genuine, f"{name!r} here is a custom gate, not the library's {name} gate"
''',
    "oracle_calls": '''
def oracle_calls(circuit):
    """The gates named "oracle" in circuit, looking inside custom gates and blocks."""
    return [op for op in operations(circuit, stop=("oracle",)) if op.name == "oracle"]
''',
    "with_oracle": '''
def with_oracle(circuit, oracle):
    """circuit with every gate named "oracle" replaced by oracle; custom gates around one are
    inlined, so what the rest of the circuit does is kept exactly."""
    out = circuit.copy_empty_like()
    for item in circuit.data:
        operation = item.operation
        if operation.name == "oracle":
            out.append(oracle, item.qubits, item.clbits)
        elif not any(inner.name == "oracle" for inner in expand(operation, ("oracle",))):
            out.append(operation, item.qubits, item.clbits)
        elif getattr(operation, "blocks", ()):
            blocks = [with_oracle(block, oracle) for block in operation.blocks]
            out.append(operation.replace_blocks(blocks), item.qubits, item.clbits)
        else:
            inner = with_oracle(operation.definition, oracle)
            out.compose(inner, item.qubits, item.clbits, inplace=True)
    return out
''',
}
"""Test-code helpers by name; `check_snippets` pastes them in with what they depend on."""

_NEEDS = {
    "operations": (),
    "referenced_names": (),
    "assert_built_from_gates": ("operations", "referenced_names"),
    "assert_not_used": ("referenced_names",),
    "assert_only_gates": ("operations",),
    "oracle_calls": ("operations",),
    "with_oracle": ("operations",),
}


def check_snippets(*names: str) -> str:
    """The source of the named snippets and of those they use, each once, ready for a test body.

    Raises:
        ValueError: An unknown snippet name.

    Example:
        >>> code = check_snippets("assert_not_used")
        >>> [line for line in code.splitlines() if line.startswith("def ")]
        ['def referenced_names(function):', 'def assert_not_used(function, forbidden):']
    """
    ordered: list[str] = []

    def add(name: str) -> None:
        if name not in SNIPPETS:
            raise ValueError(
                f"check_snippets: unknown snippet {name!r}; expected one of {', '.join(SNIPPETS)}"
            )
        for needed in _NEEDS[name]:
            add(needed)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        add(name)
    return "\n".join(SNIPPETS[name].strip("\n") + "\n" for name in ordered)
