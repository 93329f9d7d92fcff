"""Thread-free warm-ups the zygote runs after preloading, so children skip first-use costs.

Each step fills a cache that every child would otherwise fill again: transpiler stage plugins are
discovered through package entry points (about half a second), Aer builds its target, the
equivalence library loads. None of them may start a thread: a thread pool created before the fork
(as building a preset pass manager or running a transpile does) leaves children that deadlock.
The zygote checks its thread count after these steps and reports it.

Two steps run library code whose thread behaviour is not ours to promise (a preset pass manager
built and run, as most generated programs do through ``transpile``): each runs first in a forked
probe, and in the zygote only when the probe's thread count did not grow. At optimization level 0
(built and run) and 1 (built only) today's Qiskit starts no thread; level 2 does, in
``ConsolidateBlocks``, so the pass manager's type checks on the passes level 2 adds are warmed
directly instead (``pass_type_checks``).

``run`` must come after every import the zygote makes: an ``ABCMeta.register`` anywhere empties
the negative ``isinstance`` caches that the last two steps fill.
"""

from __future__ import annotations

import os
from collections.abc import Callable

STAGES = ("init", "layout", "routing", "translation", "optimization", "scheduling")


def transpiler_plugins() -> None:
    from qiskit.transpiler.preset_passmanagers.plugin import list_stage_plugins

    for stage in STAGES:
        list_stage_plugins(stage)


def aer_target() -> None:
    from qiskit_aer import AerSimulator

    AerSimulator().target  # noqa: B018 - building it is the point


def equivalence_library() -> None:
    from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary

    SessionEquivalenceLibrary.keys()


def preset_pass_managers() -> None:
    from qiskit import QuantumCircuit
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    generate_preset_pass_manager(optimization_level=0, backend=AerSimulator()).run(bell)
    generate_preset_pass_manager(optimization_level=1, backend=AerSimulator())


def pass_type_checks() -> None:
    """Fill ``isinstance(task, Iterable)``'s cache for every pass class.

    The pass manager asks it of each pass it is given; for a class not yet in the cache,
    ``collections.abc.Iterable`` walks its whole tree of registered subclasses (0.1-1 ms per
    class, about 4 ms per ``transpile`` in a fresh child).
    """
    from collections.abc import Iterable

    from qiskit.passmanager.base_tasks import Task

    seen: set[type] = set()
    stack = [Task]
    while stack:
        for cls in type.__subclasses__(stack.pop()):
            if cls not in seen:
                seen.add(cls)
                stack.append(cls)
                issubclass(cls, Iterable)


STEPS: dict[str, Callable[[], None]] = {
    "transpiler-plugins": transpiler_plugins,
    "aer-target": aer_target,
    "equivalence-library": equivalence_library,
    "preset-pass-managers": preset_pass_managers,
    "pass-type-checks": pass_type_checks,
}
PROBED = frozenset({"preset-pass-managers"})  # run in a forked probe first


def run(errors: dict[str, str]) -> None:
    """Run every step whose libraries are importable; failures go into ``errors``."""
    for name, step in STEPS.items():
        try:
            if name in PROBED and not _starts_no_thread(step):
                errors[f"warm-up {name}"] = "skipped: it starts a thread (or failed) in a probe"
                continue
            step()
        except ImportError:
            continue  # an interpreter without Aer (say) simply skips that step
        except Exception as exc:  # noqa: BLE001 - a warm-up never stops the sandbox
            errors[f"warm-up {name}"] = f"{type(exc).__name__}: {exc}"


def thread_count() -> int | None:
    """Threads of this process, or None where /proc cannot tell."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None


def _starts_no_thread(step: Callable[[], None]) -> bool:
    """Run ``step`` in a forked child: True when it ended without error or new threads.

    Where threads cannot be counted, False: the step is not run in the zygote.
    """
    if thread_count() is None:
        return False
    pid = os.fork()
    if pid == 0:  # the probe: never returns (and has only this thread of the zygote's)
        code = 3
        try:
            before = thread_count()
            step()
            code = 0 if thread_count() == before else 1
        except ImportError:
            code = 0  # run() skips it the same way in the zygote
        except BaseException:  # noqa: BLE001 - reported as a failed probe
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


HUGE_PAGE = 1 << 21
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25


def huge_pages() -> int:
    """Back the zygote's private heap with 2 MiB pages where the kernel allows; bytes moved.

    A fork copies one page-table entry per 4 KiB page of private memory, about 60,000 of them
    for a zygote with Qiskit loaded; with huge pages it copies one per 2 MiB. A child's writes
    still copy 4 KiB at a time (the kernel splits a shared huge page on the first write), so
    children use no more memory. Measured on the bell-transpile program: fork plus exit 6.4 ->
    3.9 ms, a whole program 4-5 ms faster. Run once, last, when the heap has stopped growing.
    Linux with transparent huge pages in ``madvise`` or ``always`` mode and ``MADV_COLLAPSE``
    (6.1) only; elsewhere every call fails and nothing changes.
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            lines = maps.readlines()
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    moved = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
            continue  # file mappings, stacks and shared memory stay as they are
        low, high = (int(x, 16) for x in fields[0].split("-"))
        start = (low + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
        end = high & ~(HUGE_PAGE - 1)
        if end > start:
            madvise(start, end - start, MADV_HUGEPAGE)
            if madvise(start, end - start, MADV_COLLAPSE) == 0:
                moved += end - start
    return moved
