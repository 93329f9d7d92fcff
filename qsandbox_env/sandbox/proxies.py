"""What the test holds of the candidate: proxies for its entry point and for its objects.

The judge (:mod:`qsandbox_env.sandbox.judge`) hands the task's test a `RemoteFunction` for the
candidate's entry point; what a call returns is rebuilt from data, and an object that cannot be
data stays in the child behind a handle:

- a `Remote`, for an object of the program's own class (or a function, a generator): it forwards
  calls, ``len``, iteration, indexing and conversions, which give the test values and nothing a
  data answer could not, and reads no named attribute, so the program never vouches for itself;
- a presented handle, for a library object that can never be data (a figure and its artists, a
  job, a pass manager, a pass, a backend, a primitive): ``isinstance`` and ``type(...) ==`` see the
  library's class, and only the names and operations that class declares are forwarded;
- a transformation pass of the judge's own whose ``run`` is the candidate's.

No handle forwards a comparison, hashing or membership test. This module never runs the program's
code: ``RemoteFunction.__code__`` is compiled from its text and never called.
"""

from __future__ import annotations

import ast
import sys
import types
from typing import TYPE_CHECKING, Any

from qsandbox_env.sandbox import codec

if TYPE_CHECKING:
    from qsandbox_env.sandbox.judge import Channel

__all__ = [
    "Remote",
    "RemoteFunction",
    "is_handle",
    "presented_class",
    "proxy_for",
    "static_function",
]


class RemoteFunction:
    """Stands in for the candidate's entry point in the test.

    Calls cross to the child. ``__code__`` and ``__globals__`` are read from the program's text,
    compiled here and never run, so that a test can look at what the code refers to (a test that
    forbids building a state from a matrix, say) without the child answering for itself.
    """

    __slots__ = ("_channel", "_name", "_number", "_source", "_static")

    def __init__(self, channel: Channel, name: str, source: str = "") -> None:
        self._channel = channel
        self._number = 0
        self._name = name
        self._source = source
        self._static: types.FunctionType | None = None

    def __call__(self, *args: object, **kwargs: object) -> Any:
        return self._channel.call(0, args, kwargs)

    @property
    def __name__(self) -> str:
        return self._name

    @property
    def __code__(self) -> types.CodeType:
        return self._read().__code__

    @property
    def __globals__(self) -> dict:
        return self._read().__globals__

    def _read(self) -> types.FunctionType:
        if self._static is None:
            self._static = static_function(self._source, self._name)
        if self._static is None:
            raise AttributeError(f"the program's text defines no function {self._name!r}")
        return self._static

    def __repr__(self) -> str:
        return f"<candidate {self._name} in the sandbox>"


class _Handle:
    """An object that stayed in the candidate's process.

    Comparisons, hashing and membership are this handle's own (identity), never the candidate's.
    Named attributes are never read from an object of the candidate's own class: a method the
    test calls there (``result.equiv(expected)``) would be the candidate vouching for itself.
    """

    __slots__ = ("_channel", "_number", "_types")

    def __init__(self, channel: Channel, number: int, types: tuple[str, ...]) -> None:
        self._channel = channel
        self._number = number
        self._types = types

    def __getattr__(self, name: str) -> Any:
        kind = self._types[0] if self._types else "object"
        raise AttributeError(
            f"{name!r} was not read from the candidate's {kind}: the judge reads no attribute "
            "of an object of a class the program made; return data (numbers, strings, "
            "containers, arrays, circuits, quantum_info objects) or a library object"
        )

    def __str__(self) -> str:
        return _exact(self._channel.builtin(self._number, "str"), str)

    def __repr__(self) -> str:
        kind = self._types[0] if self._types else "object"
        return f"<{kind} in the sandbox>"


