"""agents.ray on a Ray cluster of several nodes started on this machine (real raylets).

`LocalCluster` starts a head node holding no CPUs and two worker nodes of one CPU each, so a pool
of two workers has one worker on each node, and the replacement for a worker whose node was
removed can only start on a node added after it. Tests that remove a node add a fresh one, so
every test starts on two worker nodes. Nodes are removed and added on the main thread (Ray starts
a node only from there) while the pool works on another.

Pools use ``preload=()`` (zygotes without Qiskit preloaded: they start in about a second; the
bundled tasks used here pass that way too) except under ``qsandbox bench``, which uses its
defaults.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from agents.policy import Policy, Query, SamplingParams
from agents.ray import RayVerifier, RolloutPool
from agents.ray.actors import ActorHost, VerifierActor, ray_node_id
from agents.ray.cluster import LocalCluster
from agents.ray.scheduler import ActorPool
from agents.ray.wire import wire_item
from qsandbox_env import Outcome, Task, TaskSet, Verifier, load_tasks
from qsandbox_env.cli import main as cli_main
from tests.conftest import program_task

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

WRONG = "def solve():\n    return 'wrong'\n"


@pytest.fixture(scope="module")
def cluster():
    """Head (no CPUs) and two one-CPU worker nodes; the module's pools run on them."""
    if ray.is_initialized():
        ray.shutdown()  # a session another module left: this module's pools use the cluster
    with LocalCluster(2) as local:
        yield local
        ray.shutdown()


@pytest.fixture
def on_cluster(cluster):
    """The driver connected to ``cluster`` (again, after a test whose pool shut the session)."""
    if not ray.is_initialized():
        ray.init(address=cluster.address, log_to_driver=False)
    assert len(cluster.node_ids) == 2
    return cluster


@pytest.fixture(scope="module")
def bundled() -> TaskSet:
    return load_tasks("bundled")


def sleepy_task(index: int, seconds: float) -> Task:
    """A program task that takes ``seconds`` and passes with the answer ``solve() == index``."""
    return program_task(
        f"    import time\n    time.sleep({seconds})\n    assert candidate() == {index}",
        task_id=f"sleepy/{index}",
    )


def answer(index: int) -> str:
    return f"def solve():\n    return {index}\n"


def in_background(call: Callable[[], Any]) -> Future:
    """``call()`` on a thread of its own, so this thread can change the cluster meanwhile."""
    executor = ThreadPoolExecutor(1)
    future = executor.submit(call)
    executor.shutdown(wait=False)
    return future


def wait_until(condition: Callable[[], bool], future: Future, timeout: float = 300) -> None:
    """Wait for ``condition`` while ``future`` runs; fail if the run ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if future.done():
            future.result()  # raises the run's error, if any
            pytest.fail("the run ended before the node could be removed mid-run")
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


def replace_node(cluster: LocalCluster, node_id: str) -> str:
    """Remove ``node_id`` (a machine lost) and start a fresh node; the new node's id."""
    cluster.remove_node(node_id)
    return cluster.add_node()


class NodeStampedOracle(Policy):
    """The canonical solution with a comment naming the Ray node that wrote it.

    ``delay``: seconds each ``generate`` call takes, like a model's generation time.
    """

    name = "node-oracle"
    replicable = True

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = float(delay)

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        time.sleep(self.delay)
        stamp = f"\n# written on node {ray_node_id()}\n"
        return [[query.task.canonical_solution + stamp] * n for query in queries]


def make_node_oracle(**options: str) -> NodeStampedOracle:
    return NodeStampedOracle(**options)


def writer_node(completion: str) -> str:
    return completion.rsplit("# written on node ", 1)[1].strip()


# -- work spreads over the nodes -------------------------------------------------------------
def test_the_cluster_capacity_check_counts_every_alive_node(on_cluster):
    with pytest.raises(ValueError) as caught:
        RayVerifier(workers=3, preload=())
    assert str(caught.value) == (
        "RayVerifier: 3 actors of (CPU 1) each cannot be placed: the Ray cluster's 3 alive "
        "node(s) (CPU 2 in all) hold 2; ask for workers <= 2, fewer CPUs per actor "
        "(num_cpus=...), or add nodes"
    )


