"""Ray-parallel verification and rollouts (agents.ray) on a real local Ray.

One Ray session (2 CPUs) serves the whole module; each test starts its own small pool on it.
Most pools use ``preload=()`` with tiny tasks: the sandbox still forks one isolated child per
program, only without Qiskit preloaded, so actors start in about a second.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import pytest

from agents.policy import Policy, PolicyError, Query, SamplingParams
from agents.ray import (
    RayVerifier,
    RolloutPool,
    RolloutWorker,
    Trajectory,
    task_from_wire,
    task_to_wire,
)
from qsandbox_env import Budget, Outcome, Task, TaskSet, Verifier, load_tasks
from qsandbox_env.cli import main as cli_main
from qsandbox_env.env import QiskitCodeEnv
from tests.conftest import ROOT, humaneval_path, program_task, settle_shot_noise

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

CPUS = 2
WRONG = "def solve():\n    return 'wrong'\n"


@pytest.fixture(scope="module")
def ray_session():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def sleepy_task(index: int, seconds: float = 0.2) -> Task:
    """A program task that takes ``seconds`` and passes with the answer ``solve() == index``."""
    return program_task(
        f"    import time\n    time.sleep({seconds})\n    assert candidate() == {index}",
        task_id=f"sleepy/{index}",
    )


def answer(index: int) -> str:
    return f"def solve():\n    return {index}\n"


class ScriptedPolicy(Policy):
    """Sample 0 of every query is the canonical solution; later samples are wrong.

    A repair query (its prompt is the execution feedback) gets the canonical solution. Log-probs
    are one made-up value per line of the completion, so tests can tell them apart.
    """

    name = "scripted"

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        return [[text for text, _ in row] for row in self.generate_with_logprobs(queries, n)]

    def generate_with_logprobs(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[tuple[str, list[float]]]]:
        rows = []
        for query in queries:
            repair = query.prompt.startswith("Your code did not pass")
            texts = [query.task.canonical_solution if j == 0 or repair else WRONG for j in range(n)]
            rows.append([(t, [-0.5] * len(t.splitlines())) for t in texts])
        return rows


class HangingOncePolicy(ScriptedPolicy):
    """Hangs on the first call anywhere (the first to create ``marker``), then answers."""

    name = "hanging-once"

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def generate_with_logprobs(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[tuple[str, list[float]]]]:
        try:
            self.marker.touch(exist_ok=False)
        except FileExistsError:
            return super().generate_with_logprobs(queries, n, params)
        time.sleep(3600)
        raise AssertionError("unreachable: the pool kills this worker first")


# -- plain data -------------------------------------------------------------------------------
def test_a_task_with_metadata_travels_as_plain_data_and_comes_back_equal():
    task = Task("m/0", "def f():\n", "def check(c):\n    pass\n", "f", metadata={"k": [1]})
    wire = pickle.loads(pickle.dumps(task_to_wire(task)))
    back = task_from_wire(wire)
    assert back == task
    assert dict(back.metadata) == {"k": [1]}


# -- RayVerifier ------------------------------------------------------------------------------
@pytest.mark.dataset
@pytest.mark.slow
def test_ray_verifier_gives_the_local_verifiers_verdicts_on_humaneval_canonical(
    ray_session, verifier
):
    tasks = load_tasks(humaneval_path())
    pairs = [(task, task.canonical_solution) for task in tasks.values()]
    # A generous limit on both sides: on a busy 2-core machine a slow task can pass the default
    # 60 s on one side and not the other, which is load, not a difference between the two.
    local = settle_shot_noise(verifier, pairs, verifier.verify_many(pairs, timeout=300))
    with RayVerifier(workers=CPUS) as remote:
        distributed = remote.verify_many(pairs, timeout=300)
        distributed = settle_shot_noise(remote, pairs, distributed, timeout=300)

    def key(verdicts):
        return [(v.task_id, v.outcome, v.passed) for v in verdicts]

    assert key(distributed) == key(local)
    assert sum(v.passed for v in distributed) >= 141


def test_verify_many_keeps_input_order_across_actors(ray_session):
    tasks = [sleepy_task(i, 0.05) for i in range(8)]
    pairs = [(t, answer(i) if i % 3 else WRONG) for i, t in enumerate(tasks)]
    with RayVerifier(workers=2, preload=()) as remote:
        verdicts = remote.verify_many(pairs)
    assert [v.task_id for v in verdicts] == [t.task_id for t in tasks]
    assert [v.passed for v in verdicts] == [bool(i % 3) for i in range(8)]
    assert all(isinstance(v.outcome, Outcome) for v in verdicts)


def test_the_environment_steps_through_a_ray_verifier(ray_session, bundled):
    with RayVerifier(workers=1, preload=()) as remote:
        env = QiskitCodeEnv(bundled, verifier=remote)
        _, info = env.reset(seed=0)
        _, reward, terminated, _, step_info = env.step(bundled[info["task_id"]].canonical_solution)
    assert (reward, terminated, step_info["outcome"]) == (1.0, True, "passed")
    assert remote.target.spec == "aer"


def test_ray_verifier_reports_the_isolation_of_its_actors(ray_session):
    with RayVerifier(workers=1, preload=()) as remote:
        isolation = remote.isolation
    assert "scrubbed-environment" in isolation["active"]
    assert set(isolation) == {"active", "missing"}


def test_a_killed_actors_items_run_on_its_replacement_and_each_result_comes_once(ray_session):
    tasks = [sleepy_task(i, 0.3) for i in range(16)]
    with RayVerifier(workers=2, preload=()) as remote:
        victim = remote.actors[0]

        def kill_mid_batch():
            while remote.stats["completed"] < 3:
                time.sleep(0.02)
            ray.kill(victim)

        killer = threading.Thread(target=kill_mid_batch)
        killer.start()
        verdicts = remote.verify_many([(t, answer(i)) for i, t in enumerate(tasks)])
        killer.join()
        stats = remote.stats
        assert victim not in remote.actors
        assert remote.verify(tasks[0], answer(0)).passed  # the replacement serves
    assert [v.task_id for v in verdicts] == [t.task_id for t in tasks]
    assert [v.outcome for v in verdicts] == [Outcome.PASSED] * 16
    assert stats["actors_replaced"] == 1
    # Back-pressure: the killed actor held at most max_in_flight (2) of the 16 items.
    assert 1 <= stats["items_resent"] <= 2
    assert stats["completed"] == 16


class SharedActor:
    """An actor that works on two items at once; the item ``"kill"`` ends its process."""

    def ready(self) -> dict:
        return {"pid": os.getpid()}

    def call(self, method: str, payload: str) -> str:
        if payload == "kill":
            time.sleep(0.3)
            os._exit(3)
        time.sleep(2.0)
        return f"{payload} done by pid {os.getpid()}"

    def close(self) -> None:
        pass


def test_an_item_that_kills_its_actor_fails_alone_and_the_item_beside_it_completes(ray_session):
    from agents.ray.scheduler import ActorPool

    host = ray.remote(SharedActor).options(num_cpus=1, max_concurrency=2)
    pool = ActorPool(
        host.remote,
        1,
        concurrency=2,
        max_in_flight=2,
        max_retries=2,
        start_timeout=60,
        retry_timeouts=False,
        label="test",
    )
    try:
        # Both run at once on the one actor, so the first death cuts both short.
        innocent, killer = pool.run(["innocent", "kill"], "call", [60.0, 60.0])
        stats = dict(pool.stats)
    finally:
        pool.close()
    assert innocent.startswith("innocent done by pid ")
    assert killer.kind == "died"
    assert killer.detail.startswith("its Ray actor was lost 3 times while running it")
    # One death under both, then two with the killer alone on a fresh actor.
    assert stats["actors_replaced"] == 3
    assert stats["completed"] == 1


def test_an_item_past_item_timeout_gets_a_timeout_verdict_and_the_batch_completes(ray_session):
    slow = program_task("    import time\n    time.sleep(120)", task_id="slow/0")
    quick = [sleepy_task(i, 0.0) for i in range(4)]
    pairs = [(slow, "def solve():\n    pass\n")] + [(t, answer(i)) for i, t in enumerate(quick)]
    with RayVerifier(workers=2, preload=(), item_timeout=10, timeout=300) as remote:
        started = time.monotonic()
        verdicts = remote.verify_many(pairs)
        elapsed = time.monotonic() - started
        stats = remote.stats
    assert verdicts[0].outcome is Outcome.TIMEOUT
    assert verdicts[0].detail.startswith("no result within item_timeout=10 s on a Ray actor")
    assert [v.passed for v in verdicts[1:]] == [True] * 4
    assert elapsed < 100  # the program alone would take 120 s
    assert (stats["items_timed_out"], stats["actors_replaced"]) == (1, 1)


def test_more_actors_than_the_cluster_holds_raise_before_anything_starts(ray_session):
    with pytest.raises(ValueError) as caught:
        RayVerifier(workers=3, preload=())
    assert str(caught.value) == (
        "RayVerifier: 3 actors of (CPU 1) each cannot be placed: the Ray cluster's 1 alive "
        "node(s) (CPU 2 in all) hold 2; ask for workers <= 2, fewer CPUs per actor "
        "(num_cpus=...), or add nodes"
    )


def test_an_actor_larger_than_any_node_is_refused(ray_session):
    with pytest.raises(ValueError, match=r"hold 0; ask for workers <= 0"):
        RayVerifier(workers=1, num_cpus=4, preload=())


def test_actors_that_cannot_start_because_the_cluster_is_busy_raise_after_start_timeout(
    ray_session,
):
    with RayVerifier(workers=2, preload=()):
        started = time.monotonic()
        with pytest.raises(RuntimeError) as caught:
            RayVerifier(workers=1, preload=(), start_timeout=2)
        assert time.monotonic() - started < 30
    assert str(caught.value) == (
        "RayVerifier: 1 of 1 Ray actors did not start within 2 s; the cluster has 0 of 2 CPUs "
        "free (other jobs or actors hold the rest). Ask for fewer actors, free the cluster, or "
        "raise start_timeout"
    )


def test_an_unknown_verifier_option_is_refused_before_ray_is_touched():
    expected = r"^RayVerifier: unknown Verifier option\(s\) \['paralel'\]"
    with pytest.raises(TypeError, match=expected):
        RayVerifier(paralel=2)


def test_a_broker_object_is_refused_because_it_would_carry_credentials_to_actors():
    with pytest.raises(TypeError, match=r"^RayVerifier: broker= cannot be sent to Ray actors"):
        RayVerifier(broker=object())


def test_the_actors_spend_one_qpu_budget_and_a_replaced_actor_adds_nothing_to_it(ray_session):
    from tests.test_broker import PRELOAD, SAMPLER_TEST, sampler_program

    task = program_task(SAMPLER_TEST)
    # ibm:fake_* devices run in the runtime's local mode on each actor: no account needed.
    with RayVerifier(
        workers=2, target="ibm:fake_manila", budget=Budget(jobs=1), preload=PRELOAD
    ) as remote:
        first = remote.verify_many([(task, sampler_program(a)) for a in (1.0, 1.1)])
        before = ray.get([actor.call.remote("budget", None) for actor in remote.actors])
        for actor in remote.actors:
            ray.kill(actor)
        later = remote.verify_many([(task, sampler_program(a)) for a in (1.2, 1.3)])
        stats = remote.stats
        reports = ray.get([actor.call.remote("budget", None) for actor in remote.actors])
        (ledger,) = remote._open_pool()._companions
    with pytest.raises(ray.exceptions.RayActorError):  # closing the pool ended its ledger
        ray.get(ledger.spent.remote(), timeout=60)
    # Split evenly, one job over two actors would be none each; shared, one program gets it.
    assert sorted(v.outcome.value for v in first) == ["budget", "passed"]
    assert [r["usage"]["requests"] for r in before] == [1, 1]  # one program on each actor
    assert [v.outcome for v in later] == [Outcome.BUDGET] * 2
    assert all(v.detail.startswith("QPU budget exhausted: 1 of 1 jobs used") for v in later)
    assert stats["actors_replaced"] == 2
    assert [r["budget"]["jobs"] for r in reports] == [1, 1]
    assert [r["spent"]["jobs"] for r in reports] == [1, 1]  # the pool's count, on either actor


def test_a_bad_verifier_option_value_raises_its_own_error_from_the_actor(ray_session):
    with pytest.raises(ValueError) as caught:
        RayVerifier(workers=1, memory="lots")
    assert str(caught.value) == "memory: expected a size like '4GiB' or '512MiB', got 'lots'"


def test_a_closed_ray_verifier_refuses_work(ray_session):
    remote = RayVerifier(workers=1, preload=())
    remote.close()
    with pytest.raises(ValueError, match=r"^this RayVerifier is closed; create a new one$"):
        remote.verify(sleepy_task(0), answer(0))


def test_closing_leaves_running_a_ray_session_it_did_not_start(ray_session):
    with RayVerifier(workers=1, preload=()) as remote:
        assert remote.verify(sleepy_task(1, 0.0), answer(1)).passed
    assert ray.is_initialized()


START_AND_STOP = """
import ray
from agents.rollout import RayVerifier
from qsandbox_env import Task
task = Task("add/0", "def add(a, b):\\n", "def check(f):\\n    assert f(2, 3) == 5\\n", "add")
with RayVerifier(workers=1, preload=()) as remote:
    print(ray.is_initialized(), remote.verify(task, "    return a + b\\n").passed)
