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

import _imp
import _signal
import array
import builtins
import ctypes
import gc
import json
import linecache
import operator
import os
import sys
import sysconfig
import traceback
import types

from qsandbox_env.sandbox import guard

PROGRAM_FILENAME = guard.PROGRAM_FILENAME
_FLAG = "qsandbox.flag"
_FINISH = "qsandbox.finish"
# Raised by the stand-ins for ``_signal.signal`` and ``_imp.create_builtin``; the audit hook
# alone holds the real functions and answers through the list passed last.
_SIGNAL = "qsandbox.signal"
_BUILTIN = "qsandbox.builtin"
# Builtin modules whose fresh copy would carry the real ``signal`` or ``create_builtin``.
_GATED_MODULES = ("_signal", "_imp")


class SignalHandlerRefused(PermissionError, ValueError):
    """A program tried to install a Python signal handler (a ValueError, as when signals are
    unavailable, so that libraries which can do without one carry on)."""


# Events that only code trying to get around the test has a reason to raise. The first group
# could read the token out of this process's memory, so it is refused outright, not just recorded.
_REFUSED_PREFIXES = ("ctypes.", "gc.get_", "sys._current_frames")
# Exit status of a child whose program the audit hook refused (its report line says why).
REFUSED_EXIT = 86
_SUSPECT_PREFIXES = ("sys.settrace", "sys.setprofile", "sys.addaudithook")
# Attributes that hand out a frame, from which ``f_back`` leads to every caller's variables (the
# test's expected value among them). ``sys._getframe`` raises its own event.
_FRAME_ATTRIBUTES = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame"})
# Library functions that take a frame only to read a module name or look names up in it, never
# handing a frame on, whatever globals they run under: (file under a library directory, function
# name). Anything else that takes a frame on the program's behalf counts as the program taking it.
# They are known by file, not by identity, because many load only when a program needs them.
_OWN_FRAME_USERS = (
    ("collections/__init__.py", "namedtuple"),
    ("typing.py", "_caller"),
    ("enum.py", "_create_"),
    ("typing_extensions.py", "_caller"),
    ("typing_extensions.py", "_has_generic_or_protocol_as_origin"),
    ("matplotlib/_api/__init__.py", "warn_external"),
    ("numpy/matrixlib/defmatrix.py", "bmat"),
    ("numpy/lib/_index_tricks_impl.py", "__getitem__"),
    ("scipy/_lib/_bunch.py", "_make_tuple_bunch"),
)
# Attribute writes that rewrite a function or an object's class in place.
_SUSPECT_WRITES = frozenset(
    {"__code__", "__defaults__", "__kwdefaults__", "__class__", "__bases__", "__closure__"}
)


