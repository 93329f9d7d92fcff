"""Sandbox throughput: the Verifier against a fresh interpreter per program and a warm floor.

Every workload runs the *same* program texts (``assemble(task, code).source`` plus the
``check(<entry_point>)`` call the harness makes) three ways, side by side:

- ``fresh-interpreter``: ``subprocess.run([sys.executable, "-c", program], timeout=60)`` per
  program, exit code 0 = pass, ``--workers`` at once through a thread pool. This is exactly what a
  plain HumanEval-style harness does.
- ``verifier``: ``Verifier(workers=workers)`` in warm mode (zygotes with Qiskit preloaded fork
  one isolated child per program), through ``verify_many``. The zygotes are started before the
  clock; their start-up time is reported separately in the notes.
- ``warm-floor``: ``exec`` of each program, one after another, in this benchmark's
  own interpreter with Qiskit already imported, in a fresh namespace each time and with no
  isolation at all. It is the cost of the program itself, so it is compared with a Verifier at
  ``parallelism=1`` (``verifier p=1``, measured for the Bell workloads); for ``humaneval`` it gives
  the least wall time any harness could need on ``--workers`` workers.

Each method runs one unmeasured program first (warm-up). Workloads:

- ``bell``: a 2-qubit Bell-state circuit on qiskit-aer (1024 shots, seed 7), repeated ``--repeat``
  times; the test checks that only ``00``/``11`` are seen and that the counts add up to 1024.
- ``bell-transpile``: the same, written as most generated code is: ``transpile(circuit, sim)``
  before ``sim.run``. Transpiling for Aer's target dominates its warm cost.
- ``humaneval``: the canonical solutions of the Qiskit-HumanEval set given by ``--data``
  (skipped, with a message, when the file is missing).
- ``schedule``: the ``humaneval`` canonical solutions on one warm Verifier, started in input order
  and longest first (``Verifier(schedule=...)``), against max(longest program, total / workers).
- ``startup``: for each count in ``--workers`` (``--workers 1,2,4,8,16``), a fresh Verifier's
  start-up (the constructor: every zygote ready) and the wall time of the ``bell`` programs on it,
  in a table; the line ``start-up N / M workers: X.XX`` compares the most workers with the fewest.
  One unmeasured start-up comes first, so that every count finds the files in the page cache;
  each count then starts ``--startup-rounds`` times (default 3), in turns, and the shortest
  start-up is kept.
- ``fake-sampler``: a 2-qubit Bell circuit transpiled for a fake IBM device (``--device``,
  default ``sherbrooke``) and sampled with qiskit-ibm-runtime's ``SamplerV2`` in local mode (1024
  shots, the device's noise model), ``--fake-repeat`` times. A fresh interpreter builds the device
  itself (``FakeSherbrooke()``: no account exists there); the Verifier runs on
  ``target="fake:<device>"`` both that program and the same job written against the offline
  ``QiskitRuntimeService().least_busy()``, whose device the zygote built once. The headline ratio
  compares the fresh interpreter with the latter.

Run from the repository root:

    PYTHONPATH=. python benchmarks/sandbox_throughput.py --workload bell
    PYTHONPATH=. python benchmarks/sandbox_throughput.py --workload all --json throughput.json
    PYTHONPATH=. python benchmarks/sandbox_throughput.py --workload fake-sampler
    PYTHONPATH=. python benchmarks/sandbox_throughput.py --workload startup --workers 1,2,4,8,16

``--workers`` takes one count or several (comma-separated); the other workloads run once per count.

The fresh-interpreter part of ``humaneval`` takes minutes on a small machine (each program pays
for a new interpreter and a new ``import qiskit``). Timings share the machine with whatever else
runs on it: the notes say how much CPU other processes took while each clock ran, and flag a
timing as DISTURBED when that was more than 10% of the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qsandbox_env import Task, Verifier, load_tasks
from qsandbox_env.extract import extract_code
from qsandbox_env.program import assemble

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / "../shared/datasets/qiskit_humaneval/dataset_qiskit_test_human_eval.json"
FRESH_TIMEOUT = 60.0
FAILURES_SHOWN = 5
# Share of the machine's CPU taken by other processes above which a note flags the timing.
DISTURBED_SHARE = 0.10
MIN_DISTURBED_CPU = 0.1  # CPU-seconds; less is within the counters' resolution

# Targets the ratios are held to (printed next to each ratio).
MIN_BELL_SPEEDUP = 10.0
MAX_FLOOR_OVERHEAD = 1.5
MAX_HUMANEVAL_WALL_FRACTION = 0.25
MAX_STARTUP_GROWTH = 1.5  # start-up at the most workers against the fewest
SCHEDULE_ROUNDS = 2  # runs of each order in the schedule workload (the best is kept)

BELL_PROMPT = (
    "Write a function bell_counts() that prepares a Bell state on two qubits, measures both, runs "
    "the circuit on qiskit-aer's AerSimulator with 1024 shots and seed_simulator=7, and returns "
    "the counts dictionary."
)

BELL_SOLUTION = '''\
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator


def bell_counts():
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    result = AerSimulator().run(circuit, shots=1024, seed_simulator=7).result()
    return result.get_counts()
'''

# The same program as most generated code writes it: transpiled for the simulator first.
BELL_TRANSPILE_SOLUTION = '''\
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator


def bell_counts():
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    simulator = AerSimulator()
    result = simulator.run(transpile(circuit, simulator), shots=1024, seed_simulator=7).result()
    return result.get_counts()
'''

BELL_TEST = '''\
def check(candidate):
    counts = candidate()
    assert set(counts) <= {"00", "11"}, f"unexpected outcomes: {counts}"
    assert sum(counts.values()) == 1024, f"expected 1024 shots, got {counts}"


check(bell_counts)
'''


@dataclass(frozen=True)
class Workload:
    """The (task, completion) pairs the Verifier gets and the program texts the others run."""

    name: str
    pairs: list[tuple[Task, str]]
    programs: list[str]

    @property
    def task_ids(self) -> list[str]:
        return [task.task_id for task, _ in self.pairs]


@dataclass
class Measurement:
    """One timed run of one method over one workload."""

    workload: str
    method: str
    workers: int
    programs: int
    passed: int
    wall_seconds: float
    startup_seconds: float | None = None
    failed: list[str] = field(default_factory=list)
    other_cpu_seconds: float | None = None  # CPU other processes used while the clock ran
    startup_other_cpu_seconds: float | None = None  # the same, while the Verifier started

    @property
    def programs_per_second(self) -> float:
        return self.programs / self.wall_seconds if self.wall_seconds > 0 else float("inf")

    @property
    def seconds_per_program(self) -> float:
        return self.wall_seconds / self.programs if self.programs else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "programs_per_second": self.programs_per_second,
                "seconds_per_program": self.seconds_per_program}


@dataclass(frozen=True)
class Ratio:
    """A derived figure and, when it is held to one, its target and whether it was met."""

    name: str
    value: float
    target: str | None = None
    met: bool | None = None


@dataclass
class Report:
    """Everything measured for one workload."""

    workload: str
    rows: list[Measurement] = field(default_factory=list)
    ratios: list[Ratio] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- workloads -----------------------------------------------------------------------------------
def program_text(task: Task, completion: str) -> str:
    """The program the Verifier would run for this pair, plus the harness's ``check`` call."""
    source = assemble(task, extract_code(completion, task)).source
    return f"{source}\ncheck({task.entry_point})\n"