print(ray.is_initialized())
"""


def test_without_a_session_ray_verifier_starts_a_local_ray_and_shuts_it_down_on_close():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, "-c", START_AND_STOP],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.stdout.split() == ["True", "True", "False"], run.stderr[-2000:]


def test_without_ray_installed_the_error_gives_the_pip_command():
    script = (
        "import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n"
        "from agents.rollout import RayVerifier\nRayVerifier()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.stderr.strip().splitlines()[-1] == (
        'ImportError: Ray-parallel workers need Ray; install it with: pip install "qsandbox[ray]"'
    )


def test_no_cluster_at_the_address_raises_a_runtime_error_saying_how_to_start_one():
    # Nothing listens on port 1; Ray Client gives up after about 30 s. ('auto' is no test here:
    # it finds any Ray running on this machine, another test's included.)
    script = "from agents.rollout import RayVerifier\nRayVerifier('ray://127.0.0.1:1')\n"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "RuntimeError: RayVerifier: could not connect to Ray at 'ray://127.0.0.1:1': "
    )
    assert last.endswith(
        "Start a cluster with `ray start --head` (then use address='auto'), give its address, "
        "or give no address for a new local Ray"
    )


# -- the command line -------------------------------------------------------------------------
def test_qsandbox_bench_with_ray_verifies_on_ray_actors(ray_session, tmp_path):
    out = tmp_path / "run"
    argv = ["bench", "--agent", "oracle", "--tasks", "bundled", "--limit", "2", "--out", str(out)]
    code = cli_main([*argv, "--ray", "--workers", "1", "--no-progress"])
    summary = json.loads((out / "summary.json").read_text())
    assert (code, summary["samples"], summary["passed_samples"]) == (0, 2, 2)


def test_qsandbox_bench_with_ray_reports_a_cluster_too_small(ray_session, tmp_path, capsys):
    argv = ["bench", "--agent", "oracle", "--tasks", "bundled", "--out", str(tmp_path / "run")]
    code = cli_main([*argv, "--ray", "--workers", "3", "--no-progress"])
    expected = "--ray: RolloutPool: 3 actors of (CPU 1) each cannot be placed"
    assert (code, expected in capsys.readouterr().err) == (2, True)


class PidStampedOracle(Policy):
    """The canonical solution with a comment naming the process that wrote it.

    ``exit_on``: the process ends at once when asked about that task (a worker lost mid-batch,
    every time).
    """

    name = "pid-oracle"
    replicable = True

    def __init__(self, exit_on: str = "") -> None:
        self.exit_on = exit_on

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        if any(query.task.task_id == self.exit_on for query in queries):
            os._exit(3)
        stamp = f"\n# written by pid {os.getpid()}\n"
        return [[query.task.canonical_solution + stamp] * n for query in queries]


def make_pid_oracle(**options: str) -> PidStampedOracle:
    return PidStampedOracle(**options)


@pytest.fixture
def pid_oracle(monkeypatch):
    """The ``pid-oracle`` agent, registered in this process only (as a user's plugin would be)."""
    from agents import policy

    monkeypatch.setitem(policy.POLICIES, "pid-oracle", "tests.test_rollout:make_pid_oracle")


def lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def writer_pids(samples: list[dict]) -> set[int]:
    return {int(s["completion"].rsplit("pid ", 1)[1]) for s in samples}


def test_qsandbox_bench_with_ray_generates_on_the_workers_and_resumes_with_them(
    ray_session, pid_oracle, tmp_path
):
    out = tmp_path / "run"
    argv = ["bench", "--agent", "pid-oracle", "--tasks", "bundled", "--limit", "3", "-n", "2"]
    argv += ["--out", str(out), "--ray", "--workers", "1", "--no-progress"]
    assert cli_main(argv) == 0
    samples, results = lines(out / "samples.jsonl"), lines(out / "results.jsonl")
    assert len(samples) == len(results) == 6
    assert all(r["passed"] for r in results)
    assert os.getpid() not in writer_pids(samples)  # the registered agent ran on a worker

    # A run killed part-way: two samples without a verdict, two samples never written.
    keep = samples[:4]
    (out / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in keep))
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results[:2]))
    (out / "summary.json").unlink()
    assert cli_main(argv) == 0
    samples, results = lines(out / "samples.jsonl"), lines(out / "results.jsonl")
    assert samples[:4] == keep  # nothing generated twice
    keys = [(s["task_id"], s["sample"]) for s in samples]
    assert sorted(keys) == sorted({(r["task_id"], r["sample"]) for r in results})
    assert len(set(keys)) == len(results) == 6  # each verdict once
    assert os.getpid() not in writer_pids(samples[4:])
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["samples"], summary["passed_samples"]) == (6, 6)


