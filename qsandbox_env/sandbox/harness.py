"""The child harness: runs one program in a freshly forked, already isolated process and reports.

The report is the only way a verdict leaves the child. A pass is written by an audit hook that holds
a per-program token nobody else can reach, and only when the hook sees the harness itself, at the
one line after ``check`` returned, asking for it. Exit status, output, ``SystemExit``, ``atexit``
handlers, signals and exceptions of any class therefore cannot produce a pass. Everything the
program could use to reach the token or rewrite the test (tracing, ``gc`` introspection, ``ctypes``,
code object surgery, new audit hooks) is recorded and turns a pass into ``tampered``.

This module must never let program code run with the token, the report descriptor or the verdict in
a frame the program can inspect; it never trusts an object the program created.
"""

from __future__ import annotations

import builtins
import gc
import json
import linecache
import os
import sys
import traceback
import types

from qsandbox_env.sandbox import guard

PROGRAM_FILENAME = "/program.py"
_FLAG = "qsandbox.flag"
_FINISH = "qsandbox.finish"
# Events that only code trying to get around the test has a reason to raise.
_SUSPECT_PREFIXES = (
    "ctypes.",
    "gc.get_",
    "sys.settrace",
    "sys.setprofile",
    "sys.addaudithook",
    "sys._current_frames",
)
# Attribute writes that rewrite a function or an object's class in place.
_SUSPECT_WRITES = frozenset(
    {"__code__", "__defaults__", "__kwdefaults__", "__class__", "__bases__", "__closure__"}
)

_write = os.write
_getpid = os.getpid
_getframe = sys._getframe
_type = type
_str = str
_tuple = tuple
_issubclass = issubclass
_gc_objects = gc.get_objects


def _install_hook(token: bytes, report_fd: int, ours: tuple) -> None:
    """Install the audit hook that records suspect events and alone can write a pass.

    ``ours`` holds the harness's own functions and code objects: reaching for them (to rebuild the
    harness with other globals, say) is tampering. The hook's state lives only in this closure, no
    frame the program can reach refers to it, and it calls nothing the program can replace.
    """
    flags: list[str] = []
    busy = [False]
    armed = [False]
    frames: list = []
    finish_line = [0]
    owner = _getpid()
    finish_code, run_code = ours[0].__code__, ours[1].__code__
    protected = [*ours, finish_code, run_code]
    pass_line = b"P " + token.hex().encode() + b"\n"

    def is_ours(obj) -> bool:
        for item in protected:
            if obj is item:
                return True
        return any(obj is item for item in frames)

    def hook(event, args):
        if busy[0] or _type(event) is not _str:
            return
        busy[0] = True
        try:
            if event == _FINISH:
                _finish(args)
            elif not armed[0]:
                return
            elif event == _FLAG:
                if _type(args) is _tuple and args and _type(args[0]) is _str:
                    flags.append(args[0])
            elif event.startswith(_SUSPECT_PREFIXES):
                flags.append(f"the program used {event}")
            elif event in ("object.__setattr__", "object.__delattr__"):
                if (
                    len(args) > 1
                    and _type(args[1]) is _str
                    and args[1] in _SUSPECT_WRITES
                    and _by_program(_getframe(1).f_code.co_filename)
                ):
                    flags.append(f"the program rewrote {args[1]} of an object")
            elif event in ("object.__getattr__", "function.__new__") and args:
                if is_ours(args[0]):
                    flags.append("the program reached into the test harness")
            elif event == "compile" and len(args) > 1 and args[1] == PROGRAM_FILENAME:
                flags.append("the program compiled code under the test's file name")
        finally:
            busy[0] = False

    def _finish(args):
        if _type(args) is not _tuple or not args:
            return
        caller = _getframe(2)  # _finish <- hook <- (sys.audit, no frame) <- caller
        if args[0] == "classes" and armed[0] and caller is frames[0] and len(args) == 2:
            _collect_new_classes(args[1])
        elif len(args) != 1:
            return
        elif args[0] == "arm" and not armed[0] and caller.f_code is run_code:
            frame = caller
            while frame is not None:
                frames.append(frame)
                frame = frame.f_back
            armed[0] = True
        elif args[0] == "line" and armed[0] and not finish_line[0] and caller is frames[0]:
            finish_line[0] = caller.f_lineno + 1
        elif args[0] == "pass" and armed[0] and _getpid() == owner:
            parent = caller.f_back
            if not (
                caller.f_code is finish_code
                and parent is frames[0]
                and finish_line[0]
                and parent.f_lineno == finish_line[0]
            ):
                return
            if flags:
                text = " | ".join(flags).replace("\n", " ")
                _write(report_fd, b"T " + text.encode("utf-8", "backslashreplace") + b"\n")
            else:
                _write(report_fd, pass_line)

    sys.addaudithook(hook)


