"""The zygote's warm-ups: probed steps that would start a thread never run in the zygote."""

from __future__ import annotations

import threading
import time

import pytest

from qsandbox_env.sandbox import warmup


def start_a_thread() -> None:
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()


def test_a_step_that_starts_a_thread_fails_its_probe_and_a_quiet_one_passes():
    assert warmup._starts_no_thread(lambda: None)
    assert not warmup._starts_no_thread(start_a_thread)
    assert not warmup._starts_no_thread(lambda: 1 / 0)


def test_a_probed_step_that_starts_a_thread_is_skipped_and_reported(monkeypatch):
    ran: list[str] = []

    def threaded() -> None:
        ran.append("threaded")
        start_a_thread()

    monkeypatch.setattr(warmup, "STEPS", {"threaded": threaded, "quiet": lambda: ran.append("q")})
    monkeypatch.setattr(warmup, "PROBED", frozenset({"threaded"}))
    before = threading.active_count()
    errors: dict[str, str] = {}
    warmup.run(errors)
    assert ran == ["q"]  # the threaded step ran only in the probe, a forked child
    assert threading.active_count() == before
    assert errors == {"warm-up threaded": "skipped: it starts a thread (or failed) in a probe"}


def test_the_default_zygote_ran_every_warm_up_and_forks_from_huge_pages(verifier):
    info = verifier._pool.info
    assert info["preload_errors"] == {}  # no warm-up was skipped: none starts a thread here
    assert info["threads"] == 1
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as mode:
            enabled = "[never]" not in mode.read()
    except OSError:
        enabled = False
    if not enabled:
        pytest.skip("this kernel has no transparent huge pages")
    assert info["huge_pages"] >= 64 << 20  # most of a Qiskit-sized heap
