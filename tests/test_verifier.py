"""The Verifier's contract: one verdict per program, each outcome reachable, misuse rejected."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from qsandbox_env import Outcome, Task, Verifier
from qsandbox_env.sandbox.isolation import LAYERS
from tests.conftest import program_task

ADD = Task(
    "add/0",
    "def add(a, b):\n",
    "def check(candidate):\n    assert candidate(2, 3) == 5\n",
    "add",
    canonical_solution="    return a + b\n",
)
BELL = program_task(
    "    counts = candidate()\n"
    "    assert set(counts) <= {'00', '11'}, counts\n"
    "    assert sum(counts.values()) == 1000\n",
    entry_point="bell",
)
BELL_CODE = """
from qiskit import QuantumCircuit, transpile
from qiskit_aer import AerSimulator

def bell():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    sim = AerSimulator()
    return sim.run(transpile(qc, sim), shots=1000, seed_simulator=7).result().get_counts()
"""


def test_correct_completion_passes_with_reward_one(verifier):
    verdict = verifier.verify(ADD, "    return a + b\n")
    assert verdict.outcome is Outcome.PASSED
    assert verdict.passed and verdict.reward == 1.0
    assert verdict.task_id == "add/0"
    assert 0 < verdict.seconds < 30


def test_wrong_answer_fails_with_the_assertion_in_detail(verifier):
    verdict = verifier.verify(ADD, "    return a - b\n")
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reward == 0.0
    assert verdict.error_type == "AssertionError"
    assert "assert candidate(2, 3) == 5" in verdict.detail
    assert "harness" not in verdict.detail  # the sandbox's own frames are trimmed


def test_exception_is_an_error_with_its_type(verifier):
    verdict = verifier.verify(ADD, "    return a + undefined_name\n")
    assert verdict.outcome is Outcome.ERROR
    assert verdict.error_type == "NameError"


def test_deprecated_qiskit_import_is_an_import_error(verifier):
    verdict = verifier.verify(ADD, "    from qiskit import execute\n    return a + b\n")
    assert verdict.outcome is Outcome.ERROR
    assert verdict.error_type == "ImportError"
    assert "execute" in verdict.detail


def test_syntax_error_is_reported_as_syntax(verifier):
    verdict = verifier.verify(ADD, "    return (a +\n")
    assert verdict.outcome is Outcome.SYNTAX
    assert "never closed" in verdict.detail


def test_endless_loop_times_out_at_the_requested_limit(verifier):
    started = time.monotonic()
    verdict = verifier.verify(ADD, "    while True:\n        pass\n", timeout=2)
    assert verdict.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < 15
    assert "2 s" in verdict.detail


def test_task_timeout_overrides_the_verifier_default(verifier):
    task = Task("slow/0", "import time\ndef f():\n", "def check(c):\n    c()\n", "f", timeout=1.5)
    verdict = verifier.verify(task, "    time.sleep(20)\n")
    assert verdict.outcome is Outcome.TIMEOUT
    assert verdict.seconds < 10


def test_memory_hog_gets_memory_outcome(verifier):
    verdict = verifier.verify(ADD, "    x = bytearray(8 << 30)\n    return a + b\n")
    assert verdict.outcome is Outcome.MEMORY


def test_signal_death_is_killed(verifier):
    verdict = verifier.verify(
        ADD, "    import os, signal\n    os.kill(os.getpid(), signal.SIGSEGV)\n"
    )
    assert verdict.outcome is Outcome.KILLED
    assert "SIGSEGV" in verdict.detail


def test_missing_entry_point_is_an_error(verifier):
    task = program_task("    assert candidate() == 1", entry_point="solve")
    verdict = verifier.verify(task, "def other():\n    return 1\n")
    assert verdict.outcome is Outcome.ERROR
    assert "'solve'" in verdict.detail


def test_qiskit_aer_program_passes_and_output_is_captured(verifier):
    code = BELL_CODE + "\nprint('hello from the program')\n"
    verdict = verifier.verify(BELL, code)
    assert verdict.outcome is Outcome.PASSED, verdict.detail
    assert "hello from the program" in verdict.output


def test_fenced_model_output_is_unwrapped(verifier):
    completion = f"Here is the program:\n```python\n{BELL_CODE}```\nIt prepares a Bell state."
    verdict = verifier.verify(BELL, completion)
    assert verdict.passed, verdict.detail
    assert verdict.code.strip() == BELL_CODE.strip()


def test_output_is_capped(verifier):
    verdict = verifier.verify(ADD, "    print('x' * 5_000_000)\n    return a + b\n")
    assert verdict.passed
    assert len(verdict.output) < 70_000
    assert "more bytes of output dropped" in verdict.output


def test_verify_many_keeps_input_order(verifier):
    completions = ["    return a + b\n", "    return a * b\n", "    return (\n"] * 3
    verdicts = verifier.verify_many([(ADD, c) for c in completions])
    assert [v.outcome.value for v in verdicts] == ["passed", "failed", "syntax"] * 3


def test_verify_many_runs_in_parallel(verifier):
    task = Task("sleep/0", "import time\ndef f():\n", "def check(c):\n    assert c() == 1\n", "f")
    started = time.monotonic()
    verdicts = verifier.verify_many([(task, "    time.sleep(1.5)\n    return 1\n")] * 2)
    assert all(v.passed for v in verdicts)
    assert time.monotonic() - started < 2.9  # two programs, two zygotes, one sleep's time


def test_verify_is_safe_from_several_threads(verifier):
    results = []

    def worker(i):
        results.append((i, verifier.verify(ADD, f"    return a + b + {i % 2}\n").passed))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [(i, i % 2 == 0) for i in range(6)]


@pytest.mark.parametrize(
    "completion",
    [
        "    return a + b\x00\n",
        "    return '\ud800'\n",
        "\udcff\udcfe",
    ],
)
def test_unencodable_or_nul_programs_are_syntax_verdicts(verifier, completion):
    assert verifier.verify(ADD, completion).outcome is Outcome.SYNTAX


def test_fifty_megabyte_completion_is_a_verdict_not_a_crash(verifier):
    completion = "    return a + b\n" + "#" * (50 << 20) + "\n"
    verdict = verifier.verify(ADD, completion)
    assert verdict.outcome is Outcome.PASSED


def test_non_string_completion_is_a_type_error(verifier):
    with pytest.raises(TypeError, match="completion: expected str, got bytes"):
        verifier.verify(ADD, b"    return a + b\n")


def test_non_task_is_a_type_error(verifier):
    with pytest.raises(TypeError, match=r"task: expected a qsandbox_env\.Task, got dict"):
        verifier.verify({"task_id": "x"}, "pass")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"timeout": 0},
            ValueError,
            "timeout: expected a positive, finite number of seconds, got 0",
        ),
        ({"timeout": "5"}, TypeError, "timeout: expected a positive number of seconds, got '5'"),
        ({"memory": "lots"}, ValueError, "memory: expected a size like '4GiB'"),
        ({"workers": 0}, ValueError, "workers: expected a positive int, got 0"),
        ({"mode": "hot"}, ValueError, "mode: expected 'warm' or 'cold', got 'hot'"),
        (
            {"python": "/no/such/python"},
            ValueError,
            "python: '/no/such/python' is not an executable",
        ),
    ],
)
def test_bad_configuration_is_rejected_before_anything_starts(kwargs, error, message):
    with pytest.raises(error, match=message):
        Verifier(**kwargs)


def test_bad_per_call_timeout_is_rejected(verifier):
    with pytest.raises(ValueError, match="timeout: expected a positive, finite"):
        verifier.verify(ADD, "    return a + b\n", timeout=float("inf"))


def test_closed_verifier_refuses_work():
    v = Verifier(workers=1, preload=())
    v.close()
    with pytest.raises(ValueError, match="this Verifier is closed"):
        v.verify(ADD, "    return a + b\n")


def test_the_zygote_forks_with_a_single_thread(verifier):
    assert verifier._pool.info["threads"] == 1


def test_isolation_reports_every_layer_as_active_or_missing(verifier):
    info = verifier.isolation
    assert set(info["active"]) | set(info["missing"]) == set(LAYERS)
    assert not set(info["active"]) & set(info["missing"])


def test_cold_mode_gives_the_same_verdicts():
    with Verifier(workers=1, mode="cold") as cold:
        assert set(cold.isolation["active"]) | set(cold.isolation["missing"]) == set(LAYERS)
        verdicts = cold.verify_many([(ADD, "    return a + b\n"), (ADD, "    return a - b\n")])
    assert [v.outcome for v in verdicts] == [Outcome.PASSED, Outcome.FAILED]


def test_a_killed_zygote_is_replaced_and_the_program_rerun():
    with Verifier(workers=1, preload=()) as v:
        task = Task(
            "sleep/1", "import time\ndef f():\n", "def check(c):\n    assert c() == 1\n", "f"
        )
        handle = v._pool.handles[0]
        first_pid = handle.proc.pid
        killer = threading.Timer(0.7, lambda: handle.proc.kill())
        killer.start()
        verdict = v.verify(task, "    time.sleep(2)\n    return 1\n")
        killer.join()
        assert verdict.passed, verdict.detail
        assert handle.proc.pid != first_pid
        assert v.verify(ADD, "    return a + b\n").passed


def test_programs_can_run_under_another_interpreter(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = venv / "bin" / "python"
    task = program_task(f"    assert candidate() == {str(venv)!r}\n", entry_point="where")
    code = "import sys\ndef where():\n    return sys.prefix\n"
    with Verifier(workers=1, mode="cold", python=str(python)) as v:
        verdict = v.verify(task, code)
        assert verdict.passed, verdict.detail
        assert v.verify(task, "def where():\n    return '/elsewhere'\n").outcome is Outcome.FAILED


@pytest.fixture
def unannounced(monkeypatch):
    """Each sandbox warning is shown once per process: start these tests as if none had been."""
    import qsandbox_env.verifier

    monkeypatch.setattr(qsandbox_env.verifier, "_ANNOUNCED", set())


def test_missing_isolation_layers_are_announced_and_listed(unannounced):
    with pytest.warns(RuntimeWarning, match="sandbox layers are NOT active"):
        v = Verifier(workers=1, preload=(), isolate=False)
    with v:
        assert "network-namespace" in v.isolation["missing"]
        assert v._pool.info["threads"] == 1  # no namespace fork hides a thread pool here
        assert v.verify(ADD, "    return a + b\n").passed


def test_a_module_that_cannot_be_preloaded_is_announced(unannounced):
    with pytest.warns(RuntimeWarning, match="could not preload:\n  - no_such_module_qsandbox"):
        v = Verifier(workers=1, preload=("no_such_module_qsandbox",))
    with v:
        assert v.verify(ADD, "    return a + b\n").passed


def test_a_zygote_that_keeps_dying_gives_a_sandbox_verdict_not_a_hang():
    task = Task("sleep/2", "import time\ndef f():\n", "def check(c):\n    assert c() == 1\n", "f")
    with Verifier(workers=1, preload=(), timeout=20) as v:
        handle = v._pool.handles[0]
        killed: list[int] = []

        def kill_each_new_zygote():
            deadline = time.monotonic() + 30
            while len(killed) < 2 and time.monotonic() < deadline:
                proc = handle.proc
                if proc is not None and proc.pid not in killed:
                    time.sleep(1.0)
                    proc.kill()
                    killed.append(proc.pid)
                time.sleep(0.05)

        killer = threading.Thread(target=kill_each_new_zygote)
        started = time.monotonic()
        killer.start()
        verdict = v.verify(task, "    time.sleep(8)\n    return 1\n")
        killer.join()
        assert verdict.outcome is Outcome.SANDBOX
        assert "died or stopped answering twice" in verdict.detail
        assert time.monotonic() - started < 15
        assert v.verify(ADD, "    return a + b\n").passed  # and the pool recovers


def test_output_without_a_final_newline_is_kept(verifier):
    code = "    import sys\n    sys.stdout.write('no newline')\n    sys.__stdout__.write('raw')\n"
    verdict = verifier.verify(ADD, code + "    return a + b\n")
    assert verdict.passed
    assert "no newline" in verdict.output and "raw" in verdict.output


def test_pools_in_one_process_run_programs_under_different_uids():
    from qsandbox_env.sandbox.pool import slot_uids

    first, second = slot_uids(4), slot_uids(4)
    assert len(set(first)) == 4 and not set(first) & set(second)
    assert all(0 < uid < 2**32 - 1 for uid in first + second)


def test_each_program_draws_its_own_numpy_random_numbers():
    # A fork copies the zygote's numpy generator: without a reseed every child of one zygote
    # draws the same "random" numbers, so unseeded random tests repeat themselves exactly.
    task = Task("rng/0", "def f():\n", "def check(candidate):\n    candidate()\n", "f")
    code = "    import numpy as np\n    print(np.random.rand(), np.random.randint(1 << 30))\n"
    with Verifier(workers=1) as v:
        verdicts = v.verify_many([(task, code)] * 4)
    assert [x.outcome for x in verdicts] == [Outcome.PASSED] * 4
    assert len({x.output for x in verdicts}) == 4