def _collect_new_classes(into: list) -> None:
    """Classes created since the fork: the zygote froze everything older out of gc's generations.

    Runs inside the audit hook so that its own ``gc.get_objects`` is not recorded as the
    program's; it calls no program code (``issubclass`` on metaclasses is resolved in C).
    """
    if _type(into) is not list:
        return
    for generation in (0, 1, 2):
        for obj in _gc_objects(generation=generation):
            if _issubclass(_type(obj), type):
                into.append(obj)


def _by_program(filename: str) -> bool:
    """Whether code from this file is the program's own (or code it generated at run time).

    Libraries legitimately rewrite their own functions (networkx compiles decorators lazily);
    only writes made by the program, directly or through ``unittest.mock``, count.
    """
    return (
        filename == PROGRAM_FILENAME
        or filename.endswith("unittest/mock.py")
        or (filename.startswith("<") and not filename.startswith("<frozen"))
    )


def _report_pass() -> None:
    sys.audit(_FINISH, "pass")


def _send(report_fd: int, outcome: str, detail: str = "", error_type: str = "") -> None:
    """A non-pass report: informational only, so it may use ordinary library code."""
    message = {"outcome": outcome, "detail": detail, "error_type": error_type}
    _write(report_fd, b"R " + json.dumps(message).encode("utf-8", "backslashreplace") + b"\n")


def describe(exc: BaseException, limit: int = 4000) -> str:
    """The program's part of a traceback, trimmed, robust to exceptions that misbehave."""
    try:
        if isinstance(exc, SyntaxError) and exc.filename == PROGRAM_FILENAME:
            text = "".join(traceback.format_exception_only(exc))
        else:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != PROGRAM_FILENAME:
                tb = tb.tb_next
            text = "".join(traceback.format_exception(_type(exc), exc, tb or exc.__traceback__))
    except BaseException:  # noqa: BLE001 - program-defined exceptions may break formatting
        text = f"{_type(exc).__name__} (could not be formatted)"
    return text if len(text) <= limit else "…" + text[-limit:]


def classify(exc: BaseException) -> str:
    if _type(exc) is MemoryError or isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, AssertionError):
        return "failed"
    return "error"


def _flag(message: str) -> None:
    sys.audit(_FLAG, message)


def run(program: dict, token: bytes, report_fd: int, snapshot: guard.Snapshot) -> None:
    """Run ``program`` (source, entry_point, test_line) and report. Called in the child only."""
    _install_hook(token, report_fd, (_report_pass, run))
    del token
    source: str = program["source"]
    entry_point: str = program["entry_point"]
    test_line: int = program["test_line"]
    try:
        code = compile(source, PROGRAM_FILENAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError) as exc:
        _send(report_fd, "syntax", describe(exc), _type(exc).__name__)
        return
    linecache.cache[PROGRAM_FILENAME] = (
        len(source),
        None,
        source.splitlines(True),
        PROGRAM_FILENAME,
    )
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    main.__dict__["__file__"] = PROGRAM_FILENAME
    sys.modules["__main__"] = main
    namespace = main.__dict__
    sys.audit(_FINISH, "arm")
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001 - SystemExit & co. are program outcomes too
        _send(report_fd, classify(exc), describe(exc), _type(exc).__name__)
        return
    check = namespace.get("check")
    candidate = namespace.get(entry_point)
    problem = _check_problem(check, candidate, entry_point, test_line)
    if problem:
        _send(report_fd, "error", problem, "NameError")
        return
    before = guard.binding_snapshot(namespace)
    try:
        check(candidate)
    except BaseException as exc:  # noqa: BLE001
        _send(report_fd, classify(exc), describe(exc), _type(exc).__name__)
        return
    for change in snapshot.changes() + guard.rebound_names(before, namespace):
        _flag(change)
    new_classes: list[type] = []
    sys.audit(_FINISH, "classes", new_classes)
    guard.rigged_comparisons(new_classes, _flag)
    sys.audit(_FINISH, "line")
    _report_pass()


def _check_problem(check, candidate, entry_point: str, test_line: int) -> str:
    """Why the test cannot be run as written, or '' when it can."""
    if candidate is None:
        return f"the program does not define {entry_point!r}"
    code = getattr(check, "__code__", None) if _type(check) is types.FunctionType else None
    if code is None or code.co_filename != PROGRAM_FILENAME or code.co_firstlineno < test_line:
        return "the test's check function is missing or was replaced by the program"
    return ""