def _install_hook(token: bytes, report_fd: int, ours: tuple, snapshot: guard.Snapshot) -> None:
    """Install the audit hook that records suspect events and alone can write a pass.

    ``ours`` holds the harness's own functions: reaching for them (to rebuild the harness with
    other globals, say) is tampering. The hook's state lives only in this closure, and no frame the
    program can reach refers to it. Every name the hook uses is bound here, before the program
    runs, so that no later change to a module or to ``builtins`` can make the hook call program
    code, which could then read this closure from the hook's frames.
    """
    # Bound now: the hook must never look a name up in a dict the program can write.
    type_, str_, bytes_, tuple_, list_, int_ = type, str, bytes, tuple, list, int
    len_, issubclass_, refused_error, exit_ = len, issubclass, PermissionError, os._exit
    refused_status = REFUSED_EXIT
    getframe, write, getpid, gc_objects = sys._getframe, os.write, os.getpid, gc.get_objects
    program_file, finish_event, flag_event = PROGRAM_FILENAME, _FINISH, _FLAG
    # The real installers leave the module's box for this closure: no frame, cell or dict the
    # program can reach holds them from now on (see _gate_signals).
    install_handler, create_builtin = _REAL.pop(), _REAL.pop()
    signal_event, builtin_event, gated_modules = _SIGNAL, _BUILTIN, _GATED_MODULES
    callable_, namespace_ = callable, types.SimpleNamespace
    default_handler = _signal.default_int_handler
    refused, suspect, rewrites = _REFUSED_PREFIXES, _SUSPECT_PREFIXES, _SUSPECT_WRITES
    # The sandbox's own machinery (this module, the guard and its snapshot, builtins): if any of
    # these dicts is written, the tamper checks that ran in Python cannot be trusted.
    memory = snapshot.memory
    slots = [
        guard.version_slot(d)
        for d in (
            globals(),
            vars(guard),
            guard.underlying_dict(vars(guard.Snapshot)),
            vars(snapshot),
            vars(builtins),
            vars(types),
            vars(gc),
            vars(array),
            vars(ctypes),
            *_runtime_globals(),
        )
    ]
    machinery = [(slot, memory[slot]) for slot in slots] if memory is not None else []
    own_frame_users = dict(_OWN_FRAME_FILES)  # a copy: the module's dict is the program's too
    frame_attributes, id_ = _FRAME_ATTRIBUTES, id
    reach = "its callers' frames hold the test's variables"
    logging_frames = _logging_frame_user()
    traceback_frames = _traceback_frame_users()
    # Slots of the dicts whose functions the logging and traceback allowances rely on.
    module_slots = [
        (slot, memory[slot])
        for slot in (_version_slot_of(logging_frames[2]), _version_slot_of(traceback_frames[2]))
        if slot is not None and memory is not None
    ]

    flags: list[str] = []
    test_codes: list[int] = []  # ids of the test's code objects, given before the program runs
    busy = [False]
    armed = [False]
    frames: list = []
    finish_line = [0]
    owner = getpid()
    finish_code, run_code = ours[0].__code__, ours[1].__code__
    protected = [*ours, finish_code, run_code]
    pass_line = b"P " + token.hex().encode() + b"\n"
    # Every event a branch of the hook acts on. Programs raise thousands of others (deepcopy
    # alone raises ``builtins.id`` per object), which must cost one set look-up, not a dozen
    # comparisons: the hook runs on the program's critical path.
    watched = frozenset(
        {
            finish_event,
            signal_event,
            builtin_event,
            flag_event,
            "open",
            "os.symlink",
            "object.__setattr__",
            "object.__delattr__",
            "sys._getframe",
            "object.__getattr__",
            "function.__new__",
            "compile",
            "code.__new__",
        }
    )
    watched_prefixes = (*refused, *suspect)

    def is_ours(obj) -> bool:
        # Plain loops, not any(): a builtin looked up now could be the program's replacement.
        for item in protected:
            if obj is item:
                return True
        for item in frames:  # noqa: SIM110
            if obj is item:
                return True
        return False

    def by_program(filename) -> bool:
        # guard.is_program_file's rule, copied here because the hook may call nothing the program
        # can rewrite, plus unittest.mock. Libraries legitimately rewrite their own functions
        # (networkx compiles decorators lazily); only writes made by the program count.
        if type_(filename) is not str_:
            return True
        return (
            filename == program_file
            or filename.endswith("unittest/mock.py")
            or (filename.startswith("<") and not filename.startswith("<frozen"))
        )

    def reaches_memory(event, args) -> bool:
        # An open (or a symlink made to open later) that leads to a process's ``mem`` file.
        if not args:
            return False
        path = args[0]
        if type_(path) is int_ or path is None:
            return False  # an already open descriptor
        if type_(path) is bytes_:
            path = path.decode("utf-8", "surrogateescape")
        elif type_(path) is not str_:
            return True  # a str subclass could answer anything to the checks below
        if event == "os.symlink":
            return "proc" in path or "mem" in path
        return path.rstrip("/").rpartition("/")[2] == "mem"

    def collect_new_classes(into) -> None:
        # Classes created since the fork: the zygote froze everything older out of gc's
        # generations. issubclass on a metaclass is resolved in C, without program code.
        if type_(into) is not list_:
            return
        for generation in (0, 1, 2):
            for obj in gc_objects(generation=generation):
                if issubclass_(type_(obj), type_):
                    into.append(obj)

    def own_use(frame) -> bool:
        # A library function that takes a frame for itself. The listed ones are safe under any
        # globals; logging and traceback only with their own, unchanged module dicts.
        code, frame_globals = frame.f_code, frame.f_globals
        filename, function = code.co_filename, code.co_name
        # Exact str only: a str subclass's own __hash__ or __eq__ would run here.
        if (
            type_(filename) is str_
            and type_(function) is str_
            and own_frame_users.get(filename) == function
        ):
            return True
        if memory is not None:
            for slot, tag in module_slots:
                if memory[slot] != tag:
                    return False  # logging's or traceback's helpers may have been replaced
        caller = frame.f_back
        if code is logging_frames[0] and caller is not None:
            # logging's currentframe(), called by Logger.findCaller itself, which keeps the frame.
            return caller.f_code is logging_frames[1] and caller.f_globals is logging_frames[2]
        if frame_globals is traceback_frames[2] and caller is not None:
            # A traceback walker feeding StackSummary, which keeps only names and line numbers
            # unless asked to capture locals.
            for _ in (0, 1):
                if caller is None or caller.f_globals is not traceback_frames[2]:
                    return False
                if caller.f_code is traceback_frames[1]:
                    return caller.f_locals.get("capture_locals") is False
                caller = caller.f_back
        return False

    def where(frame) -> str:
        code = frame.f_code
        filename, function = code.co_filename, code.co_name
        if type_(filename) is not str_ or type_(function) is not str_:
            return "?"
        return filename.rpartition("/")[2] + ":" + function

    def for_program(frame) -> bool:
        # Whether the frame that asked for a frame acts for the program: the nearest frame below
        # it that the program or the test wrote is the program's, not the test's or the harness's.
        first = frame
        while frame is not None:
            if is_ours(frame):
                return False
            code = frame.f_code
            filename = code.co_filename
            if type_(filename) is not str_:
                return True  # only the program makes code with a str subclass for a file name
            if by_program(filename) and not filename.endswith("unittest/mock.py"):
                return id_(code) not in test_codes
            if frame is first and own_use(frame):
                return False
            frame = frame.f_back
        return False

    def machinery_intact() -> bool:
        for slot, tag in machinery:  # noqa: SIM110
            if memory[slot] != tag:
                return False
        return True

    def answered(call, argument, *more):
        # (True, result) or (False, exception class, message): the stand-in raises, so no
        # traceback ever holds this closure's frames.
        try:
            return (True, call(argument, *more))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller as it was
            return (False, type_(exc), str_(exc.args[0]) if exc.args else "")

    def install(args) -> None:
        # A Python handler is called with the running frame and no audit event, so one the
        # program wrote is refused, not merely recorded: it could fire inside this very hook.
        # Refused, it never ran, so a pass after it is not tampering (asyncio.run tries one,
        # and carries on when told no with a ValueError).
        if type_(args) is not tuple_ or len_(args) != 3 or type_(args[2]) is not list_:
            return
        number, handler, answer = args
        if type_(number) is not int_ or not (callable_(handler) or type_(handler) is int_):
            answer.append((False, TypeError, "qsandbox: expected an int signal and handler"))
        elif callable_(handler) and handler is not default_handler and for_program(getframe(2)):
            refusal = "qsandbox: signal handlers written by the program are not allowed here"
            answer.append((False, SignalHandlerRefused, refusal))
        else:
            answer.append(answered(install_handler, number, handler))

    def create(args) -> None:
        # A second _signal (or _imp) module would carry the real installer, unwatched. Only an
        # exact str name reaches the real function: a program's spec could run code in here.
        if type_(args) is not tuple_ or len_(args) != 3 or type_(args[2]) is not list_:
            return
        name, answer = args[1], args[2]
        if type_(name) is not str_ or name in gated_modules:
            flags.append("the program made a second copy of a signal or import module")
            answer.append((False, refused_error, "qsandbox: that module cannot be made again"))
        else:
            answer.append(answered(create_builtin, namespace_(name=name)))

    def hook(event, args):
        if busy[0] or type_(event) is not str_:
            return
        if event not in watched and not event.startswith(watched_prefixes):
            return  # an exact str: hashing and comparing it runs no program code
        busy[0] = True
        try:
            if event == finish_event:
                finish(args)
            elif event == signal_event:
                install(args)
            elif event == builtin_event:
                create(args)
            elif not armed[0]:
                return
            elif event == flag_event:
                if type_(args) is tuple_ and args and type_(args[0]) is str_:
                    flags.append(args[0])
            elif event.startswith(refused):
                refuse(f"the program used {event}, which the sandbox refuses")
            elif event == "open" or event == "os.symlink":
                if reaches_memory(event, args):
                    refuse("the program tried to read its own memory")
            elif event.startswith(suspect):
                flags.append(f"the program used {event}")
            elif event == "object.__setattr__" or event == "object.__delattr__":
                if (
                    len_(args) > 1
                    and type_(args[1]) is str_
                    and args[1] in rewrites
                    and by_program(getframe(1).f_code.co_filename)
                ):
                    flags.append(f"the program rewrote {args[1]} of an object")
            elif event == "sys._getframe":
                taker = getframe(1)
                if for_program(taker):
                    flags.append(f"the program took a frame ({event} in {where(taker)}): {reach}")
            elif (event == "object.__getattr__" or event == "function.__new__") and args:
                if is_ours(args[0]):
                    flags.append("the program reached into the test harness")
                elif (
                    event == "object.__getattr__"
                    and len_(args) > 1
                    and type_(args[1]) is str_
                    and args[1] in frame_attributes
                    and for_program(getframe(1))
                ):
                    taker = getframe(1)
                    flags.append(f"the program took a frame ({args[1]} in {where(taker)}): {reach}")
            elif (
                event == "compile"
                and len_(args) > 1
                and type_(args[1]) is str_
                and args[1] == program_file
            ):
                flags.append("the program compiled code under the test's file name")
            elif (
                (event == "compile" or event == "code.__new__")
                and len_(args) > 1
                and type_(args[1]) is str_
                and args[1] in own_frame_users
                and by_program(getframe(1).f_code.co_filename)
            ):
                flags.append(f"the program compiled code under a library's file name ({args[1]})")
        except BaseException:  # noqa: BLE001 - see refuse(): nothing may leave this frame
            refuse("the sandbox's audit hook failed while the program ran", tampering=False)
        finally:
            busy[0] = False

    def refuse(reason, tampering=True) -> None:
        # An exception raised here would carry a traceback whose frames hold this closure, the
        # pass line among it: a program catching it could read the line and write it out. So a
        # refused operation ends the process instead, with a line that can only make its verdict
        # worse: `tampered` for a refusal, `error` when the hook itself failed (a recursion limit
        # reached inside it, say).
        if tampering:
            line = b"T " + reason.encode("utf-8", "backslashreplace")
        else:
            line = b'R {"outcome": "error", "detail": "' + reason.encode() + b'", "error_type": ""}'
        write(report_fd, line + b"\n")
        exit_(refused_status)

    def finish(args):
        # Only exact str and list arguments are looked at: comparing anything else could run the
        # program's own __eq__ while this closure's frames are on the stack.
        if type_(args) is not tuple_ or not args or type_(args[0]) is not str_:
            return
        caller = getframe(2)  # finish <- hook <- (sys.audit, no frame) <- caller
        step = args[0]
        if step == "classes" and armed[0] and caller is frames[0] and len_(args) == 2:
            collect_new_classes(args[1])
        elif step == "tests" and not armed[0] and caller.f_code is run_code and len_(args) == 2:
            if type_(args[1]) is tuple_:
                for code in args[1]:
                    test_codes.append(id_(code))
        elif len_(args) != 1:
            return
        elif step == "arm" and not armed[0] and caller.f_code is run_code:
            frame: types.FrameType | None = caller
            while frame is not None:
                frames.append(frame)
                frame = frame.f_back
            armed[0] = True
        elif step == "line" and armed[0] and not finish_line[0] and caller is frames[0]:
            finish_line[0] = caller.f_lineno + 1
        elif step == "pass" and armed[0] and getpid() == owner:
            parent = caller.f_back
            if not (
                caller.f_code is finish_code
                and parent is frames[0]
                and finish_line[0]
                and parent.f_lineno == finish_line[0]
            ):
                return
            if not machinery_intact():
                flags.append("the program changed the sandbox's own modules")
            if flags:
                text = " | ".join(flags).replace("\n", " ")
                write(report_fd, b"T " + text.encode("utf-8", "backslashreplace") + b"\n")
            else:
                write(report_fd, pass_line)

    sys.addaudithook(hook)


