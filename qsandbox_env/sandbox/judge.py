"""The judge: runs the task's test against the candidate, which lives in another process.

Runs in a process forked from the judge server (see :mod:`qsandbox_env.sandbox.zygote`) that never
runs the model's code. It executes the task's own code (the prompt's imports and definitions, then
the test) and calls ``check`` with a proxy for the candidate's entry point. Each call crosses to
the sandboxed child as data (:mod:`qsandbox_env.sandbox.codec`); what comes back is built here from
that data alone: exact built-in types, arrays, circuits and ``quantum_info`` objects made by the
libraries in this process. Objects that cannot be data come back as handles: calls, iteration,
indexing and conversions are forwarded, named attributes only where the handle presents a library
class that declares them, and comparisons (``==``, ``in``) never, so an object that says "yes" to
everything has nothing to say here.

The verdict is decided here, from how ``check`` ended, and written to a descriptor the child never
had. The child can only answer the calls it is asked, crash, hang, or report its own tampering,
which makes the verdict worse.
"""

from __future__ import annotations

import ast
import builtins
import json
import linecache
import os
import socket
import sys
import traceback
import types
from typing import Any

from qsandbox_env.sandbox import child, codec, wire

PROMPT_FILENAME = "/task-prompt.py"
TEST_FILENAME = "/task-test.py"
_TASK_FILES = (PROMPT_FILENAME, TEST_FILENAME)
# Built-in exceptions a candidate's failure is raised as here (its class name, nothing more, is
# read from the child's report); others become CandidateError.
_BUILTIN_EXCEPTIONS = {
    name: value
    for name, value in vars(builtins).items()
    if isinstance(value, type)
    and issubclass(value, Exception)
    and not issubclass(value, (Warning, StopAsyncIteration))
}
_BUILTIN_EXCEPTIONS["StopIteration"] = StopIteration
# Library packages whose exception classes a test may catch (``QiskitError``, ``CircuitError``).
_LIBRARY_EXCEPTIONS = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "numpy", "scipy")


class CandidateError(Exception):
    """The candidate raised an exception whose class cannot be made in the judge."""


class CandidateGone(BaseException):
    """The candidate's process ended or broke the protocol; its verdict comes from its status."""