def make_workload(name: str, pairs: list[tuple[Task, str]]) -> Workload:
    return Workload(name, pairs, [program_text(task, completion) for task, completion in pairs])


FAKE_PROMPT = (
    "Write a function bell_counts() that samples a Bell pair on a fake IBM device with "
    "qiskit-ibm-runtime's SamplerV2 (1024 shots) and returns the counts."
)

# The job as a plain harness can run it: the device is built in the program.
FAKE_DEVICE_SOLUTION = '''\
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.fake_provider import {device_class}


def bell_counts():
    backend = {device_class}()
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(circuit)
    return SamplerV2(mode=backend).run([isa], shots=1024).result()[0].data.meas.get_counts()
'''

# The same job through the account the sandbox serves on a fake: target.
FAKE_SERVICE_SOLUTION = '''\
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2


def bell_counts():
    backend = QiskitRuntimeService().least_busy()
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(circuit)
    return SamplerV2(mode=backend).run([isa], shots=1024).result()[0].data.meas.get_counts()
'''

FAKE_TEST = '''\
def check(candidate):
    counts = candidate()
    assert sum(counts.values()) == 1024, f"expected 1024 shots, got {counts}"
    assert counts.get("00", 0) + counts.get("11", 0) > 900, f"not a Bell pair: {counts}"


check(bell_counts)
'''