def test_qsandbox_bench_with_ray_keeps_what_completed_when_a_batch_keeps_losing_its_worker(
    ray_session, pid_oracle, tmp_path, capsys
):
    tasks = list(load_tasks("bundled"))[:5]  # two batches of 4 and 1 task
    out = tmp_path / "run"
    argv = ["bench", "--agent", "pid-oracle", "--tasks", "bundled", "--limit", "5"]
    argv += ["--agent-option", f"exit_on={tasks[4]}"]
    argv += ["--out", str(out), "--ray", "--workers", "1", "--no-progress"]
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert "1 task(s) could not be rolled out" in error
    assert "the samples that completed are saved: rerun the same command" in error
    saved = [(s["task_id"], s["sample"]) for s in lines(out / "samples.jsonl")]
    assert sorted(saved) == sorted((t, 0) for t in tasks[:4])
    assert len(lines(out / "results.jsonl")) == 4


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory) -> str:
    pytest.importorskip("transformers")
    from tests.test_policies import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("replica"), "chat")


@pytest.fixture
def hf_loads(monkeypatch) -> list[str]:
    """The models this process loads (Ray workers are other processes and load their own)."""
    from agents.policies import hf

    loaded: list[str] = []
    real_init = hf.HFPolicy.__init__

    @functools.wraps(real_init)
    def counting_init(self, model, **options):
        loaded.append(model)
        real_init(self, model, **options)

    monkeypatch.setattr(hf.HFPolicy, "__init__", counting_init)
    return loaded


