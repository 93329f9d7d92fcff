"""The candidate's side of the boundary: run the model's program, then answer the judge's calls.

Runs in the freshly forked, isolated child, which holds the program text, the entry point's name
and one socket to the judge — no test, no expected value, no verdict and no report channel. The
judge (:mod:`qsandbox_env.sandbox.judge`, another process) runs the task's test and calls the
candidate through this socket; arguments arrive and results leave as data through
:mod:`qsandbox_env.sandbox.codec`. Objects that are not data stay here behind numbered handles
whose attributes and methods the judge may ask for.

Nothing here is trusted by the judge: the program may rewrite this module, its own memory and
everything it sends. What it says can only be the candidate's answer (data the test then examines)
or make its own verdict worse (an error, a tampering flag). Attempts the child sees (reaching for
raw memory, frames of other code, tracing, replacing library functions) are reported as flags,
which turn the verdict into ``tampered``; the reward never depends on seeing them.
"""

from __future__ import annotations

import builtins
import linecache
import socket
import sys
import traceback
import types

from qsandbox_env.sandbox import codec, guard, wire

PROGRAM_FILENAME = guard.PROGRAM_FILENAME
# Events only code working around the test has a reason to raise.
_SUSPECT_PREFIXES = (
    "ctypes.",
    "gc.get_",
    "sys._current_frames",
    "sys.settrace",
    "sys.setprofile",
    "sys.addaudithook",
)
# Exception classes that mean "a primitive rejected a circuit that is not ISA for its device";
# set by the zygote when it installs the offline runtime (empty where there is none).
ISA_ERRORS: tuple[type, ...] = ()
# Values the judge may ask the child to apply a built-in function to (``len(handle)`` …).
_BUILTINS = {
    "len": len,
    "str": str,
    "repr": repr,
    "float": float,
    "int": int,
    "complex": complex,
    "bool": bool,
    "index": lambda value: value.__index__(),
    "iter": iter,
    "next": next,
    "getitem": lambda value, key: value[key],
}


def _install_flags(flags: list[str]) -> None:
    """Record what the program does that only tampering needs (see module docstring)."""
    prefixes = _SUSPECT_PREFIXES
    seen: set[str] = set()

    def hook(event: str, args: tuple) -> None:
        if type(event) is not str:
            return
        if event.startswith(prefixes):
            kind = event.partition(".")[0] if event.startswith("ctypes.") else event
            if kind not in seen:
                seen.add(kind)
                flags.append(f"the program used {kind}, which reaches beyond its own code")
        elif event == "open" and args and type(args[0]) is str and args[0].endswith("/mem"):
            flags.append("the program tried to read process memory")

    sys.addaudithook(hook)


def run(program: dict, sock: socket.socket, snapshot: guard.Snapshot | None) -> None:
    """Run ``program`` (``source``, ``entry_point``) and serve the judge until it finishes."""
    flags: list[str] = []
    _install_flags(flags)
    source: str = program["source"]
    entry_point: str = program["entry_point"]
    try:
        code = compile(source, PROGRAM_FILENAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError) as exc:
        _refuse(sock, "syntax", exc)
        return
    linecache.cache[PROGRAM_FILENAME] = (len(source), None, source.splitlines(True), "")
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    main.__dict__["__file__"] = PROGRAM_FILENAME
    sys.modules["__main__"] = main
    try:
        exec(code, main.__dict__)
    except BaseException as exc:  # noqa: BLE001 - SystemExit & co. are program outcomes too
        _refuse(sock, classify(exc), exc)
        return
    _import_for_the_test(program.get("imports", ""), main.__dict__)
    candidate = main.__dict__.get(entry_point)
    if candidate is None:
        wire.send(
            sock,
            {
                "ready": False,
                "outcome": "error",
                "error_type": "NameError",
                "detail": f"the program does not define {entry_point!r}",
            },
        )
        return
    _Server(sock, candidate, flags, snapshot).serve()


def _import_for_the_test(imports: str, namespace: dict) -> None:
    """Bind the names the test's own imports give that the program left undefined.

    In one module the test's imports ran before ``check`` called the candidate, so a program
    answered with only its function could use them; the program's own names win.
    """
    if not imports:
        return
    found: dict = {"__builtins__": builtins}
    try:
        exec(compile(imports, "<test imports>", "exec", dont_inherit=True), found)
    except BaseException:  # noqa: BLE001 - the test fails on the same import in the judge
        return
    for name, value in found.items():
        if name != "__builtins__" and name not in namespace:
            namespace[name] = value


def _take_random_states(states: list) -> None:
    """Draw from where the test left the global generators (see judge.Channel._random_states)."""
    import random

    import numpy

    kind, keys, position, has_gauss, gauss = states[0]
    numpy.random.set_state(
        (kind, numpy.asarray(keys, dtype=numpy.uint32), position, has_gauss, gauss)
    )
    random.setstate((3, tuple(states[1]), None))


