"""Ray scaling: `RayVerifier` with 1, 2, ... workers against the local `Verifier`, same programs.

Every method verifies the *same* (task, completion) pairs in one run, side by side:

- ``local Verifier p=k``: ``Verifier(workers=k)`` in this process (k warm zygotes).
- ``RayVerifier workers=k``: ``RayVerifier(workers=k)`` on a local Ray started by this script
  (``num_cpus`` = the machine's cores, no dashboard); each actor owns a ``Verifier(workers=1)``.
  With ``--nodes N`` the Ray is a cluster of N nodes on this machine instead (`LocalCluster`: a
  raylet per node, ``--cpus-per-node`` CPUs each, default cores / N; the head holds none), so
  the actors spread over nodes as on a real cluster; the table then says how many programs
  each node's actors verified.

Pools are started and given one unmeasured program before the clock starts (zygote start-up is
not in the timings); each pool then verifies the whole workload ``--rounds`` times. Printed per
row: the median round's programs/s (and the best round's), the speed-up of the median over the
same method with one worker, and the scaling efficiency (speed-up / workers: 1.0 means each
added actor adds a whole actor's throughput); per k, Ray's throughput as a fraction of the local
Verifier's (its overhead).

Workloads (the programs of ``benchmarks/sandbox_throughput.py``):

- ``bell-transpile`` (default): a Bell circuit transpiled for Aer and run, ``--repeat`` times.
- ``humaneval``: the canonical solutions of Qiskit-HumanEval (``--data``).

Run from the repository root:

    PYTHONPATH=. python benchmarks/ray_scaling.py
    PYTHONPATH=. python benchmarks/ray_scaling.py --workload humaneval --workers 1,2
    PYTHONPATH=. python benchmarks/ray_scaling.py --nodes 2 --workers 1,2

Timings share the machine with whatever else runs: the load average before each pool's rounds is
printed, and a row measured while the machine was busier than its core count is marked
DISTURBED. On a busy machine the best round says more about what the method can do than the
median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.sandbox_throughput import (
    DEFAULT_DATA,
    Workload,
    bell_workload,
    humaneval_workload,
)
from qsandbox_env import Verifier
from qsandbox_env.verifier import Verdict

CORES = os.cpu_count() or 1


@dataclass
class Row:
    """Timed rounds of one method with ``workers`` actors or zygotes."""

    method: str
    workers: int
    programs: int
    passed: int  # in the least successful round
    round_seconds: list[float]
    load_before: float
    per_node: list[int] = field(default_factory=list)  # programs by node, all rounds (Ray rows)

    @property
    def programs_per_second(self) -> float:
        return self.programs / statistics.median(self.round_seconds)

    @property
    def best_programs_per_second(self) -> float:
        return self.programs / min(self.round_seconds)

    @property
    def disturbed(self) -> bool:
        return self.load_before > CORES


def measure(
    method: str, workers: int, verify_many: Callable, workload: Workload, rounds: int
) -> Row:
    verify_many(workload.pairs[:1])  # warm-up, unmeasured
    load = os.getloadavg()[0]
    seconds, passed = [], len(workload.pairs)
    for _ in range(rounds):
        started = time.perf_counter()
        verdicts: list[Verdict] = verify_many(workload.pairs)
        seconds.append(time.perf_counter() - started)
        passed = min(passed, sum(v.passed for v in verdicts))
    return Row(method, workers, len(workload.pairs), passed, seconds, load)


def run_local(workload: Workload, workers: int, rounds: int) -> Row:
    with Verifier(workers=workers) as verifier:
        return measure("local Verifier", workers, verifier.verify_many, workload, rounds)


def run_ray(workload: Workload, workers: int, rounds: int, nodes: list[str]) -> Row:
    """``nodes``: the Ray node ids, in the order the table lists each node's programs."""
    from agents.ray import RayVerifier

    with RayVerifier(workers=workers) as remote:
        row = measure("RayVerifier", workers, remote.verify_many, workload, rounds)
        done = remote.completed_per_node
    row.per_node = [done.get(node, 0) for node in nodes]
    return row


def print_table(rows: list[Row]) -> None:
    base = {row.method: row for row in rows if row.workers == 1}
    local = {row.workers: row for row in rows if row.method == "local Verifier"}
    print(
        "| method | workers | programs | passed | median s | programs/s (best) | speed-up "
        "| efficiency | vs local | per node | load before |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        one = base.get(row.method)
        speedup = row.programs_per_second / one.programs_per_second if one else float("nan")
        same = local.get(row.workers)
        versus = row.programs_per_second / same.programs_per_second if same else float("nan")
        flag = " DISTURBED" if row.disturbed else ""
        print(
            f"| {row.method} | {row.workers} | {row.programs} | {row.passed} | "
            f"{statistics.median(row.round_seconds):.2f} | {row.programs_per_second:.2f} "
            f"({row.best_programs_per_second:.2f}) | {speedup:.2f}x | "
            f"{speedup / row.workers:.2f} | {versus:.2f} | "
            f"{'/'.join(map(str, row.per_node)) or '-'} | {row.load_before:.1f}{flag} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workload", choices=("bell-transpile", "humaneval"), default="bell-transpile"
    )
    parser.add_argument("--repeat", type=int, default=60, help="programs of bell-transpile")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--workers",
        "--actors",
        dest="workers",
        default="1,2",
        help="comma-separated worker counts (Ray actors, local sandboxes); --actors: older name",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per pool")
    parser.add_argument(
        "--nodes", type=int, default=0, help="Ray on a cluster of this many nodes on this machine"
    )
    parser.add_argument("--cpus-per-node", type=int, help="CPUs of each node (default cores/N)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.workers.split(",")]
    workload = (
        bell_workload(args.repeat, "bell-transpile")
        if args.workload == "bell-transpile"
        else humaneval_workload(args.data)
    )
    if workload is None:
        return 1
    warnings.simplefilter("ignore", RuntimeWarning)  # sandbox-layer notices, once per process
    import ray

    cluster, where = None, f"a local Ray of {CORES} CPUs"
    if args.nodes:
        from agents.ray.cluster import LocalCluster

        per_node = args.cpus_per_node or max(1, CORES // args.nodes)
        cluster = LocalCluster(args.nodes, cpus_per_node=per_node)
        ray.init(address=cluster.address, log_to_driver=False)
        where = f"a Ray cluster of {args.nodes} nodes on this machine, {per_node} CPU(s) each"
    else:
        ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    nodes = cluster.node_ids if cluster else [ray.get_runtime_context().get_node_id()]
    rows = []
    try:
        for k in counts:
            rows.append(run_local(workload, k, args.rounds))
            rows.append(run_ray(workload, k, args.rounds, nodes))
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    rows.sort(key=lambda r: (r.method != "local Verifier", r.workers))
    print(
        f"workload {workload.name}: {len(workload.pairs)} programs x {args.rounds} rounds, "
        f"{CORES} cores, {where}, "
        f"python {sys.version.split()[0]}"
    )
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