def bell_task() -> Task:
    return Task("bench/bell", BELL_PROMPT, BELL_TEST, "bell_counts",
                canonical_solution=BELL_SOLUTION, format="program")


def bell_workload(repeat: int, name: str = "bell") -> Workload:
    """``bell``: build and run on Aer; ``bell-transpile``: transpile for the simulator first."""
    solution = BELL_TRANSPILE_SOLUTION if name == "bell-transpile" else BELL_SOLUTION
    return make_workload(name, [(bell_task(), solution)] * repeat)


def fake_sampler_workloads(device: str, repeat: int) -> tuple[Workload, Workload]:
    """(the device built in the program, the device served by the offline Runtime)."""
    from qsandbox_env.targets import fake_device_classes, parse_target

    device_class = fake_device_classes()[parse_target(f"fake:{device}").device]
    task = Task("bench/fake-sampler", FAKE_PROMPT, FAKE_TEST, "bell_counts", format="program")
    built = FAKE_DEVICE_SOLUTION.format(device_class=device_class)
    return (make_workload("fake-sampler", [(task, built)] * repeat),
            make_workload("fake-sampler", [(task, FAKE_SERVICE_SOLUTION)] * repeat))


def humaneval_workload(path: Path) -> Workload | None:
    if not path.is_file():
        print(f"humaneval: skipped, task file {path} not found (pass --data PATH)",
              file=sys.stderr)
        return None
    tasks = load_tasks(path)
    pairs = [(task, task.canonical_solution) for task in tasks.values()
             if task.canonical_solution]
    return make_workload("humaneval", pairs)