def _refuse(sock: socket.socket, outcome: str, exc: BaseException) -> None:
    flush_output()
    wire.send(
        sock,
        {
            "ready": False,
            "outcome": outcome,
            "error_type": type(exc).__name__,
            "detail": describe(exc),
        },
    )


class _Server:
    """Answers the judge: calls, attribute reads and built-ins on the candidate and its handles."""

    def __init__(
        self,
        sock: socket.socket,
        candidate: object,
        flags: list[str],
        snapshot: guard.Snapshot | None,
    ) -> None:
        self.sock = sock
        self.objects: dict[int, object] = {0: candidate}
        self.ids: dict[int, int] = {id(candidate): 0}
        self.flags = flags
        self.snapshot = snapshot

    def serve(self) -> None:
        wire.send(self.sock, {"ready": True})
        while True:
            header, payload = wire.receive(self.sock)
            op = header.get("op")
            if op == "finish":
                findings = self._findings()
                flush_output()
                wire.send(self.sock, {"flags": findings})
                return
            try:
                reply = self._answer(op, header, payload)
            except BaseException as exc:  # noqa: BLE001 - the candidate's own failure
                self._send_exception(exc)
                continue
            wire.send(self.sock, {"ok": True}, reply)

    def _answer(self, op: object, header: dict, payload: bytes) -> bytes:
        target = self.objects[int(header["target"])]
        if op == "call":
            args, kwargs, states = codec.decode(payload, from_handle=self._resolve)
            if states is not None:
                _take_random_states(states)
            result = target(*args, **kwargs)
            # The arguments go back too: the judge applies what the candidate changed in place.
            return self._encode((result, list(args), dict(kwargs)))
        if op == "getattr":
            return self._encode(getattr(target, str(header["name"])))
        if op == "builtin":
            function = _BUILTINS[str(header["name"])]
            extra = codec.decode(payload, from_handle=self._resolve) if payload else ()
            return self._encode(function(target, *extra))
        raise ValueError(f"unknown operation {op!r}")

    def _encode(self, value: object) -> bytes:
        return codec.encode(value, to_handle=self._handle)

    def _handle(self, obj: object) -> int:
        known = self.ids.get(id(obj))
        if known is not None and self.objects[known] is obj:
            return known
        number = len(self.objects)
        self.objects[number] = obj
        self.ids[id(obj)] = number
        return number

    def _resolve(self, number: int, names: tuple[str, ...]) -> object:
        return self.objects[number]

    def _send_exception(self, exc: BaseException) -> None:
        names = [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__]
        try:
            message = str(exc)[:4000]
        except BaseException:  # noqa: BLE001 - a program's exception may not print
            message = ""
        wire.send(
            self.sock,
            {
                "ok": False,
                "types": names,
                "message": message,
                "outcome": classify(exc),
                "detail": describe(exc),
            },
        )

    def _findings(self) -> list[str]:
        findings = list(self.flags)
        if self.snapshot is not None:
            try:
                findings += self.snapshot.changes()
            except BaseException:  # noqa: BLE001 - a broken snapshot is a finding itself
                findings.append("the program broke the sandbox's record of the libraries")
        return findings


# The interpreter's own output streams (programs may rebind sys.stdout; these stay ours).
_STREAMS = (sys.__stdout__, sys.__stderr__)


def flush_output() -> None:
    """Push buffered program output into the pipe before the child ends."""
    for stream in (sys.stdout, sys.stderr, *_STREAMS):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream loses only output
            pass


def describe(exc: BaseException, limit: int = 4000) -> str:
    """The program's part of a traceback, trimmed, robust to exceptions that misbehave."""
    try:
        if isinstance(exc, SyntaxError) and exc.filename == PROGRAM_FILENAME:
            text = "".join(traceback.format_exception_only(exc))
        else:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != PROGRAM_FILENAME:
                tb = tb.tb_next
            text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    except BaseException:  # noqa: BLE001 - program-defined exceptions may break formatting
        text = f"{type(exc).__name__} (could not be formatted)"
    return text if len(text) <= limit else "…" + text[-limit:]


def classify(exc: BaseException) -> str:
    """The outcome an exception stands for: memory, not_isa, failed (assertions) or error."""
    if isinstance(exc, MemoryError):
        return "memory"
    if ISA_ERRORS and _caused_by(exc, ISA_ERRORS):
        return "not_isa"
    if isinstance(exc, AssertionError):
        return "failed"
    return "error"


def _caused_by(exc: BaseException, kinds: tuple[type, ...], depth: int = 8) -> bool:
    """Whether ``exc`` or an exception it was raised from or during is one of ``kinds``."""
    seen: object = exc
    for _ in range(depth):
        if not issubclass(type(seen), BaseException):
            return False
        if issubclass(type(seen), kinds):
            return True
        cause = _CAUSE.__get__(seen)
        seen = cause if cause is not None else _CONTEXT.__get__(seen)
    return False


# BaseException's own slots: an exception class cannot answer for them.
_CAUSE = BaseException.__dict__["__cause__"]
_CONTEXT = BaseException.__dict__["__context__"]