@pytest.mark.torch
def test_qsandbox_bench_with_gpu_workers_generates_with_a_replica_on_each_worker(
    ray_session, tiny_hf_model, hf_loads, tmp_path, monkeypatch
):
    # A relative model path, as users type it: the workers get it made absolute.
    monkeypatch.chdir(pathlib.Path(tiny_hf_model).parent)
    spec = f"hf:./{pathlib.Path(tiny_hf_model).name}"
    argv = ["bench", "--agent", spec, "--tasks", "bundled", "--limit", "3", "-n", "2"]
    argv += ["--temperature", "0", "--max-new-tokens", "6", "--device", "cpu", "--no-progress"]
    replicas, local = tmp_path / "replicas", tmp_path / "local"
    code = cli_main(
        [*argv, "--out", str(replicas), "--ray", "--workers", "2", "--gpus-per-worker", "0"]
    )
    assert code == 0
    assert hf_loads == []  # the driver loaded no model: the two workers did
    assert cli_main([*argv, "--out", str(local), "--workers", "1"]) == 0
    assert len(hf_loads) == 1  # the same run without Ray loads it here (the count works)

    def by_key(run: pathlib.Path) -> dict[tuple[str, int], str]:
        return {(s["task_id"], s["sample"]): s["completion"] for s in lines(run / "samples.jsonl")}

    # Greedy decoding: every replica writes what the driver's model writes.
    assert by_key(replicas) == by_key(local)
    assert len(by_key(replicas)) == 6
    verdicts = {(r["task_id"], r["sample"]) for r in lines(replicas / "results.jsonl")}
    assert verdicts == set(by_key(replicas))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--gpus-per-worker", "0"], "--gpus-per-worker places model replicas on Ray workers"),
        (["--ray", "--gpus-per-worker", "-1"], "--gpus-per-worker: expected a number of GPUs >= 0"),
    ],
)
def test_gpus_per_worker_needs_ray_and_a_count(extra, expected, tmp_path, capsys):
    argv = ["bench", "--agent", "hf:gpt2", "--tasks", "bundled", "--out", str(tmp_path / "r")]
    assert cli_main([*argv, *extra]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_gpus_per_worker_is_refused_for_an_agent_without_a_model(tmp_path, capsys):
    argv = ["bench", "--agent", "oracle", "--tasks", "bundled", "--out", str(tmp_path / "r")]
    assert cli_main([*argv, "--ray", "--gpus-per-worker", "1"]) == 2
    assert "--gpus-per-worker is for an hf: agent" in capsys.readouterr().err


@pytest.mark.torch
def test_gpu_workers_with_a_missing_model_fail_on_the_driver_before_ray_starts(tmp_path, capsys):
    argv = ["bench", "--agent", "hf:./no-such-model", "--tasks", "bundled"]
    argv += ["--out", str(tmp_path / "r"), "--ray", "--gpus-per-worker", "0", "--no-progress"]
    assert cli_main(argv) == 2
    assert "no model directory at './no-such-model'" in capsys.readouterr().err
    assert not (tmp_path / "r" / "samples.jsonl").exists()


@pytest.mark.torch
def test_gpu_workers_on_a_cluster_without_gpus_are_refused_naming_what_is_missing(
    ray_session, tiny_hf_model, tmp_path, capsys
):
    argv = ["bench", "--agent", f"hf:{tiny_hf_model}", "--tasks", "bundled", "--limit", "1"]
    argv += ["--out", str(tmp_path / "r"), "--ray", "--workers", "1", "--gpus-per-worker", "1"]
    assert cli_main([*argv, "--no-progress"]) == 2
    assert "--ray: RolloutPool: 1 actors of (CPU 1, GPU 1) each cannot be placed" in (
        capsys.readouterr().err
    )


def test_qsandbox_bench_with_ray_and_an_openai_agent_asks_the_server_from_the_workers(
    ray_session, tmp_path
):
    from tests.test_policies import ChatServer, canonical_answer

    server = ChatServer(canonical_answer)
    out = tmp_path / "run"
    argv = ["bench", "--agent", f"openai:tiny-coder@{server.base_url}", "--tasks", "bundled"]
    argv += ["--limit", "2", "-n", "2", "--out", str(out), "--ray", "--workers", "1"]
    try:
        assert cli_main([*argv, "--no-progress"]) == 0
    finally:
        server.close()
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["samples"], summary["passed_samples"]) == (4, 4)
    assert len(server.requests) == 2  # one request per task for both samples (n=2)
    assert {r["n"] for r in server.requests} == {2}