# The real ``_imp.create_builtin`` and ``_signal.signal``, until the next child's audit hook
# takes them (popped in this order); the zygote alone uses them through the stand-ins.
_REAL: list = [_imp.create_builtin, _signal.signal]
_index, _exact_int = operator.index, int.__index__


def _signal_gate(signalnum, handler, /):
    """Stands in for ``_signal.signal`` (and so for ``signal.signal``); the audit hook installs.

    The number (and a non-callable handler) become exact ints here, in the caller's frame, so
    that the hook never runs a program's ``__index__`` or ``__eq__`` on its own stack.
    """
    number = _exact_int(_index(signalnum))
    if not callable(handler):
        handler = _exact_int(_index(handler))
    answer: list = []
    sys.audit(_SIGNAL, number, handler, answer)
    return _answer(answer) if answer else _REAL[1](number, handler)


def _builtin_gate(spec, /):
    """Stands in for ``_imp.create_builtin``; the audit hook creates the module."""
    name = spec.name
    if not isinstance(name, str):
        raise TypeError(f"expected the spec's name to be a str, got {type(name).__name__}")
    answer: list = []
    sys.audit(_BUILTIN, spec, str.__str__(name), answer)
    return _answer(answer) if answer else _REAL[0](spec)


def _answer(answer: list):
    """The hook's answer, or its refusal raised here, in the caller's frame, never in the hook's."""
    if answer[0][0]:
        return answer[0][1]
    raise answer[0][1](answer[0][2])


