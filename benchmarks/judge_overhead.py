"""What the separate judge costs: this checkout's Verifier against another checkout's, one run.

Since the task's test runs in a judge process of its own, each program costs a second fork and
its calls cross a socket as data. This benchmark runs the same workloads with the Verifier of this
checkout and with the Verifier of a baseline checkout (for example the last commit before the
judge, checked out with ``git worktree add /tmp/baseline <commit>``), each in a fresh interpreter
whose ``PYTHONPATH`` points at its checkout, one after the other, and prints them side by side:

- ``bell-transpile``: a Bell circuit transpiled for Aer and sampled (the program of
  ``benchmarks/sandbox_throughput.py``), ``--repeat`` times, per program at ``--workers``;
- ``humaneval``: the canonical solutions of Qiskit-HumanEval (``--data``), wall time at
  ``--workers``.

Zygote start-up is reported apart and left out of the timings. Run from the repository root:

    git worktree add /tmp/baseline <commit>
    python benchmarks/judge_overhead.py --baseline /tmp/baseline
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
DEFAULT_DATA = HERE.parent / "shared/datasets/qiskit_humaneval/dataset_qiskit_test_human_eval.json"

BELL_PROMPT = "from qiskit import QuantumCircuit, transpile\nfrom qiskit_aer import AerSimulator\n"
BELL_CODE = (
    "def bell_counts():\n"
    "    qc = QuantumCircuit(2)\n"
    "    qc.h(0)\n"
    "    qc.cx(0, 1)\n"
    "    qc.measure_all()\n"
    "    sim = AerSimulator(seed_simulator=7)\n"
    "    return sim.run(transpile(qc, sim), shots=1024).result().get_counts()\n"
)
BELL_TEST = (
    "def check(candidate):\n"
    "    counts = candidate()\n"
    "    assert set(counts) <= {'00', '11'}, counts\n"
    "    assert sum(counts.values()) == 1024\n"
)

# Runs inside the measured interpreter; prints one JSON line.
_MEASURE = r"""
import json, sys, time
from qsandbox_env import Task, Verifier, load_tasks
workload, workers, repeat, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if workload == "bell-transpile":
    task = Task("bench/bell", "", TEST, "bell_counts", format="program")
    pairs = [(task, PROMPT + CODE)] * repeat
else:
    tasks = load_tasks("qiskit-humaneval", path=data)
    pairs = [(task, task.canonical_solution) for task in tasks.values()]
started = time.perf_counter()
verifier = Verifier(workers=workers)
startup = time.perf_counter() - started
with verifier:
    verifier.verify(*pairs[0])
    started = time.perf_counter()
    verdicts = verifier.verify_many(pairs)
    wall = time.perf_counter() - started
print(json.dumps({"wall": wall, "startup": startup, "programs": len(pairs),
                  "passed": sum(v.passed for v in verdicts)}))
"""


def measure(checkout: Path, workload: str, workers: int, repeat: int, data: Path) -> dict:
    script = f"PROMPT = {BELL_PROMPT!r}\nCODE = {BELL_CODE!r}\nTEST = {BELL_TEST!r}\n" + _MEASURE
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    completed = subprocess.run(
        [sys.executable, "-c", script, workload, str(workers), str(repeat), str(data)],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{checkout}: {workload} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--baseline", type=Path, required=True, help="a checkout of the Verifier to compare with"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--workload", choices=("bell-transpile", "humaneval", "all"), default="all")
    args = parser.parse_args(argv)
    if not (args.baseline / "qsandbox_env").is_dir():
        parser.error(f"--baseline: {args.baseline} holds no qsandbox_env package")
    workloads = ["bell-transpile", "humaneval"] if args.workload == "all" else [args.workload]
    if "humaneval" in workloads and not args.data.is_file():
        print(f"skipping humaneval: {args.data} not found", file=sys.stderr)
        workloads.remove("humaneval")
    print("| workload | checkout | programs | passed | start-up s | wall s | s/program |")
    print("|---|---|---|---|---|---|---|")
    ratios = []
    for workload in workloads:
        rows = {}
        for label, checkout in (("baseline", args.baseline), ("this", HERE)):
            row = measure(checkout.resolve(), workload, args.workers, args.repeat, args.data)
            rows[label] = row
            print(
                f"| {workload} | {label} | {row['programs']} | {row['passed']} | "
                f"{row['startup']:.2f} | {row['wall']:.2f} | {row['wall'] / row['programs']:.4f} |"
            )
        ratios.append((workload, rows["this"]["wall"] / rows["baseline"]["wall"]))
    for workload, ratio in ratios:
        print(f"{workload}: this / baseline wall time: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