class Remote(_Handle):
    """A handle that forwards calls, ``len``, iteration, indexing and conversions.

    Each of these gives the test a value, and nothing a data answer could not give (a list of
    that length, that item, that number); the test then judges the value itself.
    """

    __slots__ = ()

    def __call__(self, *args: object, **kwargs: object) -> Any:
        return self._channel.call(self._number, args, kwargs)

    def __len__(self) -> int:
        return _exact(self._channel.builtin(self._number, "len"), int)

    def __iter__(self) -> Any:
        return self._channel.builtin(self._number, "iter")

    def __next__(self) -> Any:
        return self._channel.builtin(self._number, "next")

    def __getitem__(self, key: object) -> Any:
        return self._channel.builtin(self._number, "getitem", key)

    def __float__(self) -> float:
        return _exact(self._channel.builtin(self._number, "float"), float)

    def __int__(self) -> int:
        return _exact(self._channel.builtin(self._number, "int"), int)

    def __index__(self) -> int:
        return _exact(self._channel.builtin(self._number, "index"), int)

    def __complex__(self) -> complex:
        return _exact(self._channel.builtin(self._number, "complex"), complex)

    def __bool__(self) -> bool:
        return _exact(self._channel.builtin(self._number, "bool"), bool)


# What a Remote forwards beyond attribute reads; a handle presenting a class forwards only those
# of these that the class has (a pass must not look iterable, a figure not callable).
_FORWARDED = (
    "__call__",
    "__len__",
    "__iter__",
    "__next__",
    "__getitem__",
    "__float__",
    "__int__",
    "__index__",
    "__complex__",
    "__bool__",
)