def _gate_signals() -> None:
    """Route every handler installation and builtin module creation through the audit hook.

    Done once in the zygote, before the guard's snapshot, so that rebinding either entry (or
    ``signal.signal``) afterwards is a change the snapshot reports.
    """
    _signal.signal = _signal_gate
    _imp.create_builtin = _builtin_gate


_gate_signals()


def _own_frame_users() -> dict[str, str]:
    """``{full file name: function name}`` for ``_OWN_FRAME_USERS`` under each library directory.

    Programs cannot write there, and code they compile under one of these names is flagged.
    """
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "purelib", "platlib") if key in paths}
    return {f"{root}/{file}": name for root in roots for file, name in _OWN_FRAME_USERS}


_OWN_FRAME_FILES = _own_frame_users()


def _logging_frame_user() -> tuple[object, object, dict | None]:
    """logging's ``currentframe`` code, ``Logger.findCaller``'s code and logging's globals."""
    module = sys.modules.get("logging")
    if not isinstance(module, types.ModuleType):
        return (None, None, None)
    current = getattr(getattr(module, "currentframe", None), "__code__", None)
    find_caller = getattr(getattr(module.Logger, "findCaller", None), "__code__", None)
    return (current, find_caller, vars(module))


def _traceback_frame_users() -> tuple[None, object, dict | None]:
    """``StackSummary._extract_from_extended_frame_gen``'s code and traceback's globals."""
    module = sys.modules.get("traceback")
    extract = getattr(module, "StackSummary", None)
    extract = getattr(extract, "_extract_from_extended_frame_gen", None)
    code = getattr(getattr(extract, "__func__", extract), "__code__", None)
    return (None, code, vars(module) if isinstance(module, types.ModuleType) else None)


