"""Stream time -> wall time, real-time pacing, looping and live-source recovery of the capture thread."""

from __future__ import annotations

import time

import numpy as np
import pytest

from adbreak.errors import AdbreakError
from edge.capture import Backoff, Capture, CapturedFrame, StreamClock, stream_to_wall
from edge.frames_queue import DropOldestQueue, QueueClosed
from edge.sources.base import Frame, FrameSource

IMG = np.zeros((2, 2, 3), np.uint8)


class FakeSource(FrameSource):
    def __init__(self, times, *, live=False, fail_at=None, duration=None, fps=None, error=AdbreakError):
        super().__init__(fps)
        self.times, self.live, self.fail_at, self._duration, self.error = list(times), live, fail_at, duration, error
        self.closed = False

    @property
    def duration_s(self):
        return self._duration

    def __iter__(self):
        for i, t in enumerate(self.times):
            if i == self.fail_at:
                raise self.error("device unplugged")
            yield Frame(t=t, image=IMG, index=i)

    def close(self):
        self.closed = True


def drain(q: DropOldestQueue[CapturedFrame], timeout=10.0) -> list[CapturedFrame]:
    out = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out.append(q.get(timeout=deadline - time.monotonic()))
        except QueueClosed:
            return out
    raise AssertionError("the capture did not end")


# -- the mapping ---------------------------------------------------------------------------------------------------
def test_stream_to_wall_for_a_paced_replay_and_a_live_camera():
    # paced x4: stream time 0 released at wall 1000 -> stream 40 s is 10 wall seconds later
    assert stream_to_wall(40.0, 0.0, 1000.0, speed=4.0) == pytest.approx(1010.0)
    # live: a frame at stream 12.5 captured at wall 5000 -> a boundary at stream 10.0 was at wall 4997.5
    assert stream_to_wall(10.0, 12.5, 5000.0) == pytest.approx(4997.5)


def test_paced_clock_keeps_one_origin():
    clock = StreamClock(paced=True, speed=4.0)
    assert not clock.ready
    with pytest.raises(RuntimeError):
        clock.wall(0.0)
    clock.observe(0.2, 1000.05)  # the first frame (0.2 s) was released 0.05 s after stream time 0
    assert clock.wall(0.0) == pytest.approx(1000.0)
    clock.observe(8.0, 1003.0)  # a late frame: the content's timeline does not move
    assert clock.wall(8.0) == pytest.approx(1002.0)
    assert clock.wall(25.1) - clock.wall(25.8) == pytest.approx(-0.7 / 4)


def test_live_clock_follows_the_capture():
    clock = StreamClock(paced=False, speed=4.0)  # speed means nothing live
    clock.observe(10.0, 2000.0)
    assert clock.wall(9.0) == pytest.approx(1999.0)
    clock.observe(20.0, 2010.5)  # the camera's clock drifted by 0.5 s: follow the latest capture
    assert clock.wall(19.0) == pytest.approx(2009.5)


# -- the capture thread ---------------------------------------------------------------------------------------------
def run_capture(first, opener=None, *, maxsize=1000, **kw) -> tuple[Capture, list[CapturedFrame]]:
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(maxsize)
    cap = Capture(first, opener or (lambda: pytest.fail("unexpected reopen")), q, **kw)
    cap.start()
    frames = drain(q)
    assert cap.join(5)
    return cap, frames


def test_paced_replay_releases_frame_k_at_t0_plus_t_over_speed():
    times = [k * 0.1 for k in range(20)]  # 2 s of stream at speed 4: 0.475 s of wall time
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(100)
    cap = Capture(FakeSource(times), lambda: None, q, realtime=True, speed=4.0)
    started = time.monotonic()
    cap.start()
    arrivals = []
    while True:
        try:
            item = q.get(timeout=5)
        except QueueClosed:
            break
        arrivals.append((item, time.monotonic() - started))
    assert [a.frame.t for a, _ in arrivals] == pytest.approx(times)
    for item, seen in arrivals:
        assert item.wall == pytest.approx(cap.t0_wall + item.frame.t / 4.0)  # nominal release time
        assert seen >= item.frame.t / 4.0 - 0.01  # never released early
    assert arrivals[-1][1] == pytest.approx(1.9 / 4.0, abs=0.15)