def static_function(source: str, name: str) -> types.FunctionType | None:
    """The program's last top-level ``def name``, as a function that is never called.

    Its globals hold the program's other top-level functions (likewise never called) and, for
    each name an import binds, an object whose ``__name__`` is the imported name, so an alias
    (``import X as Y``) still says what it stands for. Nothing in the text runs.
    """
    try:
        tree = ast.parse(source)
        module = compile(tree, "/program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    namespace: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                bound = alias.asname or alias.name.partition(".")[0]
                namespace[bound] = _Named(alias.name.rpartition(".")[2])
    for const in module.co_consts:
        if type(const) is types.CodeType and not const.co_freevars and const.co_name != "<lambda>":
            namespace[const.co_name] = types.FunctionType(const, namespace, const.co_name)
    found = namespace.get(name)
    return found if type(found) is types.FunctionType else None


class _Named:
    """What an imported name stands for, by name only."""

    __slots__ = ("__name__",)

    def __init__(self, name: str) -> None:
        self.__name__ = name


class _Claim(type):
    """The metaclass of a handle that stands for a library class: ``type(h) == Figure`` holds."""

    def __eq__(cls, other: object) -> bool:
        return cls is other or other is cls.__dict__.get("_claim")

    def __hash__(cls) -> int:
        return type.__hash__(cls)


_CLAIMING: dict[type, type] = {}


def _claiming(cls: type) -> type:
    """A handle that presents ``cls`` to ``isinstance`` and ``type(...) ==``.

    Only subclasses of the codec's table of handle classes (figures and their artists, jobs,
    pass managers, passes, backends, primitives) are presented; their objects cannot be data.
    The handle reads only the attributes ``cls`` declares (its methods and properties, and the
    attributes its instances are made with) and forwards only the operations ``cls`` has, so a
    program's own class that claims to be a pass manager has no ``equiv`` to answer. What those
    reads and calls return is still the child's answer; comparisons stay the handle's own.
    """
    made = _CLAIMING.get(cls)
    if made is None:
        forwarded = {name: vars(Remote)[name] for name in _FORWARDED if hasattr(cls, name)}
        body = {
            "__slots__": (),
            "_claim": cls,
            "__class__": property(lambda self: cls),
            "__getattr__": _read_declared,
        }
        made = _Claim(cls.__name__, (_Handle,), {**body, **forwarded})
        _CLAIMING[cls] = made
    return made


def _read_declared(handle: _Handle, name: str) -> Any:
    cls = handle._claim  # type: ignore[attr-defined]
    dunder = name.startswith("__") and name.endswith("__")
    if dunder or not (hasattr(cls, name) or name in _instance_names(cls)):
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")
    return handle._channel.getattr(handle._number, name)


# Library objects made here once, to learn the attributes their instances carry (a staged pass
# manager's stages, a pass manager's tasks, a figure's lists of artists); by qualified class name.
_EXAMPLES: dict[str, Any] = {
    "qiskit.transpiler.passmanager.StagedPassManager": lambda cls: cls(),
    "qiskit.transpiler.passmanager.PassManager": lambda cls: cls(),
    "matplotlib.figure.Figure": lambda cls: cls(),
    "matplotlib.axes._axes.Axes": lambda cls: _figure().add_subplot(),
    "matplotlib.text.Text": lambda cls: cls(),
    "matplotlib.patches.Rectangle": lambda cls: cls((0, 0), 1, 1),
    "matplotlib.patches.Patch": lambda cls: cls(),
    "matplotlib.lines.Line2D": lambda cls: cls([], []),
    "matplotlib.artist.Artist": lambda cls: cls(),
}
_INSTANCE_NAMES: dict[type, frozenset[str]] = {}


def _figure() -> Any:
    from matplotlib.figure import Figure

    return Figure()


def _instance_names(cls: type) -> frozenset[str]:
    """The attribute names an instance of the nearest example class of ``cls`` is made with."""
    names = _INSTANCE_NAMES.get(cls)
    if names is None:
        names = frozenset()
        for base in cls.__mro__:
            make = _EXAMPLES.get(f"{base.__module__}.{base.__qualname__}")
            if make is not None:
                try:
                    names = frozenset(vars(make(base)))
                except Exception:  # noqa: BLE001 - a library version whose class differs
                    names = frozenset()
                break
        _INSTANCE_NAMES[cls] = names
    return names


def _is_transformation_pass(cls: type) -> bool:
    passes = sys.modules.get("qiskit.transpiler.basepasses")
    base = getattr(passes, "TransformationPass", None)
    return isinstance(base, type) and issubclass(cls, base)


def _remote_pass(handle: Remote) -> Any:
    """A transformation pass of the judge's own whose ``run`` is the candidate's.

    The judge's pass manager drives it (so it is a real ``TransformationPass``); each DAG it is
    given crosses to the child as data and the DAG the candidate's pass returns crosses back.
    """
    from qiskit.transpiler.basepasses import TransformationPass

    channel, number = handle._channel, handle._number

    class CandidatePass(TransformationPass):
        def run(self, dag: Any) -> Any:
            return channel.getattr(number, "run")(dag)

    return CandidatePass()


# Packages whose classes a handle may present itself as, beyond the codec's table: the exact
# class the child names, when its module is already loaded here (nothing is imported for it) and
# the class is a subclass of one in the table.
_PRESENTABLE = ("qiskit.", "qiskit_aer.", "qiskit_ibm_runtime.", "matplotlib.")


def presented_class(names: tuple[str, ...]) -> type | None:
    """The library class a handle presents: its own class if loaded here, else the table's.

    The names are the child's word; whichever class they pick, it is one whose objects can never
    be data (a ``Statevector`` or ``Operator`` always crosses as data, never as a handle).
    """
    if names and type(names[0]) is str and names[0].startswith(_PRESENTABLE):
        module_name, _, qualname = names[0].rpartition(".")
        module = sys.modules.get(module_name)
        found = getattr(module, qualname, None) if module is not None and qualname else None
        if (
            isinstance(found, type)
            and not issubclass(found, BaseException)
            and codec.handle_class(tuple(codec.type_names(found))) is not None
        ):
            return found
    return codec.handle_class(names)


def _exact(value: object, kind: type) -> Any:
    if type(value) is not kind:
        raise TypeError(f"expected the candidate's object to give a {kind.__name__}")
    return value


def is_handle(obj: object) -> bool:
    """Whether ``obj`` is a proxy of something in the child (its number can cross back)."""
    return isinstance(obj, _Handle) or type(obj) is RemoteFunction


def proxy_for(channel: Channel, number: int, names: tuple[str, ...]) -> Any:
    """The proxy the test gets for the child's object ``number`` with these type names."""
    claim = presented_class(names)
    if claim is not None and _is_transformation_pass(claim):
        return _remote_pass(Remote(channel, number, names))
    cls = _claiming(claim) if claim is not None else Remote
    return cls(channel, number, names)