def _version_slot_of(d: dict | None) -> int | None:
    return None if d is None else guard.version_slot(d)


def _runtime_globals() -> list[dict]:
    """The offline Runtime's module globals (its account), where the zygote installed it."""
    module = sys.modules.get("qsandbox_env.sandbox.offline_runtime")
    return [vars(module)] if isinstance(module, types.ModuleType) else []


# The interpreter's own output streams (programs may rebind sys.stdout; these stay ours).
_STREAMS = (sys.__stdout__, sys.__stderr__)


def _flush_output() -> None:
    """Push buffered program output into the pipe before the verdict line, which ends it."""
    for stream in _STREAMS:
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or broken stream loses only output
            pass


def _report_pass() -> None:
    sys.audit(_FINISH, "pass")


def _send(report_fd: int, outcome: str, detail: str = "", error_type: str = "") -> None:
    """A non-pass report: informational only, so it may use ordinary library code."""
    _flush_output()
    message = {"outcome": outcome, "detail": detail, "error_type": error_type}
    os.write(report_fd, b"R " + json.dumps(message).encode("utf-8", "backslashreplace") + b"\n")


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


# Exception classes that mean "a primitive rejected a circuit that is not ISA for its device";
# set by the zygote when it installs the offline runtime (empty where there is none).
ISA_ERRORS: tuple[type, ...] = ()


