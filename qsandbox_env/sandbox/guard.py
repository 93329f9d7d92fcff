"""Tamper detection: what the program changed of the library surface it was forked with.

The zygote takes a :class:`Snapshot` of the protected library surface once, before any program
runs; when the judge is done with a program, the child compares the live state against it and
reports each difference (``Statevector.equiv`` or ``builtins.isinstance`` replaced, a module
swapped in ``sys.modules``, a prebuilt device edited) as a finding, which makes the verdict
``tampered``. These are findings, not the defence: the test runs in the judge, whose libraries
the program cannot reach, so a verdict never depends on them. Only identities are compared
(``is``), never ``==``, which would call the program's own code.
"""

from __future__ import annotations

import array
import builtins
import ctypes
import gc
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar

# Top-level packages whose functions and classes a test may rely on. (``warnings`` and
# ``traceback`` are left out: libraries and pytest legitimately swap their hooks, and no test
# outcome depends on them.)
PROTECTED_PACKAGES = frozenset({
    "builtins", "sys", "os", "math", "cmath", "random", "operator", "functools", "itertools",
    "collections", "copy", "inspect", "json", "re", "typing", "unittest", "numbers", "fractions",
    "decimal", "statistics", "importlib", "abc", "numpy", "scipy", "qiskit", "qiskit_aer",
    "qiskit_ibm_runtime", "rustworkx", "networkx", "matplotlib", "qsandbox_env", "signal",
    "_signal", "_imp",
})  # fmt: skip
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
# The name the sandbox compiles every program under (tracebacks show it).
PROGRAM_FILENAME = "/program.py"
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
    return mod if _type(mod) is str else ""