def test_without_realtime_a_file_is_read_at_once_and_nothing_is_dropped():
    times = [k * 0.2 for k in range(200)]  # 40 s of stream
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(2)
    cap = Capture(FakeSource(times), lambda: None, q, realtime=False)
    started = time.monotonic()
    cap.start()
    got = drain(q)
    assert time.monotonic() - started < 5.0
    assert [f.frame.t for f in got] == pytest.approx(times) and q.dropped == 0
    assert not cap.paced and cap.error is None


def test_loop_keeps_stream_time_increasing_across_replays():
    opened = []

    def opener():
        opened.append(1)
        return FakeSource([0.0, 0.2, 0.4, 0.6, 0.8], duration=1.0)

    cap, got = run_capture(opener(), opener, realtime=False, loop=True, duration_s=3.0)
    ts = [f.frame.t for f in got]
    assert ts == pytest.approx([k * 0.2 for k in range(15)])  # 0 .. 2.8, then --duration stops it
    assert all(b > a for a, b in zip(ts, ts[1:], strict=False))
    assert [f.frame.index for f in got] == list(range(15))
    assert len(opened) == 3


def test_loop_without_a_known_duration_adds_the_last_frame_time_plus_one_step():
    def opener():
        return FakeSource([0.0, 0.5], fps=2.0)

    _, got = run_capture(opener(), opener, realtime=False, loop=True, duration_s=2.9)
    assert [f.frame.t for f in got] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])


def test_duration_stops_a_file_early():
    cap, got = run_capture(FakeSource([k * 0.2 for k in range(50)]), realtime=False, duration_s=1.0)
    assert [f.frame.t for f in got] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])


def test_a_failing_file_ends_the_capture_with_its_error():
    src = FakeSource([0.0, 0.2, 0.4], fail_at=2)
    cap, got = run_capture(src, realtime=False)
    assert len(got) == 2 and isinstance(cap.error, AdbreakError) and src.closed


def test_a_live_source_that_fails_is_reopened_and_time_carries_on():
    attempts = []

    def opener():
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise AdbreakError("no camera yet")  # still unplugged: back off and try again
        return FakeSource([100.0, 100.1, 100.2], live=True)  # a reopened camera has a clock of its own

    first = FakeSource([0.0, 0.1, 0.2], live=True, fail_at=3)
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(100)
    cap = Capture(first, opener, q, backoff=Backoff(0.05, 0.1))
    cap.start()
    got = []
    while len(got) < 6:
        got.append(q.get(timeout=5))
    cap.stop()
    assert cap.join(5) and cap.error is None and first.closed
    ts = [f.frame.t for f in got]
    assert ts[:3] == pytest.approx([0.0, 0.1, 0.2])
    gap = ts[3] - ts[2]
    assert 0.1 <= gap < 2.0  # the outage (two back-off waits) shows as a gap of stream time, not a jump to 100 s
    assert ts[4] - ts[3] == pytest.approx(0.1) and ts[5] - ts[4] == pytest.approx(0.1)
    assert cap.reopens == 1 and len(attempts) == 2


def test_a_live_source_is_never_blocked_by_a_stalled_consumer():
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(4)
    src = FakeSource([k * 0.01 for k in range(500)], live=True)
    cap = Capture(src, lambda: FakeSource([], live=True), q, backoff=Backoff(10, 10))
    cap.start()
    deadline = time.monotonic() + 5
    while cap.frames < 500 and time.monotonic() < deadline:
        time.sleep(0.01)
    cap.stop()
    assert cap.join(15)
    assert cap.frames == 500 and q.dropped == 496
    assert [f.frame.index for f in drain(q)] == [496, 497, 498, 499]


def test_stop_interrupts_a_paced_wait():
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(10)
    cap = Capture(FakeSource([0.0, 100.0]), lambda: None, q, realtime=True, speed=1.0)
    cap.start()
    assert q.get(timeout=5).frame.t == 0.0
    started = time.monotonic()
    cap.stop()
    assert cap.join(5) and time.monotonic() - started < 1.0
    with pytest.raises(QueueClosed):
        q.get(timeout=1)


def test_backoff_doubles_up_to_its_maximum_and_resets():
    b = Backoff(1.0, 5.0)
    assert [b.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next_delay() == 1.0