class Channel:
    """The judge's end of the socket to the candidate's child."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.remote_outcomes: dict[int, str] = {}  # id(exception raised here) -> child's class
        self.remote_names: dict[int, str] = {}  # id(exception raised here) -> its class there
        self.sent_states: list | None = _global_random_states()  # the child starts from these

    def ask(self, header: dict, payload: bytes = b"") -> Any:
        try:
            wire.send(self.sock, header, payload)
            reply, data = wire.receive(self.sock)
        except (OSError, wire.WireError) as exc:
            raise CandidateGone(str(exc)) from None
        if reply.get("ok") is True:
            return self._decode(data)
        if reply.get("ok") is False:
            raise self._exception(reply)
        raise CandidateGone("the candidate answered out of turn")

    def call(self, number: int, args: tuple, kwargs: dict) -> Any:
        payload = self._encode((list(args), kwargs, self._random_states()))
        result, args_after, kwargs_after = self.ask({"op": "call", "target": number}, payload)
        for before, after in zip(args, args_after, strict=False):
            _write_back(before, after)
        for name, before in kwargs.items():
            if name in kwargs_after:
                _write_back(before, kwargs_after[name])
        return result

    def _random_states(self) -> list | None:
        """The global random streams of this process, when the test moved them since last time.

        A test may seed NumPy's or Python's global generator and expect the candidate to draw
        from it, as it did when both shared a process; the child takes these states over before
        the call. States never come back: the child cannot choose what the test draws next.
        """
        states = _global_random_states()
        if states == self.sent_states:
            return None
        self.sent_states = states
        return states

    def getattr(self, number: int, name: str) -> Any:
        return self.ask({"op": "getattr", "target": number, "name": name})

    def builtin(self, number: int, name: str, *extra: object) -> Any:
        payload = self._encode(extra) if extra else b""
        return self.ask({"op": "builtin", "target": number, "name": name}, payload)

    def finish(self) -> list[str]:
        try:
            wire.send(self.sock, {"op": "finish"})
            reply, _ = wire.receive(self.sock)
        except (OSError, wire.WireError):
            return []
        flags = reply.get("flags")
        if type(flags) is not list:
            return ["the program answered the sandbox's last question with something else"]
        return [str(flag)[:500] for flag in flags[:20]]

    # -- data across the boundary ---------------------------------------------------------
    def _encode(self, value: object) -> bytes:
        return codec.encode(value, to_handle=_remote_number)

    def _decode(self, data: bytes) -> Any:
        try:
            return codec.decode(data, from_handle=self._remote)
        except codec.CodecError as exc:
            raise CandidateError(f"the candidate's answer could not be read: {exc}") from None

    def _remote(self, number: int, names: tuple[str, ...]) -> Remote:
        claim = presented_class(names)
        if claim is not None and _is_transformation_pass(claim):
            return _remote_pass(Remote(self, number, names))
        cls = _claiming(claim) if claim is not None else Remote
        return cls(self, number, names)

    def _exception(self, reply: dict) -> BaseException:
        names = reply.get("types")
        message = str(reply.get("message", ""))[:4000]
        exc = _make_exception(names if type(names) is list else [], message)
        if names and type(names) is list and type(names[0]) is str:
            self.remote_names[id(exc)] = names[0].rpartition(".")[2][:200]
        outcome = reply.get("outcome")
        if outcome in ("memory", "not_isa"):
            self.remote_outcomes[id(exc)] = outcome
        detail = str(reply.get("detail", ""))
        if detail:
            exc.__notes__ = ["raised by the candidate:\n" + detail[-2000:]]
        return exc


def _global_random_states() -> list:
    """``[numpy's legacy global state, random's state]`` as plain data (comparable with ==)."""
    import random

    import numpy

    kind, keys, position, has_gauss, gauss = numpy.random.get_state()
    return [[kind, keys.tolist(), position, has_gauss, gauss], list(random.getstate()[1])]


def _remote_number(obj: object) -> int:
    if isinstance(obj, _Handle) or type(obj) is RemoteFunction:
        return object.__getattribute__(obj, "_number")
    raise TypeError(
        f"the test passed a {type(obj).__qualname__} to the candidate; only data (numbers, "
        "strings, containers, arrays, circuits, quantum_info objects, backends) and objects "
        "the candidate returned can cross to the sandbox"
    )


def _write_back(before: object, after: object) -> None:
    if before is after or isinstance(before, _Handle):
        return
    try:
        codec.write_back(before, after)
    except codec.CodecError:
        pass  # the candidate replaced the value with one of another kind: nothing to apply


def _make_exception(names: list, message: str) -> BaseException:
    for name in names:
        if type(name) is not str:
            continue
        module, _, qualname = name.rpartition(".")
        cls: object = None
        if module == "builtins":
            cls = _BUILTIN_EXCEPTIONS.get(qualname)
        elif module.partition(".")[0] in _LIBRARY_EXCEPTIONS and module in sys.modules:
            cls = getattr(sys.modules[module], qualname, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                return cls(message)
            except Exception:  # noqa: BLE001 - a class with another signature: try its base
                continue
    kind = str(names[0]).rpartition(".")[2] if names else "Exception"
    return CandidateError(f"{kind}: {message}")


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


def run(job: dict, sock: socket.socket, report_fd: int) -> None:
    """Run the test of ``job`` (``prelude``, ``test``, ``entry_point``) and write the verdict."""
    channel = Channel(sock)
    try:
        ready, _ = wire.receive(sock)
    except wire.WireError:
        _report(report_fd, {"outcome": "gone", "detail": "", "error_type": ""})
        return
    if ready.get("ready") is not True:
        outcome = ready.get("outcome")
        if outcome not in ("syntax", "error", "failed", "memory", "not_isa"):
            outcome = "error"
        _report(
            report_fd,
            {
                "outcome": outcome,
                "detail": str(ready.get("detail", ""))[-4000:],
                "error_type": str(ready.get("error_type", ""))[:200],
            },
        )
        return
    _report(report_fd, judge(job, channel))


def judge(job: dict, channel: Channel) -> dict:
    """Run ``check`` against the proxy; the verdict as ``{"outcome", "detail", "error_type"}``."""
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    entry_point = job["entry_point"]
    for filename, text in ((PROMPT_FILENAME, job["prelude"]), (TEST_FILENAME, job["test"])):
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    try:
        exec(compile(job["prelude"], PROMPT_FILENAME, "exec", dont_inherit=True), namespace)
        exec(compile(job["test"], TEST_FILENAME, "exec", dont_inherit=True), namespace)
    except BaseException as exc:  # noqa: BLE001 - the task's own code failed
        return _verdict(
            "error", f"the task's test could not be set up: {_describe(exc)}", exc, channel
        )
    candidate = RemoteFunction(channel, entry_point, job.get("candidate", ""))
    namespace[entry_point] = candidate
    check = namespace.get("check")
    if not callable(check):
        return {"outcome": "error", "detail": "the task's test defines no check", "error_type": ""}
    try:
        check(candidate)
    except CandidateGone:
        return {"outcome": "gone", "detail": "", "error_type": ""}
    except BaseException as exc:  # noqa: BLE001
        return _verdict(_classify(exc, channel), _describe(exc), exc, channel)
    flags = channel.finish()
    if flags:
        return {"outcome": "tampered", "detail": " | ".join(flags), "error_type": ""}
    return {"outcome": "passed", "detail": "", "error_type": ""}


def _verdict(outcome: str, detail: str, exc: BaseException, channel: Channel) -> dict:
    flags = channel.finish()
    if flags and outcome in ("failed", "error"):
        # What the child saw it do is the more useful account of a failure it caused.
        return {"outcome": "tampered", "detail": " | ".join(flags), "error_type": ""}
    # An exception the candidate raised is named as it was in the child.
    name = channel.remote_names.get(id(exc), type(exc).__name__)
    return {"outcome": outcome, "detail": detail, "error_type": name}


def _classify(exc: BaseException, channel: Channel) -> str:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        remote = channel.remote_outcomes.get(id(seen))
        if remote is not None:
            return remote
        seen = seen.__cause__ or seen.__context__
    return child.classify(exc)


def _describe(exc: BaseException, limit: int = 4000) -> str:
    """The task's part of a traceback (from the test's first frame on), trimmed."""
    try:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename not in _TASK_FILES:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    except BaseException:  # noqa: BLE001
        text = f"{type(exc).__name__} (could not be formatted)"
    return text if len(text) <= limit else "…" + text[-limit:]


def _report(fd: int, verdict: dict) -> None:
    data = json.dumps(verdict, ensure_ascii=True).encode("ascii") + b"\n"
    while data:
        data = data[os.write(fd, data) :]
