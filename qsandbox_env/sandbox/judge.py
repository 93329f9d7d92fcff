"""The judge: runs the task's test against the candidate, which lives in another process.

Runs in a process forked from the judge server (see :mod:`qsandbox_env.sandbox.zygote`) that never
runs the model's code. It executes the task's own code (the prompt's imports and definitions, then
the test) and calls ``check`` with a proxy for the candidate's entry point. Each call crosses to
the sandboxed child as data (:mod:`qsandbox_env.sandbox.codec`); what comes back is built here from
that data alone: exact built-in types, arrays, circuits and ``quantum_info`` objects made by the
libraries in this process. Objects that cannot be data come back as handles: calls, iteration,
indexing and conversions are forwarded, named attributes only where the handle presents a library
class that declares them, and comparisons (``==``, ``in``) never, so an object that says "yes" to
everything has nothing to say here (the proxies: :mod:`qsandbox_env.sandbox.proxies`).

The verdict is decided here, from how ``check`` ended, and written to a descriptor the child never
had. The child can only answer the calls it is asked, crash, hang, or report its own tampering,
which makes the verdict worse.
"""

from __future__ import annotations

import builtins
import json
import linecache
import os
import socket
import sys
import traceback
from typing import Any

from qsandbox_env.sandbox import child, codec, wire
from qsandbox_env.sandbox.proxies import (  # noqa: F401 - presented_class, static_function: old paths
    RemoteFunction,
    is_handle,
    presented_class,
    proxy_for,
    static_function,
)

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

    def _remote(self, number: int, names: tuple[str, ...]) -> Any:
        return proxy_for(self, number, names)

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
    if is_handle(obj):
        return object.__getattribute__(obj, "_number")
    raise TypeError(
        f"the test passed a {type(obj).__qualname__} to the candidate; only data (numbers, "
        "strings, containers, arrays, circuits, quantum_info objects, backends) and objects "
        "the candidate returned can cross to the sandbox"
    )


def _write_back(before: object, after: object) -> None:
    if before is after or is_handle(before):
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