class Snapshot:
    """Identities of the protected library surface, taken in the zygote before any program.

    Checking ~35,000 entries one by one in a forked child is slow: every look-up touches a
    reference count, and each touched page is copied. So each protected dict is also watched
    through its CPython version tag (PEP 509), which changes on every write and can be read
    straight from memory without touching any object; only dicts whose tag moved are compared
    entry by entry. Where the tag cannot be read (another interpreter), every dict is compared.
    With numpy loaded, the tags are gathered in one indexing operation on a read-only array over
    the address space, ten times faster than one read each.
    """

    def __init__(self) -> None:
        self.memory = _dict_versions()
        self.words = _word_view(self.memory)
        self.watched: list[dict] = []
        self.entries: list[tuple[str, Mapping, list[tuple[str, object]]]] = []
        self.modules: list[tuple[str, object]] = []
        self.meta_path = list(sys.meta_path)
        self.path_hooks = list(sys.path_hooks)
        self.builtins = dict(builtins.__dict__)
        for name, mod in list(sys.modules.items()):
            if _protected(name) and _is_instance(mod, types.ModuleType):
                self.modules.append((name, mod))
                if mod is builtins:
                    continue  # compared in full below, with its own message
                self._add(
                    f"module {name}",
                    mod.__dict__,
                    lambda v: callable(v) or _is_instance(v, types.ModuleType),
                )
        for cls in all_classes():
            if _protected(_class_module(cls)):
                # Strings too: a fake device class finds its calibration files through them.
                self._add(
                    f"class {_class_module(cls)}.{cls.__qualname__}",
                    cls.__dict__,
                    lambda v: _is_instance(v, _DESCRIPTORS) or _type(v) is str,
                    keys_too=True,
                )
        # Slot 0 watches builtins, slot 1 sys.modules, slot i + 2 the dict of entries[i].
        self.watched[:0] = [builtins.__dict__, sys.modules]
        self.slots = array.array("Q", (version_slot(d) for d in self.watched))
        if self.words is not None:
            numpy = sys.modules["numpy"]
            self.slot_index = numpy.array(self.slots, dtype=numpy.intp) - 1  # see _word_view
            self.tag_bytes = self.words[self.slot_index].tobytes()
            self.tags = array.array("Q", self.tag_bytes)  # the same tags, not read again
        else:
            self.tags = self._read_tags()
        key_ids = {key: id(key) for key in sys.modules}
        self.module_keys = array.array("Q", (key_ids[name] for name, _ in self.modules))
        self.module_values = array.array("Q", (id(mod) for _, mod in self.modules))
        expected = {id(k): id(v) for k, v in sys.modules.items()}
        self.raw_modules = _raw_items(self.memory, sys.modules, self.words) == expected
        # State the zygote built for programs to share (see seal); a tuple, never mutated.
        self.sealed: tuple[tuple[str, Callable[[], object], object], ...] = ()
        self.contents: tuple[tuple[str, _Contents], ...] = ()  # see seal_contents

    def seal(self, label: str, probe: Callable[[], object]) -> None:
        """Also watch shared state that is not a library surface (prebuilt devices, say).

        Library objects the zygote built once and every child inherits (a device's target, a
        noise model) are data, which identities of functions and classes do not cover: a
        program that changes them changes what the test's own reference computation sees.
        ``probe`` is sandbox code that describes that state as nested tuples of objects and
        plain values; after a passing test it must describe the same objects and values again.
        """
        self.sealed = (*self.sealed, (label, probe, probe()))

    def seal_contents(self, label: str, root: object) -> None:
        """Also watch every dict and list inside ``root``, however deep (JSON-like shared data:
        a noise model in the form the simulator reads).

        A write anywhere in it changes a dict's version tag or a list's length, buffer or items,
        which are read from memory without touching any object of it.
        """
        self.contents = (*self.contents, (label, _Contents(root, self.memory, self.words)))

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
            self.watched.append(underlying_dict(mapping))

    def _read_tags(self) -> array.array:
        if self.memory is None:
            return array.array("Q", range(len(self.slots)))  # never read: all count as moved
        return array.array("Q", map(self.memory.__getitem__, self.slots))

    def _moved(self) -> set[int]:
        """Slots whose dict was written since the snapshot (all of them without tags)."""
        if self.memory is None:
            return set(range(len(self.slots)))
        if self.words is not None:
            # Indexing and tobytes are the C type's own methods, and bytes compare in C: no
            # module attribute a program could replace is involved.
            gathered = self.words[self.slot_index].tobytes()
            if gathered == self.tag_bytes:
                return set()
            return _differing_words(gathered, self.tag_bytes)
        now = self._read_tags()
        if now == self.tags:
            return set()
        return {i for i, (a, b) in enumerate(zip(now, self.tags, strict=True)) if a != b}

    def _replaced_modules(self) -> list[str]:
        """Protected entries of ``sys.modules`` that now hold another module.

        Programs import, so ``sys.modules`` nearly always moves; its entries are then read raw
        (key and value addresses) where the layout check passed, and only names whose entry is
        not exactly as before are looked up the ordinary way.
        """
        raw = _raw_items(self.memory, sys.modules, self.words) if self.raw_modules else None
        if raw is None:
            suspects = self.modules
        else:
            pairs = zip(self.module_keys, self.module_values, strict=True)
            suspects = [self.modules[i] for i, (k, v) in enumerate(pairs) if raw.get(k) != v]
        mods = sys.modules
        return [
            f"sys.modules[{name!r}] was replaced"
            for name, mod in suspects
            if mods.get(name, mod) is not mod
        ]

    def changes(self, limit: int = 5) -> list[str]:
        """What differs from the snapshot now, as short sentences (at most ``limit``)."""
        found: list[str] = []
        moved = self._moved()
        if 0 in moved:
            bdict = builtins.__dict__
            for key, value in self.builtins.items():
                if key not in VOLATILE_GLOBALS and bdict.get(key) is not value:
                    found.append(f"builtins.{key} was replaced")
        if 1 in moved:
            found += self._replaced_modules()
        for index in sorted(i - 2 for i in moved if i >= 2):
            label, mapping, items = self.entries[index]
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
        for label, probe, recorded in self.sealed:
            if not _same(recorded, _described(probe)):
                found.append(f"{label}: changed by the program")
        for label, contents in self.contents:
            if contents.changed():
                found.append(f"{label}: changed by the program")
        return found[:limit]