def test_a_ray_verifiers_workers_spread_over_the_nodes_and_give_the_local_verdicts(on_cluster):
    tasks = [sleepy_task(i, 0.05) for i in range(8)]
    pairs = [(t, answer(i) if i % 3 else WRONG) for i, t in enumerate(tasks)]
    with RayVerifier(preload=()) as remote:  # as many workers as the nodes hold: two
        worker_nodes = remote.worker_nodes
        verdicts = remote.verify_many(pairs)
        per_node = remote.completed_per_node
    with Verifier(workers=1, preload=()) as local:
        expected = local.verify_many(pairs)
    assert sorted(worker_nodes) == sorted(on_cluster.node_ids)  # one worker on each node
    assert sorted(per_node) == sorted(on_cluster.node_ids)
    assert all(count >= 1 for count in per_node.values())
    assert sum(per_node.values()) == len(pairs)
    assert [(v.task_id, v.outcome) for v in verdicts] == [(v.task_id, v.outcome) for v in expected]
    assert [v.passed for v in verdicts] == [bool(i % 3) for i in range(8)]


# -- a node lost, a node added ----------------------------------------------------------------
def test_a_node_removed_mid_run_loses_no_verdict_and_a_node_added_takes_over_its_share(
    on_cluster,
):
    tasks = [sleepy_task(i, 0.5) for i in range(30)]
    pairs = [(t, answer(i)) for i, t in enumerate(tasks)]
    with RayVerifier(workers=2, preload=()) as remote:
        lost = remote.worker_nodes[0]
        run = in_background(lambda: remote.verify_many(pairs))
        wait_until(lambda: remote.stats["completed"] >= 4, run)
        added = replace_node(on_cluster, lost)
        verdicts = run.result(timeout=600)
        stats, per_node = remote.stats, remote.completed_per_node
        worker_nodes = remote.worker_nodes
    survivor = next(node for node in on_cluster.node_ids if node != added)
    assert [v.task_id for v in verdicts] == [t.task_id for t in tasks]
    assert [v.outcome for v in verdicts] == [Outcome.PASSED] * len(tasks)
    assert sorted(worker_nodes) == sorted([survivor, added])  # the replacement is on the new node
    assert per_node[added] >= 1  # and it verified part of the batch there
    assert set(per_node) <= {lost, survivor, added}
    assert sum(per_node.values()) == stats["completed"] == len(tasks)  # one verdict per item
    assert stats["actors_replaced"] == 1
    # Only what the lost worker held was sent again: at most max_in_flight (2) items.
    assert 1 <= stats["items_resent"] <= 2


def test_when_every_node_is_lost_the_unverified_items_say_so_and_the_verified_are_kept(
    on_cluster,
):
    tasks = [sleepy_task(i, 0.5) for i in range(20)]
    with RayVerifier(workers=2, preload=(), start_timeout=30) as remote:
        run = in_background(
            lambda: remote.verify_many([(t, answer(i)) for i, t in enumerate(tasks)])
        )
        wait_until(lambda: remote.stats["completed"] >= 4, run)
        try:
            for node in on_cluster.node_ids:
                on_cluster.remove_node(node)
            started = time.monotonic()
            verdicts = run.result(timeout=600)
            waited = time.monotonic() - started
            stats = remote.stats
        finally:
            while len(on_cluster.node_ids) < 2:  # the next tests start on two nodes again
                on_cluster.add_node()
    passed = [v for v in verdicts if v.passed]
    unverified = [v for v in verdicts if not v.passed]
    assert len(passed) == stats["completed"] >= 4  # every verdict that arrived is kept
    assert unverified and {v.outcome for v in unverified} == {Outcome.SANDBOX}
    assert unverified[0].detail == (
        "RayVerifier: no Ray actor could be started within start_timeout=30 s to replace the 2 "
        "lost; the cluster's 1 alive node(s) have 0 of 0 CPUs free (nodes lost, or other jobs "
        "hold the CPUs); add nodes or free the cluster, then run the items again"
    )
    assert waited < 120  # it did not wait for nodes that never came
    assert stats["actors_replaced"] == 2


class LoggingVerifierActor(VerifierActor):
    """A `RayVerifier` worker that also appends ``<node id> start|done <task id>`` to ``log``
    around each program it verifies, so a test can count what ran where."""

    def __init__(self, log: str, **verifier_kwargs: Any) -> None:
        super().__init__(**verifier_kwargs)
        self.log = log

    def verify(self, item: dict[str, Any]) -> dict[str, Any]:
        self._write("start", item)
        verdict = super().verify(item)
        self._write("done", item)
        return verdict

    def _write(self, event: str, item: dict[str, Any]) -> None:
        with open(self.log, "a") as log:  # one short line per write: appends do not interleave
            log.write(f"{ray_node_id()} {event} {item['task']['task_id']}\n")