def test_rollout_pool_verifies_given_completions_like_the_local_verifier(ray_session, bundled):
    ids = list(bundled)[:3]
    pairs = [(bundled[t], bundled[t].canonical_solution) for t in ids]
    pairs += [(bundled[ids[0]], WRONG), (bundled[ids[1]], "def broken(:\n")]
    with RolloutPool(ScriptedPolicy(), bundled, workers=1, sandboxes_per_worker=2) as pool:
        remote = pool.verify_many(pairs)
    with Verifier(workers=2) as local:
        expected = local.verify_many(pairs)
    assert [v.outcome for v in remote] == [v.outcome for v in expected]
    assert [v.outcome for v in remote][:3] == [Outcome.PASSED] * 3
    assert [v.task_id for v in remote] == [t.task_id for t, _ in pairs]


def grpo_argv(tmp_path: pathlib.Path, workers: int) -> list[str]:
    """``qsandbox train grpo --ray`` on the GRPO demo's tiny model and tasks, one step."""
    pytest.importorskip("transformers")
    from agents.grpo import demo

    tasks = demo.demo_tasks()
    tokenizer = demo.demo_tokenizer(tasks)
    demo.demo_model(len(tokenizer)).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    records = [
        {"task_id": t.task_id, "prompt": t.prompt, "test": t.test, "entry_point": t.entry_point}
        for t in tasks.values()
    ]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return (
        f"train grpo --model {tmp_path / 'model'} --tasks {tmp_path / 'tasks.jsonl'} "
        f"--out {tmp_path / 'run'} --steps 1 --prompts-per-step 2 --group-size 4 "
        f"--micro-batch-size 8 --max-new-tokens 3 --no-tensorboard --ray --workers {workers}"
    ).split()