class _Contents:
    """Every exact dict and list inside one value, and how to tell that any of them changed.

    With the address space readable (see `_word_view`): the dicts' version tags, each list's
    length and item buffer (two words of its header), and the buffer's item pointers, each set
    gathered in one indexing operation and compared as bytes. A list's items are read only once
    its header is known unchanged, so a freed buffer is never read. Elsewhere: a description of
    the whole value (exact containers walked, everything else by identity), made again.
    """

    def __init__(self, root: object, memory, words) -> None:
        dicts: list[dict] = []
        lists: list[list] = []
        stack, seen = [root], set()
        while stack:
            value = stack.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            if _type(value) is dict:
                dicts.append(value)
                stack.extend(dict.values(value))
            elif _type(value) is list:
                lists.append(value)
                stack.extend(value)
        self.held = (root, dicts, lists)  # alive as long as the snapshot: addresses stay valid
        self.words = words if memory is not None else None
        if self.words is None:
            self.described = _describe_json(root)
            return
        numpy = sys.modules["numpy"]
        # Word i of the address space is element i - 1 of the view (see _word_view).
        heads = [version_slot(d) - 1 for d in dicts]
        for each in lists:
            heads += [id(each) // 8 + 1, id(each) // 8 + 2]  # ob_size, ob_item
        # In address order: the gather then walks memory forwards, a third faster when cold.
        self.heads = numpy.sort(numpy.array(heads, dtype=numpy.intp))
        self.head_bytes = self.words[self.heads].tobytes()
        items: list[int] = []
        for each in lists:
            buffer = int(self.words[id(each) // 8 + 2])
            items += range(buffer // 8 - 1, buffer // 8 - 1 + len(each))
        self.items = numpy.sort(numpy.array(items, dtype=numpy.intp))
        self.item_bytes = self.words[self.items].tobytes()

    def changed(self) -> bool:
        if self.words is None:
            return not _same(self.described, _describe_json(self.held[0]))
        if self.words[self.heads].tobytes() != self.head_bytes:
            return True
        return self.words[self.items].tobytes() != self.item_bytes


def _describe_json(value: object) -> object:
    """Exact dicts and lists as nested tuples, plain values as they are, the rest by identity."""
    if _type(value) is dict:
        return (dict, tuple((k, _describe_json(v)) for k, v in dict.items(value)))
    if _type(value) is list:
        return (list, tuple(_describe_json(v) for v in value))
    return value


_PLAIN = (int, float, str, bool, type(None))


class _Broken:
    __slots__ = ()


_BROKEN = _Broken()


def _described(probe: Callable[[], object]) -> object:
    try:
        return probe()
    except BaseException:  # noqa: BLE001 - state broken badly enough that describing it fails
        return _BROKEN  # the same as nothing recorded


def _same(before: object, now: object) -> bool:
    """Whether a probe's two descriptions match: tuples item by item, plain values by value,
    everything else by identity (never ``==`` on an object a program could have made)."""
    if _type(before) is tuple:
        if _type(now) is not tuple or len(before) != len(now):
            return False
        for old, new in zip(before, now, strict=True):  # noqa: SIM110 - no replaceable builtin
            if not _same(old, new):
                return False
        return True
    if _type(before) in _PLAIN:
        return _type(now) is _type(before) and before == now
    return before is now


# Where a dict's version tag lives: after the object header and ``ma_used`` in ``PyDictObject``.
_TAG_OFFSET = object.__basicsize__ + ctypes.sizeof(ctypes.c_ssize_t)


def underlying_dict(mapping: Mapping) -> dict:
    """The dict itself: a class's ``__dict__`` is a read-only proxy in front of it."""
    return mapping if _type(mapping) is dict else gc.get_referents(mapping)[0]


def version_slot(d: dict) -> int:
    """The index, in 8-byte words of the address space, of ``d``'s version tag."""
    return (id(d) + _TAG_OFFSET) // 8


def _raw_items(memory, d: dict, words=None) -> dict[int, int] | None:
    """``{id(key): id(value)}`` of a combined-table dict, read from memory without touching them.

    Follows CPython's ``PyDictObject`` → ``PyDictKeysObject`` layout (header, ``ma_used``,
    ``ma_version_tag``, ``ma_keys``, ``ma_values``; then ``dk_refcnt``, three bytes of sizes and
    kind, ``dk_version``, ``dk_usable``, ``dk_nentries``, the index table, the entries). The
    caller trusts the result only after it matched the real items once. ``words`` (see
    `_word_view`) reads the entry table in one slice instead of two reads per entry.
    """
    if memory is None:
        return None
    base = id(d) // 8
    keys, values = memory[base + 4], memory[base + 5]
    if values or not keys or keys % 8:
        return None
    sizes = memory[keys // 8 + 1]
    index_bytes, kind = 1 << ((sizes >> 8) & 0xFF), (sizes >> 16) & 0xFF
    entries = memory[keys // 8 + 3]
    width, first = (2, 0) if kind else (3, 1)  # unicode entries: key, value; general: hash too
    start = (keys + 32 + index_bytes) // 8
    if words is not None:
        table = words[start - 1 : start - 1 + entries * width].reshape(entries, width)
        pairs = zip(table[:, first].tolist(), table[:, first + 1].tolist(), strict=True)
        return {key: value for key, value in pairs if value}
    found = {}
    for i in range(entries):
        key, value = memory[start + i * width + first], memory[start + i * width + first + 1]
        if value:
            found[key] = value
    return found


def _dict_versions():
    """The address space as an array of 8-byte words, if dict version tags can be read from it.

    Reading through one array needs no per-read ctypes object (and so no audit event, and no
    allocation). The tag is trusted only if it stays put while nothing writes and moves on every
    write, including one that replaces a value without changing the dict's size; otherwise None,
    and every protected dict is compared entry by entry.
    """
    if sys.implementation.name != "cpython" or (id(object) + _TAG_OFFSET) % 8:
        return None
    memory = (ctypes.c_uint64 * ((1 << 60) - 1)).from_address(0)
    probe = {"key": 0}
    slot = version_slot(probe)
    first, same = memory[slot], memory[slot]
    probe["key"] = 1
    second = memory[slot]
    probe["key"] = 2
    third = memory[slot]
    if first == same and len({first, second, third}) == 3:
        return memory
    return None


class _AddressSpace:
    """The address space from byte 8 on (numpy takes no null data pointer), read-only."""

    __array_interface__: ClassVar[dict] = {
        "version": 3,
        "data": (8, True),
        "shape": ((1 << 60) - 2,),
        "typestr": "<u8",
    }


def _word_view(memory):
    """A read-only numpy array of the address space's 8-byte words, where word ``i`` of
    `_dict_versions`'s array is element ``i - 1``; None without numpy already loaded (a sandbox
    that preloads nothing does not import it for this) or where the two disagree."""
    numpy = sys.modules.get("numpy")
    if memory is None or numpy is None:
        return None
    try:
        words = numpy.asarray(_AddressSpace())
    except Exception:  # noqa: BLE001 - an unusual numpy: the per-word reads still work
        return None
    probe = {"key": 0}
    slot = version_slot(probe)
    if words.flags.writeable or int(words[slot - 1]) != memory[slot]:
        return None
    return words


def _differing_words(now: bytes, before: bytes) -> set[int]:
    """Indexes of the 8-byte words that differ, comparing 256 words at a time in C first."""
    found: set[int] = set()
    block = 2048
    for start in range(0, len(now), block):
        a, b = now[start : start + block], before[start : start + block]
        if a != b:
            base = start // 8
            pairs = zip(array.array("Q", a), array.array("Q", b), strict=True)
            found.update(base + i for i, (x, y) in enumerate(pairs) if x != y)
    return found


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


def shadowed_methods(obj: object) -> tuple[str, ...]:
    """Instance attributes of ``obj`` that hide a method of its class (``backend.run = ...``)."""
    found = []
    for name in list(vars(obj)):
        for klass in _MRO.__get__(_type(obj)):
            value = vars(klass).get(name)
            if value is not None:
                if callable(value) or _is_instance(value, (classmethod, staticmethod)):
                    found.append(name)
                break
    return tuple(found)


def is_program_file(filename: str) -> bool:
    """Whether code compiled under this name is the program's (or from strings it generated)."""
    return filename == PROGRAM_FILENAME or (
        filename.startswith("<") and not filename.startswith("<frozen")
    )


def _written_by_program(method: object) -> bool:
    """Methods compiled from the program, not library code."""
    code = getattr(method, "__code__", None) if _is_instance(method, types.FunctionType) else None
    return code is not None and is_program_file(code.co_filename)


_TYPE_DICT = type.__dict__["__dict__"]
_QUALNAME = type.__dict__["__qualname__"]
_CLASSMETHOD_FUNC = classmethod.__dict__["__func__"]