# -- clock and CPU accounting ---------------------------------------------------------------------
class Window:
    """Wall clock of a measured region, plus the CPU the rest of the machine used meanwhile.

    "Ours" is this process, the children it has reaped and every live descendant (the zygotes and
    the programs they reaped), read from /proc; the rest of the machine's busy time is someone
    else's, and shows when another job competes for the CPUs.
    """

    def __enter__(self) -> Window:
        self._busy, self._ours = machine_busy_seconds(), tree_cpu_seconds()
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._start
        busy, ours = machine_busy_seconds(), tree_cpu_seconds()
        self._others: float | None = None
        if busy is None or ours is None or self._busy is None or self._ours is None:
            return
        self._others = max(0.0, (busy - self._busy) - (ours - self._ours))

    def other_cpu(self) -> float | None:
        return self._others


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (steal included)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # user nice system idle iowait irq softirq steal
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds() -> float | None:
    """CPU seconds of this process, its reaped children and its live descendants."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    stats = process_stats()
    if stats is None:
        return None
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(children.get(os.getpid(), ()))
    while stack:
        pid = stack.pop()
        total += stats[pid][1]
        stack.extend(children.get(pid, ()))
    return total


def process_stats() -> dict[int, tuple[int, float]] | None:
    """pid -> (parent pid, CPU seconds including reaped children) for every process in /proc."""
    try:
        names = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for name in names:
        try:
            with open(f"/proc/{name}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rpartition(")")[2].split()
        except OSError:
            continue  # the process ended meanwhile
        # After "(comm)" comes field 3 (state): ppid is field 4, utime..cstime 14..17.
        cpu = sum(int(x) for x in fields[11:15]) / tick
        stats[int(name)] = (int(fields[1]), cpu)
    return stats


# -- methods -------------------------------------------------------------------------------------
def run_fresh_program(program: str, cwd: str, timeout: float = FRESH_TIMEOUT) -> bool:
    """One program in a new interpreter, as a plain harness runs it; exit code 0 = pass."""
    try:
        completed = subprocess.run([sys.executable, "-c", program], timeout=timeout,
                                   capture_output=True, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        return False
    return completed.returncode == 0


def measure_fresh(workload: Workload, workers: int,
                  timeout: float = FRESH_TIMEOUT) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="qsandbox-bench-") as cwd:
        run_fresh_program(workload.programs[0], cwd, timeout)  # warm-up
        with ThreadPoolExecutor(workers) as pool, Window() as window:
            results = list(pool.map(lambda p: run_fresh_program(p, cwd, timeout),
                                    workload.programs))
    return make_measurement(workload, "fresh-interpreter", workers, results, window)


def measure_verifier(workload: Workload, workers: int, method: str = "verifier",
                     target: str = "aer") -> Measurement:
    with Window() as starting:
        verifier = Verifier(workers=workers, target=target)
    with verifier:
        verifier.verify(*workload.pairs[0])  # warm-up
        with Window() as window:
            verdicts = verifier.verify_many(workload.pairs)
    measurement = make_measurement(workload, method, workers, [v.passed for v in verdicts],
                                   window)
    measurement.startup_seconds = starting.wall
    measurement.startup_other_cpu_seconds = starting.other_cpu()
    return measurement


def exec_program(program: str) -> bool:
    """One program in this interpreter, in a fresh namespace; no exception = pass.

    Its output and warnings are discarded, as the other methods capture theirs.
    """
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exec(compile(program, "<benchmark>", "exec"), {"__name__": "__main__"})
        except Exception:  # noqa: BLE001 - a failing program is a result, not an error
            return False
    return True


def measure_floor(workload: Workload) -> Measurement:
    import qiskit  # noqa: F401 - the floor is measured with Qiskit already warm
    import qiskit_aer  # noqa: F401

    here = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # programs that write files write them here, as in the other methods
        try:
            exec_program(workload.programs[0])  # warm-up
            with Window() as window:
                results = [exec_program(program) for program in workload.programs]
        finally:
            os.chdir(here)
    return make_measurement(workload, "warm-floor", 1, results, window)


def make_measurement(workload: Workload, method: str, workers: int, results: Sequence[bool],
                     window: Window) -> Measurement:
    failed = [tid for tid, ok in zip(workload.task_ids, results, strict=True) if not ok]
    return Measurement(workload.name, method, workers, len(results), len(results) - len(failed),
                       window.wall, failed=failed, other_cpu_seconds=window.other_cpu())


# -- one workload --------------------------------------------------------------------------------
def timed_step(report: Report, label: str, step: Callable[[], Measurement]) -> Measurement:
    """Run one measurement, printing progress and noting what else loaded the machine."""
    print(f"  {report.workload}: {label} ...", file=sys.stderr, flush=True)
    measurement = step()
    report.rows.append(measurement)
    report.notes.append(f"{label}: {contention_note(measurement)}")
    if measurement.startup_seconds is not None:
        report.notes.append(f"{label}: zygote start-up {measurement.startup_seconds:.2f} s "
                            "(not in the timing)")
    if measurement.failed:
        shown = ", ".join(dict.fromkeys(measurement.failed[:FAILURES_SHOWN]))
        more = len(measurement.failed) - FAILURES_SHOWN
        report.notes.append(f"{label}: {len(measurement.failed)} failed ({shown}"
                            f"{f', +{more} more' if more > 0 else ''})")
    return measurement


def contention_note(measurement: Measurement) -> str:
    """How much CPU other processes took while the clock ran (a sign of disturbed timings)."""
    others = measurement.other_cpu_seconds
    if others is None:
        return "CPU use of other processes unknown (no /proc)"
    wall = measurement.wall_seconds
    share = others / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
    # /proc/stat counts in clock ticks (10 ms): a few ticks in a short window prove nothing.
    flag = "  <- DISTURBED" if share > DISTURBED_SHARE and others >= MIN_DISTURBED_CPU else ""
    return (f"other processes used {others:.1f} CPU-s of the {wall:.1f} s window "
            f"({share:.0%} of the machine){flag}")


def benchmark_bell(workload: Workload, workers: int) -> Report:
    report = Report(workload.name)
    fresh = timed_step(report, f"fresh-interpreter x{workers}",
                       lambda: measure_fresh(workload, workers))
    verifier = timed_step(report, f"verifier p={workers}",
                          lambda: measure_verifier(workload, workers))
    if workers == 1:
        serial = verifier
    else:
        serial = timed_step(report, "verifier p=1",
                            lambda: measure_verifier(workload, 1, "verifier p=1"))
    floor = timed_step(report, "warm-floor", lambda: measure_floor(workload))
    speedup = verifier.programs_per_second / fresh.programs_per_second
    overhead = serial.seconds_per_program / floor.seconds_per_program
    report.ratios = [
        Ratio(f"verifier p={workers} vs fresh interpreter x{workers}, throughput", speedup,
              f">= {MIN_BELL_SPEEDUP:g}x", speedup >= MIN_BELL_SPEEDUP),
        Ratio("verifier p=1 vs warm floor, seconds per program", overhead,
              f"<= {MAX_FLOOR_OVERHEAD:g}x", overhead <= MAX_FLOOR_OVERHEAD),
    ]
    return report


def benchmark_humaneval(workload: Workload, workers: int) -> Report:
    report = Report(workload.name)
    fresh = timed_step(report, f"fresh-interpreter x{workers}",
                       lambda: measure_fresh(workload, workers))
    verifier = timed_step(report, f"verifier p={workers}",
                          lambda: measure_verifier(workload, workers))
    floor = timed_step(report, "warm-floor", lambda: measure_floor(workload))
    speedup = verifier.programs_per_second / fresh.programs_per_second
    fraction = verifier.wall_seconds / fresh.wall_seconds
    # Even with no sandbox at all, `workers` warm interpreters need the floor's serial time
    # divided among them (at best): the smallest wall fraction any harness could reach here.
    best = floor.wall_seconds / workers / fresh.wall_seconds
    report.ratios = [
        Ratio(f"verifier p={workers} vs fresh interpreter x{workers}, throughput", speedup),
        Ratio(f"verifier p={workers} wall / fresh interpreter x{workers} wall", fraction,
              f"< {MAX_HUMANEVAL_WALL_FRACTION:g}", fraction < MAX_HUMANEVAL_WALL_FRACTION),
        Ratio(f"warm floor / {workers} workers / fresh interpreter x{workers} wall "
              "(lower bound for any harness)", best),
    ]
    return report


def benchmark_schedule(workload: Workload, workers: int) -> Report:
    """The canonical solutions in input order against longest first, on one warm Verifier.

    One unmeasured pass teaches the Verifier each task's time; then the same batch runs with
    ``schedule="input"`` and with ``schedule="longest_first"``, alternately, ``SCHEDULE_ROUNDS``
    times each. The bound is max(longest program, total sandbox time / workers), from the
    verdicts' own times in the learning pass.
    """
    report = Report(f"{workload.name} scheduling")
    start = time.perf_counter()
    with Verifier(workers=workers) as verifier:
        startup = time.perf_counter() - start
        learned = verifier.verify_many(workload.pairs)
        longest = max(v.seconds for v in learned)
        bound = max(longest, sum(v.seconds for v in learned) / workers)
        best: dict[str, Measurement] = {}
        for _ in range(SCHEDULE_ROUNDS):
            for schedule in ("input", "longest_first"):
                verifier.schedule = schedule
                with Window() as window:
                    verdicts = verifier.verify_many(workload.pairs)
                made = make_measurement(workload, f"verifier, {schedule}", workers,
                                        [v.passed for v in verdicts], window)
                made.startup_seconds = startup
                if schedule not in best or made.wall_seconds < best[schedule].wall_seconds:
                    best[schedule] = made
    report.rows = [best["input"], best["longest_first"]]
    report.ratios = [
        Ratio("input order wall / max(longest program, total / workers)",
              best["input"].wall_seconds / bound),
        Ratio("longest first wall / max(longest program, total / workers)",
              best["longest_first"].wall_seconds / bound),
        Ratio("longest first wall / input order wall",
              best["longest_first"].wall_seconds / best["input"].wall_seconds),
    ]
    report.notes.append(
        f"best of {SCHEDULE_ROUNDS} runs each; longest program {longest:.2f} s, total sandbox "
        f"time {sum(v.seconds for v in learned):.2f} s over {workers} workers: bound "
        f"{bound:.2f} s"
    )
    report.notes.extend(f"{m.method}: {contention_note(m)}" for m in report.rows)
    return report


def benchmark_fake_sampler(device: str, repeat: int, workers: int) -> Report:
    built, served = fake_sampler_workloads(device, repeat)
    target = f"fake:{device}"
    report = Report(built.name)
    # A noisy job on a 127-qubit device takes seconds in a fresh interpreter; on a loaded machine
    # 60 s would cut some off and count them as failures.
    fresh = timed_step(report, f"fresh-interpreter x{workers}",
                       lambda: measure_fresh(built, workers, timeout=600.0))
    fresh.method = f"fresh-interpreter, {device} built in program"
    in_program = timed_step(report, f"verifier p={workers}, device built in program",
                            lambda: measure_verifier(built, workers, target=target))
    in_program.method = f"verifier {target}, device built in program"
    service = timed_step(report, f"verifier p={workers}, device from the offline Runtime",
                         lambda: measure_verifier(served, workers, target=target))
    service.method = f"verifier {target}, QiskitRuntimeService().least_busy()"
    report.ratios = [
        Ratio(f"verifier p={workers} (offline Runtime device) vs fresh interpreter x{workers}, "
              "seconds per job", fresh.seconds_per_program / service.seconds_per_program),
        Ratio(f"verifier p={workers} (device built in program) vs fresh interpreter "
              f"x{workers}, seconds per job",
              fresh.seconds_per_program / in_program.seconds_per_program),
    ]
    return report


def benchmark_startup(workload: Workload, counts: Sequence[int], rounds: int) -> Report:
    """Start-up and wall time of a fresh Verifier per worker count, on the same programs.

    Each count is started ``rounds`` times, the counts taking turns (1, 2, …, 16, 1, 2, …), so
    that a burst of load from elsewhere falls on all of them alike; the round with the shortest
    start-up is kept.
    """
    report = Report("start-up")
    with Verifier(1):  # unmeasured: the first start reads every module from disk
        pass
    best: dict[int, Measurement] = {}
    for round_number in range(rounds):
        for workers in counts:
            label = f"verifier p={workers}, round {round_number + 1}"
            print(f"  {report.workload}: {label} ...", file=sys.stderr, flush=True)
            made = measure_verifier(workload, workers)
            kept = best.get(workers)
            if kept is None or (made.startup_seconds or 0.0) < (kept.startup_seconds or 0.0):
                best[workers] = made
    for workers in counts:
        made = best[workers]
        report.rows.append(made)
        report.notes.append(f"verifier p={workers}: best start-up of {rounds}; wall "
                            f"{contention_note(made)}")
    fewest = min(report.rows, key=lambda m: m.workers)
    most = max(report.rows, key=lambda m: m.workers)
    if most.workers > fewest.workers:
        growth = (most.startup_seconds or 0.0) / (fewest.startup_seconds or float("inf"))
        report.ratios.append(Ratio(f"start-up {most.workers} / {fewest.workers} workers",
                                   growth, f"<= {MAX_STARTUP_GROWTH:g}x",
                                   growth <= MAX_STARTUP_GROWTH))
    return report


# -- output --------------------------------------------------------------------------------------
HEADER = ("workload", "method", "workers", "programs", "passed", "wall s", "programs/s",
          "s/program")


def table_rows(reports: Sequence[Report]) -> list[tuple[str, ...]]:
    return [(m.workload, m.method, str(m.workers), str(m.programs), str(m.passed),
             f"{m.wall_seconds:.2f}", f"{m.programs_per_second:.2f}",
             f"{m.seconds_per_program:.4f}")
            for report in reports for m in report.rows]


def format_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = []
    for row in [HEADER, *rows]:
        cells = [cell.ljust(w) if i < 2 else cell.rjust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


STARTUP_HEADER = ("workers", "start-up s", "others' CPU-s", "wall s", "programs", "passed",
                  "programs/s")


def startup_table(report: Report) -> str:
    """The start-up workload's own table: start-up and wall time per worker count.

    "others' CPU-s" is what other processes on the machine used while the Verifier started.
    """
    rows = [(str(m.workers), f"{m.startup_seconds or 0.0:.2f}",
             "?" if m.startup_other_cpu_seconds is None else f"{m.startup_other_cpu_seconds:.1f}",
             f"{m.wall_seconds:.2f}", str(m.programs), str(m.passed),
             f"{m.programs_per_second:.2f}")
            for m in report.rows]
    widths = [max(len(row[i]) for row in [STARTUP_HEADER, *rows])
              for i in range(len(STARTUP_HEADER))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
             for row in [STARTUP_HEADER, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_report(reports: Sequence[Report]) -> str:
    parts = [format_table(table_rows(reports)), ""]
    for report in reports:
        if report.workload == "start-up":
            parts += ["start-up (bell programs on each fresh Verifier):", startup_table(report), ""]
    parts.append("ratios:")
    for report in reports:
        for ratio in report.ratios:
            target = "" if ratio.target is None else (
                f" (target {ratio.target}) " + ("met" if ratio.met else "NOT MET"))
            parts.append(f"  {report.workload}: {ratio.name}: {ratio.value:.2f}{target}")
    parts.append("")
    parts.append("notes:")
    parts.append(f"  machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                 f"{platform.platform()}")
    for report in reports:
        parts.extend(f"  {report.workload}: {note}" for note in report.notes)
    return "\n".join(parts)


def write_json(path: Path, reports: Sequence[Report], args: argparse.Namespace) -> None:
    data = {
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "options": {"workload": args.workload, "repeat": args.repeat, "workers": args.workers,
                    "fake_repeat": args.fake_repeat, "startup_rounds": args.startup_rounds,
                    "device": args.device, "data": str(args.data)},
        "workloads": {
            report.workload: {"rows": [m.to_dict() for m in report.rows],
                              "ratios": [asdict(r) for r in report.ratios],
                              "notes": report.notes}
            for report in reports},
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# -- command line --------------------------------------------------------------------------------
def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def worker_counts(text: str) -> list[int]:
    """``4`` or ``1,2,4,8,16``: each a positive integer, in the order given."""
    return [positive_int(part.strip()) for part in text.split(",")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload",
                        choices=("bell", "bell-transpile", "humaneval", "fake-sampler",
                                 "schedule", "startup", "all"),
                        default="all")
    parser.add_argument("--repeat", type=positive_int, default=40,
                        help="how many times the bell program runs (default 40)")
    parser.add_argument("--workers", type=worker_counts, default=[os.cpu_count() or 1],
                        help="programs at once for the fresh interpreter and the Verifier, "
                             "or several counts, comma-separated (default: the CPU count)")
    parser.add_argument("--startup-rounds", type=positive_int, default=3,
                        help="start-ups per worker count in the startup workload; the "
                             "shortest is kept (default 3)")
    parser.add_argument("--fake-repeat", type=positive_int, default=8,
                        help="how many times the fake-sampler job runs (default 8)")
    parser.add_argument("--device", default="sherbrooke",
                        help="fake device of the fake-sampler workload (default sherbrooke)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="Qiskit-HumanEval task file (default: %(default)s)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def run_workloads(args: argparse.Namespace, workers: int) -> list[Report]:
    """Every workload asked for but ``startup``, at one worker count."""
    reports = []
    for name in ("bell", "bell-transpile"):
        if args.workload in (name, "all"):
            reports.append(benchmark_bell(bell_workload(args.repeat, name), workers))
    if args.workload in ("fake-sampler", "all"):
        reports.append(benchmark_fake_sampler(args.device, args.fake_repeat, workers))
    if args.workload in ("humaneval", "all"):
        workload = humaneval_workload(args.data.resolve())
        if workload is not None:
            reports.append(benchmark_humaneval(workload, workers))
    if args.workload in ("schedule", "all"):
        workload = humaneval_workload(args.data.resolve())
        if workload is not None:
            reports.append(benchmark_schedule(workload, workers))
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reports = [report for workers in args.workers for report in run_workloads(args, workers)]
    if args.workload in ("startup", "all"):
        reports.append(benchmark_startup(bell_workload(args.repeat), args.workers,
                                         args.startup_rounds))
    if not reports:
        print("nothing was measured", file=sys.stderr)
        return 1
    print(format_report(reports))
    for report in reports:
        for ratio in report.ratios:
            if ratio.name.startswith("start-up "):
                print(f"{ratio.name}: {ratio.value:.2f}")
    if args.json:
        write_json(args.json, reports, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