@pytest.mark.torch
def test_qsandbox_train_grpo_with_ray_trains_on_ray_verdicts(ray_session, tmp_path, capsys):
    code = cli_main(grpo_argv(tmp_path, workers=1))
    assert code == 0, capsys.readouterr().err[-2000:]
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 2  # header, step 1


@pytest.mark.torch
def test_qsandbox_train_grpo_with_ray_reports_a_cluster_too_small(ray_session, tmp_path, capsys):
    code = cli_main(grpo_argv(tmp_path, workers=3))
    expected = "--ray: RayVerifier: 3 actors of (CPU 1) each cannot be placed"
    assert (code, expected in capsys.readouterr().err) == (2, True)


def test_qsandbox_train_grpo_demo_refuses_ray_instead_of_ignoring_it(capsys):
    assert cli_main(["train", "grpo", "--demo", "--ray"]) == 2
    assert "--ray: the demo verifies in its own local sandboxes" in capsys.readouterr().err


# -- rollouts ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundled() -> TaskSet:
    return load_tasks("bundled")


def test_rollout_worker_returns_one_trajectory_per_sample_with_verdict_fields(bundled):
    first = list(bundled)[:2]
    with RolloutWorker(bundled, ScriptedPolicy()) as worker:
        trajectories = worker.run(first, n=2)
    assert [(t.task_id, t.sample, t.attempt) for t in trajectories] == [
        (first[0], 0, 1),
        (first[0], 1, 1),
        (first[1], 0, 1),
        (first[1], 1, 1),
    ]
    canonical, wrong = trajectories[0], trajectories[1]
    assert (canonical.reward, canonical.outcome, canonical.passed) == (1.0, "passed", True)
    assert (wrong.reward, wrong.passed) == (0.0, False)
    assert wrong.outcome in {o.value for o in Outcome} - {"passed"}
    assert canonical.prompt == bundled[first[0]].prompt
    assert canonical.messages[0]["role"] == "system"
    assert canonical.completion == bundled[first[0]].canonical_solution
    assert canonical.token_logprobs == (-0.5,) * len(canonical.completion.splitlines())
    assert canonical.policy == "scripted"


