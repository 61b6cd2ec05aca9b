"""server.periodic.PeriodicJob: the housekeeping threads' shared schedule."""

from __future__ import annotations

import logging
import threading

from server.periodic import PeriodicJob


def test_runs_before_once_then_ticks_until_stopped():
    calls: list[str] = []
    ticked = threading.Event()

    def tick() -> None:
        calls.append("tick")
        if calls.count("tick") >= 3:
            ticked.set()

    job = PeriodicJob("t", 0.01, tick, before=lambda: calls.append("before"))
    job.start()
    job.start()  # a second start is a no-op, not a second thread
    assert ticked.wait(5)
    job.stop()
    assert not job.running
    n = len(calls)
    assert calls[0] == "before" and calls.count("before") == 1 and set(calls[1:]) == {"tick"}
    threading.Event().wait(0.05)
    assert len(calls) == n  # stopped: no more ticks


def test_a_failing_tick_is_logged_and_the_schedule_goes_on(caplog):
    seen = threading.Event()
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count >= 2:
            seen.set()
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="server.periodic"):
        job = PeriodicJob("flaky", 0.01, tick)
        job.start()
        assert seen.wait(5)
        job.stop()
    assert "flaky: tick failed" in caplog.text and "boom" in caplog.text


def test_stop_wakes_a_long_wait_at_once():
    job = PeriodicJob("slow", 3600.0, lambda: None)
    job.start()
    done = threading.Event()
    threading.Thread(target=lambda: (job.stop(), done.set())).start()
    assert done.wait(2)


def test_wait_first_holds_the_first_tick_for_an_interval():
    ticks: list[float] = []
    job = PeriodicJob("later", 3600.0, lambda: ticks.append(1.0), wait_first=True)
    job.start()
    threading.Event().wait(0.1)
    job.stop()
    assert ticks == []


def test_concurrent_starts_make_one_thread():
    job = PeriodicJob("once", 3600.0, lambda: None, wait_first=True)
    gate = threading.Barrier(8)
    starters = [threading.Thread(target=lambda: (gate.wait(), job.start())) for _ in range(8)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        assert sum(t.name == "once" for t in threading.enumerate()) == 1
    finally:
        job.stop()
    assert not any(t.name == "once" for t in threading.enumerate())
