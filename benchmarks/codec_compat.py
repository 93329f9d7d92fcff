"""Which canonical solutions still pass when every value crosses the judge/child codec.

An in-process simulation of the judge/child boundary, with no sandbox (canonical solutions are
trusted): for each task the candidate's code (``prompt + canonical_solution``, or the canonical
program) runs in one namespace, the task's test in another (which first runs the prompt with a
stub body, for its imports and helpers), and the test's ``candidate`` is a wrapper that sends every
argument through `qsandbox_env.sandbox.codec` (``decode(encode(...))``), writes mutated arguments
back with `write_back`, and returns the result through the codec too. Values that are not data
become handles: a forwarding proxy (`Proxy`) whose attribute reads, calls and common operators
call back into the real object on its own side, with arguments and results crossing the codec the
same way. Exceptions cross as an exception of the same built-in class (or ``QiskitError``), else
as ``RuntimeError``.

Three ways are measured per task:

- ``baseline``: today's program, ``prompt + solution + test`` in one namespace, ``check(entry)``;
- ``codec``: the boundary above (only for tasks that pass at baseline);
- ``split``: two namespaces but direct calls, no codec (only for tasks that fail ``codec``): tells
  a failure of the separation from a failure of the codec.

Run from the repository root:

    PYTHONPATH=. python benchmarks/codec_compat.py                       # all three sets
    PYTHONPATH=. python benchmarks/codec_compat.py --sets bundled --json compat.json

Qiskit-HumanEval is read from ``--humaneval`` (default: the shared data set beside the checkout);
the set is skipped with a message when the file is missing.
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import io
import itertools
import json
import operator
import signal
import sys
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from qsandbox_env.program import strip_check_calls
from qsandbox_env.sandbox.codec import decode, encode, handle_class, write_back

DEFAULT_HUMANEVAL = (
    Path(__file__).resolve().parents[2] / "shared/datasets/qiskit_humaneval/"
    "dataset_qiskit_test_human_eval.json"
)

# -- the simulated boundary ---------------------------------------------------------------------


class _Registry:
    """Handle ids of both sides: id -> (home side, the real object)."""

    def __init__(self) -> None:
        self.objects: dict[int, tuple[str, Any]] = {}
        self.ids: dict[tuple[str, int], int] = {}
        self.counter = itertools.count(1)
        self.made: Counter[str] = Counter()  # type names of handles created, "child:" / "judge:"

    def reset(self) -> None:
        self.objects.clear()
        self.ids.clear()
        self.made.clear()


REGISTRY = _Registry()
CLAIM_CLASSES = True  # proxies present the class of `handle_class` (--no-claim turns it off)
_MUTABLE = (list, dict, set, bytearray)


def _is_mutable(value: object) -> bool:
    if isinstance(value, _MUTABLE):
        return True
    module = type(value).__module__ or ""
    return type(value).__name__ in ("ndarray", "QuantumCircuit") and module.split(".")[0] in (
        "numpy",
        "qiskit",
    )


def cross(value: object, src: str, dst: str) -> object:
    """``value`` as the ``dst`` side sees it after crossing the codec from ``src``."""

    def to_handle(obj: object) -> int:
        if isinstance(type(obj), _ClaimMeta):
            return object.__getattribute__(obj, "_qs_hid")
        key = (src, id(obj))
        hid = REGISTRY.ids.get(key)
        if hid is None:
            hid = next(REGISTRY.counter)
            REGISTRY.ids[key] = hid
            REGISTRY.objects[hid] = (src, obj)
            REGISTRY.made[f"{src}:{type(obj).__module__}.{type(obj).__qualname__}"] += 1
        return hid

    def from_handle(hid: int, names: tuple) -> object:
        home, obj = REGISTRY.objects[hid]
        if home == dst:
            return obj
        return Proxy(hid, names, home)

    return decode(encode(value, to_handle=to_handle), from_handle=from_handle)


def _exception_across(exc: BaseException, src: str, dst: str) -> BaseException:
    """An exception of the same built-in class (or QiskitError), with the message as text."""
    from qiskit.exceptions import QiskitError

    message = str(exc)
    for cls in type(exc).__mro__:
        if cls is QiskitError:
            return QiskitError(message)
        if getattr(builtins, cls.__name__, None) is cls and issubclass(cls, Exception):
            try:
                return cls(message)
            except Exception:  # noqa: BLE001 - a built-in needing other arguments
                continue
    return RuntimeError(f"{type(exc).__name__}: {message}")


def call_across(fn: Any, args: tuple, kwargs: dict, src: str, dst: str) -> object:
    """Call ``fn`` (on ``dst``) from ``src``: arguments go over, mutations and the result back."""
    sent_args = cross(args, src, dst)
    sent_kwargs = cross(kwargs, src, dst)
    try:
        result = fn(*sent_args, **sent_kwargs)
    except Exception as exc:  # noqa: BLE001 - the callee's error crosses as an error
        raise _exception_across(exc, dst, src) from None
    for original, sent in itertools.chain(
        zip(args, sent_args, strict=True), ((kwargs[k], sent_kwargs[k]) for k in kwargs)
    ):
        if _is_mutable(original) and not isinstance(type(original), _ClaimMeta):
            write_back(original, cross(sent, dst, src))
    return cross(result, dst, src)


_OPERATIONS = {
    "__call__": lambda o, *a, **k: o(*a, **k),
    "__len__": len,
    "__bool__": bool,
    "__repr__": repr,
    "__str__": str,
    "__float__": float,
    "__int__": int,
    "__complex__": complex,
    "__radd__": lambda o, x: x + o,
    "__rmul__": lambda o, x: x * o,
    "__enter__": lambda o: o.__enter__(),
    "__exit__": lambda o, *a: o.__exit__(*a),
}
for _name in (
    "__getitem__",
    "__setitem__",
    "__contains__",
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__index__",
    "__add__",
    "__sub__",
    "__mul__",
    "__matmul__",
    "__truediv__",
    "__neg__",
    "__abs__",
):
    _OPERATIONS[_name] = getattr(operator, _name)


def _forward(name: str):
    operation = _OPERATIONS[name]

    def method(self, *args, **kwargs):
        hid = object.__getattribute__(self, "_qs_hid")
        home, obj = REGISTRY.objects[hid]
        here = "judge" if home == "child" else "child"
        return call_across(lambda *a, **k: operation(obj, *a, **k), args, kwargs, here, home)

    method.__name__ = name
    return method


class _ClaimMeta(type):
    """The metaclass of a proxy that stands for a class: ``type(proxy) == Figure`` holds too."""

    def __eq__(cls, other: object) -> bool:
        return cls is other or other is cls.__dict__.get("_qs_claim")

    def __hash__(cls) -> int:
        return type.__hash__(cls)


class Proxy(metaclass=_ClaimMeta):
    """A stand-in for an object on the other side; every use calls back into it.

    A proxy that claims a class (`handle_class`) has the special methods of that class only (a
    pass must not look iterable); any other proxy has all of `_OPERATIONS`.
    """

    __slots__ = ("_qs_hid", "_qs_home", "_qs_names")

    def __new__(cls, hid: int, names: tuple, home: str) -> Proxy:
        claim = handle_class(names) if CLAIM_CLASSES and cls is Proxy else None
        cls = _claiming_proxy(claim) if claim is not None else _GenericProxy
        return object.__new__(cls)

    def __init__(self, hid: int, names: tuple, home: str) -> None:
        object.__setattr__(self, "_qs_hid", hid)
        object.__setattr__(self, "_qs_names", names)
        object.__setattr__(self, "_qs_home", home)

    def __getattr__(self, name: str) -> object:
        home, obj = REGISTRY.objects[object.__getattribute__(self, "_qs_hid")]
        here = "judge" if home == "child" else "child"
        try:
            value = getattr(obj, name)
        except Exception as exc:  # noqa: BLE001
            raise _exception_across(exc, home, here) from None
        return cross(value, home, here)

    def __setattr__(self, name: str, value: object) -> None:
        home, obj = REGISTRY.objects[object.__getattribute__(self, "_qs_hid")]
        here = "judge" if home == "child" else "child"
        setattr(obj, name, cross(value, here, home))

    def __hash__(self) -> int:
        return object.__getattribute__(self, "_qs_hid")


def _proxy_iter(self):
    home, obj = REGISTRY.objects[object.__getattribute__(self, "_qs_hid")]
    here = "judge" if home == "child" else "child"
    return iter(cross(list(obj), home, here))


class _GenericProxy(Proxy):
    __slots__ = ()
    __iter__ = _proxy_iter


for _name in _OPERATIONS:
    setattr(_GenericProxy, _name, _forward(_name))

_CLAIMING: dict[type, type] = {}


def _claiming_proxy(cls: type) -> type:
    """A Proxy subclass whose instances present ``cls`` to isinstance() and type() ==."""
    proxy = _CLAIMING.get(cls)
    if proxy is None:
        proxy = _ClaimMeta(
            cls.__name__,
            (Proxy,),
            {
                "__slots__": (),
                "_qs_claim": cls,
                "__class__": property(lambda self: cls),
                **{
                    name: _forward(name)
                    for name in _OPERATIONS
                    if getattr(cls, name, None) is not getattr(object, name, None)
                },
                **({"__iter__": _proxy_iter} if hasattr(cls, "__iter__") else {}),
            },
        )
        _CLAIMING[cls] = proxy
    return proxy


class BoundaryCandidate:
    """What the test gets as ``candidate``: ``fn`` (in the child) called across the codec.

    As the judge's ``RemoteFunction`` does, ``__code__`` and ``__globals__`` come from the
    candidate's program text compiled in the judge and never run (`static_function`).
    """

    def __init__(self, fn: Any, source: str) -> None:
        REGISTRY.objects[0] = ("child", fn)
        self._fn = fn
        self._source = source
        self.__name__ = getattr(fn, "__name__", "candidate")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        return call_across(self._fn, args, kwargs, "judge", "child")

    def _static(self) -> Any:
        try:
            from qsandbox_env.sandbox.judge import static_function
        except ImportError:  # the judge is not there: read the function itself
            return self._fn
        static = static_function(self._source, self.__name__)
        if static is None:
            raise AttributeError(f"the program's text defines no function {self.__name__!r}")
        return static

    @property
    def __code__(self) -> Any:
        return self._static().__code__

    @property
    def __globals__(self) -> dict:
        return self._static().__globals__


# -- running tasks ------------------------------------------------------------------------------


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _exec(source: str, namespace: dict, name: str) -> None:
    exec(compile(source, name, "exec"), namespace)


def _candidate_source(task: Any) -> str:
    return (
        task.canonical_solution
        if task.format == "program"
        else task.prompt + task.canonical_solution
    )


def _test_prelude(task: Any) -> str:
    """What the judge runs before the test: the prompt with a stub body (its imports, helpers)."""
    if task.format == "program":
        return ""
    prompt = task.prompt if task.prompt.endswith("\n") else task.prompt + "\n"
    return prompt + "    ...\n"


def run_baseline(task: Any) -> None:
    namespace: dict = {"__name__": "__main__"}
    source = _candidate_source(task)
    source = source if source.endswith("\n") else source + "\n"
    _exec(source + strip_check_calls(task.test), namespace, "<program>")
    namespace["check"](namespace[task.entry_point])


def run_split(task: Any, through_codec: bool) -> None:
    child: dict = {"__name__": "__main__"}
    _exec(_candidate_source(task), child, "<candidate>")
    fn = child[task.entry_point]
    judge: dict = {"__name__": "__main__"}
    prelude = _test_prelude(task)
    if prelude:
        try:
            _exec(prelude, judge, "<prompt>")
        except SyntaxError:
            _exec(_import_lines(task.prompt), judge, "<prompt imports>")
    _exec(strip_check_calls(task.test), judge, "<test>")
    candidate = BoundaryCandidate(fn, _candidate_source(task)) if through_codec else fn
    judge[task.entry_point] = candidate
    judge["check"](candidate)


def _import_lines(prompt: str) -> str:
    return "".join(
        line for line in prompt.splitlines(keepends=True) if line.startswith(("import ", "from "))
    )


def attempt(fn: Any, *args: Any, timeout: int) -> tuple[bool, str, float]:
    """Run ``fn(*args)`` with a time limit: (passed, reason when not, seconds)."""
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            fn(*args)
        return True, "", time.perf_counter() - start
    except _Timeout:
        return False, f"timeout after {timeout} s", time.perf_counter() - start
    except BaseException as exc:  # noqa: BLE001 - any failure of the task is its result
        tb = traceback.extract_tb(exc.__traceback__)
        where = next(
            (
                f"{f.filename}:{f.lineno} {f.line}"
                for f in reversed(tb)
                if f.filename.startswith("<")
            ),
            "",
        )
        return (
            False,
            f"{type(exc).__name__}: {str(exc)[:300]} [{where[:200]}]",
            (time.perf_counter() - start),
        )
    finally:
        signal.alarm(0)


def measure(name: str, tasks: Any, timeout: int, verbose: bool) -> dict:
    rows = []
    for task in tasks.values():
        REGISTRY.reset()
        ok, why, seconds = attempt(run_baseline, task, timeout=timeout)
        row: dict = {"task_id": task.task_id, "baseline": ok, "baseline_reason": why}
        if ok:
            REGISTRY.reset()
            ok2, why2, seconds2 = attempt(run_split, task, True, timeout=timeout)
            row.update(codec=ok2, codec_reason=why2, handles=dict(REGISTRY.made))
            row["seconds"] = round(seconds + seconds2, 3)
            if not ok2:
                ok3, why3, _ = attempt(run_split, task, False, timeout=timeout)
                row.update(split=ok3, split_reason=why3)
        rows.append(row)
        if verbose:
            state = "base-fail" if not ok else ("pass" if row["codec"] else "CODEC-FAIL")
            extra = row.get("codec_reason") or row.get("baseline_reason") or ""
            print(f"  {task.task_id:40} {state:10} {extra[:150]}", file=sys.stderr)
    baseline = sum(r["baseline"] for r in rows)
    codec = sum(bool(r.get("codec")) for r in rows)
    with_handles = [r for r in rows if r.get("handles")]
    return {
        "set": name,
        "total": len(rows),
        "baseline": baseline,
        "codec": codec,
        "with_handles": len(with_handles),
        "with_handles_passing": sum(bool(r.get("codec")) for r in with_handles),
        "handle_types": dict(
            sum((Counter(r["handles"]) for r in with_handles), Counter()).most_common()
        ),
        "boundary_failures": [
            {
                "task_id": r["task_id"],
                "reason": r["codec_reason"],
                "passes_split_without_codec": r.get("split"),
            }
            for r in rows
            if r["baseline"] and not r["codec"]
        ],
        "baseline_failures": [
            {"task_id": r["task_id"], "reason": r["baseline_reason"]}
            for r in rows
            if not r["baseline"]
        ],
        "rows": rows,
    }


def load_set(name: str, args: argparse.Namespace) -> Any:
    from qsandbox_env import load_tasks

    if name == "bundled":
        return load_tasks("bundled")
    if name == "procedural":
        return load_tasks("procedural", n=args.procedural_n, seed=args.seed)
    if name == "humaneval":
        if not Path(args.humaneval).is_file():
            print(f"skipping humaneval: {args.humaneval} not found", file=sys.stderr)
            return None
        return load_tasks("qiskit-humaneval", path=str(args.humaneval))
    raise ValueError(f"unknown set {name!r}; choose from bundled, procedural, humaneval")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="bundled,procedural,humaneval")
    parser.add_argument("--procedural-n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--humaneval", default=str(DEFAULT_HUMANEVAL))
    parser.add_argument("--timeout", type=int, default=60, help="seconds per task and way")
    parser.add_argument("--only", default="", help="comma-separated task ids to run")
    parser.add_argument("--json", default="", help="write the full results here")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--no-claim", action="store_true", help="proxies do not present their handle's class"
    )
    args = parser.parse_args(argv)
    global CLAIM_CLASSES
    CLAIM_CLASSES = not args.no_claim
    reports = []
    for name in args.sets.split(","):
        tasks = load_set(name.strip(), args)
        if tasks is None:
            continue
        if args.only:
            from qsandbox_env.tasks import TaskSet

            wanted = set(args.only.split(","))
            tasks = TaskSet([t for t in tasks.values() if t.task_id in wanted], source="only")
        start = time.perf_counter()
        report = measure(name, tasks, args.timeout, args.verbose)
        report["wall_s"] = round(time.perf_counter() - start, 1)
        reports.append(report)
        print(
            f"{name}: {report['total']} tasks, baseline {report['baseline']}, through the codec "
            f"{report['codec']}; with handles {report['with_handles']} "
            f"({report['with_handles_passing']} pass); {report['wall_s']} s"
        )
        for handle_type, count in report["handle_types"].items():
            print(f"    handle {handle_type}: {count}")
        for failure in report["boundary_failures"]:
            print(
                f"    BOUNDARY {failure['task_id']}: {failure['reason']} "
                f"(split without codec passes: {failure['passes_split_without_codec']})"
            )
        for failure in report["baseline_failures"]:
            print(f"    baseline-fail {failure['task_id']}: {failure['reason'][:160]}")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