def test_rollout_worker_in_repair_mode_answers_the_feedback_and_records_each_attempt(bundled):
    task_id = next(iter(bundled))
    with RolloutWorker(bundled, ScriptedPolicy(), max_attempts=2) as worker:
        trajectories = worker.run([task_id], n=2)
    assert [(t.sample, t.attempt, t.passed) for t in trajectories] == [
        (0, 1, True),
        (1, 1, False),
        (1, 2, True),
    ]
    repair = trajectories[2]
    assert repair.prompt.startswith("Your code did not pass")
    assert [m["role"] for m in repair.messages] == ["system", "user", "assistant", "user"]
    assert repair.messages[2]["content"] == WRONG


def test_rollout_pool_returns_every_tasks_trajectories_in_task_order(ray_session, bundled):
    ids = list(bundled)[:5]
    with RolloutPool(ScriptedPolicy(), bundled, workers=2, batch_size=2) as pool:
        trajectories = pool.rollout(ids, n=2)
    assert all(isinstance(t, Trajectory) for t in trajectories)
    assert [(t.task_id, t.sample) for t in trajectories] == [(i, s) for i in ids for s in (0, 1)]
    assert [t.reward for t in trajectories] == [1.0, 0.0] * 5


def test_rollout_pool_resends_a_batch_whose_worker_hung_past_item_timeout(
    ray_session, bundled, tmp_path
):
    ids = list(bundled)[:2]
    policy = HangingOncePolicy(tmp_path / "hung")
    with RolloutPool(policy, bundled, workers=1, item_timeout=15) as pool:
        trajectories = pool.rollout(ids)
        stats = pool.stats
    assert [(t.task_id, t.passed) for t in trajectories] == [(i, True) for i in ids]
    assert (stats["items_timed_out"], stats["actors_replaced"], stats["items_resent"]) == (1, 1, 1)


class UnreachablePolicy(Policy):
    name = "unreachable"

    def generate(
        self, queries: Sequence[Query], n: int = 1, params: SamplingParams | None = None
    ) -> list[list[str]]:
        raise PolicyError("the server at http://127.0.0.1:9 did not answer")


def test_a_policy_error_on_a_worker_reaches_the_caller_as_a_policy_error(ray_session, bundled):
    expected = re.escape("the server at http://127.0.0.1:9 did not answer")
    with (
        RolloutPool(UnreachablePolicy(), bundled, workers=1, preload=()) as pool,
        pytest.raises(PolicyError, match=expected),
    ):
        pool.rollout([next(iter(bundled))])


def test_rollout_pool_refuses_an_unknown_task_id_before_running_anything(ray_session, bundled):
    with RolloutPool(ScriptedPolicy(), bundled, workers=1, preload=()) as pool:
        with pytest.raises(ValueError, match=r"^unknown task_id\(s\) \['nope/0'\]"):
            pool.rollout(["nope/0"])
        assert pool.stats["completed"] == 0