def classify(exc: BaseException) -> str:
    if type(exc) is MemoryError or isinstance(exc, MemoryError):
        return "memory"
    if ISA_ERRORS and _caused_by(exc, ISA_ERRORS):
        return "not_isa"
    if isinstance(exc, AssertionError):
        return "failed"
    return "error"


def _caused_by(exc: BaseException, kinds: tuple[type, ...], depth: int = 8) -> bool:
    """Whether ``exc`` or an exception it was raised from or during is one of ``kinds``.

    A test may wrap the runtime's rejection (``raise AssertionError(...) from exc``). Only the
    real class of each exception is looked at, never a property the program could define.
    """
    seen: object = exc
    for _ in range(depth):
        if not issubclass(type(seen), BaseException):
            return False
        if issubclass(type(seen), kinds):
            return True
        cause = _CAUSE.__get__(seen)
        seen = cause if cause is not None else _CONTEXT.__get__(seen)
    return False


# BaseException's own slots: a program's exception class cannot answer for them.
_CAUSE = BaseException.__dict__["__cause__"]
_CONTEXT = BaseException.__dict__["__context__"]


def _flag(message: str) -> None:
    sys.audit(_FLAG, message)


def run(program: dict, box: list[bytes], report_fd: int, snapshot: guard.Snapshot) -> None:
    """Run ``program`` (source, entry_point, test_line) and report. Called in the child only.

    The token arrives in ``box`` and leaves it at once for the audit hook's closure, so that no
    frame the program can walk up to (this one, the zygote's) still holds it.
    """
    _install_hook(box.pop(), report_fd, (_report_pass, run), snapshot)
    source: str = program["source"]
    entry_point: str = program["entry_point"]
    test_line: int = program["test_line"]
    try:
        code = compile(source, PROGRAM_FILENAME, "exec", dont_inherit=True)
    except (SyntaxError, ValueError, UnicodeError, RecursionError, MemoryError) as exc:
        _send(report_fd, "syntax", describe(exc), type(exc).__name__)
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
    sys.audit(_FINISH, "tests", _test_codes(code, test_line))
    sys.audit(_FINISH, "arm")
    try:
        exec(code, namespace)
    except BaseException as exc:  # noqa: BLE001 - SystemExit & co. are program outcomes too
        _send(report_fd, classify(exc), describe(exc), type(exc).__name__)
        return
    check = namespace.get("check")
    candidate = namespace.get(entry_point)
    problem = _check_problem(check, candidate, entry_point, test_line)
    if problem:
        _send(report_fd, "error", problem, "NameError")
        return
    before = guard.binding_snapshot(namespace)
    shadowed = guard.shadowed_imports(source, test_line, namespace)
    assert check is not None  # _check_problem made sure
    try:
        check(candidate)
    except BaseException as exc:  # noqa: BLE001
        _send(report_fd, classify(exc), describe(exc), type(exc).__name__)
        return
    for change in snapshot.changes() + guard.rebound_names(before, namespace) + shadowed:
        _flag(change)
    new_classes: list[type] = []
    sys.audit(_FINISH, "classes", new_classes)
    for finding in guard.rigged_overrides(new_classes, guard.test_attributes(source, test_line)):
        _flag(finding)
    guard.rigged_comparisons(new_classes, _flag)
    _flush_output()
    sys.audit(_FINISH, "line")
    _report_pass()


def _test_codes(code: types.CodeType, test_line: int) -> tuple[types.CodeType, ...]:
    """The code objects of the test's functions (those that begin at or after ``test_line``)."""
    found = []
    stack = [code]
    while stack:
        for const in stack.pop().co_consts:
            if type(const) is types.CodeType:
                if const.co_firstlineno >= test_line:
                    found.append(const)
                stack.append(const)
    return tuple(found)


def _check_problem(check, candidate, entry_point: str, test_line: int) -> str:
    """Why the test cannot be run as written, or '' when it can."""
    if candidate is None:
        return f"the program does not define {entry_point!r}"
    code = getattr(check, "__code__", None) if type(check) is types.FunctionType else None
    if code is None or code.co_filename != PROGRAM_FILENAME or code.co_firstlineno < test_line:
        return "the test's check function is missing or was replaced by the program"
    return ""