def test_after_a_node_is_lost_no_program_whose_verdict_arrived_runs_again(on_cluster, tmp_path):
    log = tmp_path / "verified.log"
    host = ray.remote(ActorHost).options(num_cpus=1)
    options = {"workers": 1, "timeout": 60.0, "preload": ()}
    pool = ActorPool(
        lambda: host.remote(LoggingVerifierActor, (str(log),), options),
        2,
        concurrency=1,
        max_in_flight=2,
        max_retries=2,
        start_timeout=300,
        retry_timeouts=False,
        label="test",
    )
    tasks = [sleepy_task(i, 0.3) for i in range(16)]
    items = [wire_item(task, answer(i), None) for i, task in enumerate(tasks)]
    arrived: list[int] = []
    try:
        lost = pool.worker_nodes[0]
        run = in_background(
            lambda: pool.run(items, "verify", [300.0] * 16, lambda i, _: arrived.append(i))
        )
        wait_until(lambda: len(arrived) >= 4, run)
        before_loss = {tasks[index].task_id for index in list(arrived)}
        added = replace_node(on_cluster, lost)
        results = run.result(timeout=600)
        stats = dict(pool.stats)
    finally:
        pool.close()
    lines = [line.split() for line in log.read_text().splitlines()]
    starts = Counter(task_id for _, event, task_id in lines if event == "start")
    first_node = {}
    for node, event, task_id in lines:
        if event == "start":
            first_node.setdefault(task_id, node)
    again = {task_id for task_id, count in starts.items() if count > 1}
    assert [r["outcome"] for r in results] == ["passed"] * 16  # every item one verdict
    assert sorted(starts) == sorted(t.task_id for t in tasks)  # every program ran
    assert all(starts[task_id] == 1 for task_id in before_loss)  # a verdict in hand: never again
    # What ran again was running or queued on the lost node, and was resent: at most 2 items.
    assert all(first_node[task_id] == lost and starts[task_id] == 2 for task_id in again)
    assert len(again) <= stats["items_resent"] <= 2
    assert {node for node, _, _ in lines} <= {lost, added, *on_cluster.node_ids}


# -- RolloutPool -------------------------------------------------------------------------------
def test_rollout_pool_workers_generate_on_every_node_and_a_lost_node_loses_no_trajectory(
    on_cluster, bundled
):
    ids = list(bundled)[:24]
    with RolloutPool(
        NodeStampedOracle(delay=0.5), bundled, workers=2, batch_size=1, preload=()
    ) as pool:
        lost = pool.worker_nodes[0]
        run = in_background(lambda: pool.rollout(ids))
        wait_until(lambda: pool.stats["completed"] >= 4, run)
        added = replace_node(on_cluster, lost)
        trajectories = run.result(timeout=600)
        stats, per_node = pool.stats, pool.completed_per_node
    survivor = next(node for node in on_cluster.node_ids if node != added)
    writers = Counter(writer_node(t.completion) for t in trajectories)
    assert [(t.task_id, t.sample, t.attempt) for t in trajectories] == [(i, 0, 1) for i in ids]
    assert all(t.passed for t in trajectories)
    assert writers[lost] >= 1 and writers[survivor] >= 1  # both nodes worked before the loss
    assert writers[added] >= 1  # the node added mid-run took a share
    assert set(writers) == {lost, survivor, added}
    assert per_node == dict(writers)  # each batch counted once, where its trajectory was made
    assert stats["completed"] == len(ids)  # one batch of one task each, each once
    assert (stats["actors_replaced"], stats["items_resent"] <= 2) == (1, True)


# -- qsandbox bench --ray ADDRESS ----------------------------------------------------------------
@pytest.fixture
def node_oracle(monkeypatch):
    """The ``node-oracle`` agent, registered in this process only (as a user's plugin would be)."""
    from agents import policy

    monkeypatch.setitem(policy.POLICIES, "node-oracle", "tests.test_ray_cluster:make_node_oracle")


def test_qsandbox_bench_with_ray_at_the_clusters_address_generates_on_every_node(
    cluster, node_oracle, tmp_path
):
    ray.shutdown()  # the command connects to the address itself, as from another machine
    out = tmp_path / "run"
    argv = ["bench", "--agent", "node-oracle", "--tasks", "bundled", "--limit", "8"]
    argv += ["--out", str(out), "--ray", cluster.address, "--workers", "2", "--no-progress"]
    assert cli_main(argv) == 0
    assert not ray.is_initialized()  # the command's own session ended with it
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["samples"], summary["passed_samples"]) == (8, 8)
    # Two batches of four tasks, one on each worker: each node wrote four samples.
    writers = Counter(writer_node(s["completion"]) for s in samples)
    assert sorted(writers) == sorted(cluster.node_ids)
    assert sorted(writers.values()) == [4, 4]


def test_the_cluster_leaves_no_address_for_other_processes_to_join(cluster):
    from ray._common.utils import get_ray_address_file

    path = pathlib.Path(get_ray_address_file(None))
    assert not (path.exists() and path.read_text().strip() == cluster.address)
    assert os.environ.get("RAY_ADDRESS") != cluster.address
