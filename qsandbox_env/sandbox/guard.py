"""Tamper detection: what a passing program must have left untouched.

A policy under RL learns to pass tests without solving them: replace ``Statevector.equiv`` or
``builtins.isinstance``, swap a module in ``sys.modules``, rebind a name the test imported, or
return an object whose ``__eq__`` is always true. The zygote takes a :class:`Snapshot` of the
protected library surface once, before any program runs; after ``check`` returns, the child compares
the live state against it. Only identities are compared (``is``), never ``==``, because ``==`` would
call the program's own code. This module must stay free of anything that calls untrusted objects,
except the deliberate, isolated probe in :func:`rigged_comparisons`.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Callable, Iterator

# Top-level packages whose functions and classes a test may rely on.
PROTECTED_PACKAGES = frozenset(
    {
        "builtins",
        "sys",
        "os",
        "math",
        "cmath",
        "random",
        "operator",
        "functools",
        "itertools",
        "collections",
        "copy",
        "inspect",
        "json",
        "re",
        "typing",
        "unittest",
        "warnings",
        "numbers",
        "fractions",
        "decimal",
        "statistics",
        "traceback",
        "linecache",
        "importlib",
        "abc",
        "numpy",
        "scipy",
        "qiskit",
        "qiskit_aer",
        "qiskit_ibm_runtime",
        "rustworkx",
        "networkx",
        "matplotlib",
        "qsandbox_env",
    }
)
# Module globals that the interpreter and libraries legitimately rebind while programs run.
VOLATILE_GLOBALS = frozenset(
    {
        "__warningregistry__",
        "_",
        "__loader__",
        "__spec__",
        "__cached__",
        "__builtins__",
        "__file__",
        "__doc__",
    }
)
COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__")
_DESCRIPTORS = (types.FunctionType, classmethod, staticmethod, property)

_is_instance = isinstance
_type = type
_subclasses = type.__subclasses__
_MRO = type.__dict__["__mro__"]


def _protected(name: str) -> bool:
    return name.partition(".")[0] in PROTECTED_PACKAGES


def all_classes() -> Iterator[type]:
    """Every class reachable from ``object`` through ``__subclasses__``."""
    seen = {id(object)}
    stack = [object]
    while stack:
        for sub in _subclasses(stack.pop()):
            if id(sub) not in seen:
                seen.add(id(sub))
                stack.append(sub)
                yield sub


def _class_module(cls: type) -> str:
    mod = cls.__dict__.get("__module__")
    return mod if _is_instance(mod, str) else ""


class Snapshot:
    """Identities of the protected library surface, taken in the zygote before any program."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict, list[tuple[str, object]]]] = []
        self.modules: list[tuple[str, object]] = []
        self.class_ids: set[int] = set()
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.builtins = dict(builtins.__dict__)
        for name, mod in list(sys.modules.items()):
            if _protected(name) and _is_instance(mod, types.ModuleType):
                self.modules.append((name, mod))
                self._add(
                    f"module {name}",
                    mod.__dict__,
                    lambda v: callable(v) or _is_instance(v, types.ModuleType),
                )
        for cls in all_classes():
            self.class_ids.add(id(cls))
            if _protected(_class_module(cls)):
                self._add(
                    f"class {_class_module(cls)}.{cls.__qualname__}",
                    cls.__dict__,
                    lambda v: _is_instance(v, _DESCRIPTORS),
                    keys_too=True,
                )

    def _add(self, label: str, mapping, keep: Callable[[object], bool], keys_too: bool = False):
        items = [
            (k, v)
            for k, v in mapping.items()
            if _is_instance(k, str) and k not in VOLATILE_GLOBALS and keep(v)
        ]
        if keys_too:
            present = [(k, mapping.get(k)) for k in COMPARISONS]
            items.extend(kv for kv in present if kv[1] is None)  # "absent" is remembered too
        if items:
            self.entries.append((label, mapping, items))

    def changes(self, limit: int = 5) -> list[str]:
        """What differs from the snapshot now, as short sentences (at most ``limit``)."""
        found: list[str] = []
        bdict = builtins.__dict__
        for key, value in self.builtins.items():
            if key not in VOLATILE_GLOBALS and bdict.get(key) is not value:
                found.append(f"builtins.{key} was replaced")
        mods = sys.modules
        for name, mod in self.modules:
            if mods.get(name, mod) is not mod:
                found.append(f"sys.modules[{name!r}] was replaced")
        for label, mapping, items in self.entries:
            get = mapping.get
            for key, value in items:
                if get(key) is not value:
                    found.append(f"{label}.{key} was " + ("added" if value is None else "replaced"))
        for name, before, now in (
            ("sys.meta_path", self.meta_path, sys.meta_path),
            ("sys.path_hooks", self.path_hooks, sys.path_hooks),
        ):
            if _program_hooks(before, list(now)):
                found.append(f"the program installed its own import hook in {name}")
        return found[:limit]


def _program_hooks(before: list, now: list) -> bool:
    """Whether the program added an import hook of its own (one that could serve fake modules).

    Libraries add hooks too (openqasm3 puts one in front) and remove their own shims (setuptools
    does), so only hooks whose code the program wrote count.
    """
    original = {id(x) for x in before}
    for hook in now:
        if id(hook) in original:
            continue
        owner = hook if _is_instance(hook, type) else _type(hook)
        mro = _MRO.__get__(owner)  # not owner.__mro__: a metaclass could fake that
        if _written_by_program(hook) or any(
            _written_by_program(v) for klass in mro for v in list(klass.__dict__.values())
        ):
            return True
    return False


def rebound_names(before: dict[str, object], namespace: dict) -> list[str]:
    """Names of the program's modules, classes and functions that now point elsewhere."""
    return [
        f"global {k!r} was rebound while the test ran"
        for k, v in before.items()
        if namespace.get(k) is not v
    ]


def binding_snapshot(namespace: dict) -> dict[str, object]:
    kinds = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)
    return {k: v for k, v in namespace.items() if _is_instance(v, kinds)}


def _written_by_program(method: object) -> bool:
    """Methods compiled from the program (or from strings it generated), not library code."""
    code = getattr(method, "__code__", None) if _is_instance(method, types.FunctionType) else None
    if code is None:
        return False
    filename = code.co_filename
    return filename == "/program.py" or (
        filename.startswith("<") and not filename.startswith("<frozen")
    )


class _SentinelA:
    __slots__ = ()


class _SentinelB:
    __slots__ = ()


def rigged_comparisons(known_class_ids: set[int]) -> list[str]:
    """Classes created by the program whose comparisons answer "yes" to two unrelated objects.

    An honest ``__eq__`` given instances of two unrelated classes raises, returns False or
    NotImplemented; one that returns True (or an ``__ne__`` that returns False) was written to
    satisfy any assertion. This runs program code, so it runs after every other check.
    """
    found = []
    left, right = _SentinelA(), _SentinelB()
    for cls in list(all_classes()):
        if id(cls) in known_class_ids:
            continue
        for name in COMPARISONS:
            method = cls.__dict__.get(name)
            if not _written_by_program(method):
                continue
            try:
                answer = method(left, right)
                truth = answer is not NotImplemented and bool(answer)
            except BaseException:  # noqa: BLE001 - any failure means "not rigged"
                continue
            if answer is not NotImplemented and truth != (name == "__ne__"):
                found.append(f"{cls.__qualname__}.{name} answers {answer!r} for unrelated objects")
    return found
