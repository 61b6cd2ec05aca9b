"""The bounded frame queue between capture and inference: drops the oldest item, never blocks the producer."""

from __future__ import annotations

import queue
import threading
import time

import pytest

from edge.frames_queue import DropOldestQueue, QueueClosed


def test_full_queue_drops_the_oldest_and_counts_it():
    q: DropOldestQueue[int] = DropOldestQueue(3)
    assert [q.put(i) for i in range(3)] == [None, None, None]
    assert q.put(3) == 0 and q.put(4) == 1
    assert q.dropped == 2 and len(q) == 3
    assert [q.get(timeout=0) for _ in range(3)] == [2, 3, 4]


def test_put_never_blocks_the_producer():
    q: DropOldestQueue[int] = DropOldestQueue(4)
    started = time.perf_counter()
    for i in range(10_000):
        q.put(i)
    assert time.perf_counter() - started < 2.0
    assert q.dropped == 10_000 - 4
    assert [q.get(timeout=0) for _ in range(4)] == [9996, 9997, 9998, 9999]


def test_get_times_out_and_close_drains_before_raising():
    q: DropOldestQueue[str] = DropOldestQueue(2)
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    q.put("a")
    q.close()
    with pytest.raises(QueueClosed):
        q.put("b")
    assert q.get(timeout=0) == "a"
    with pytest.raises(QueueClosed):
        q.get(timeout=1)


def test_close_wakes_a_waiting_consumer():
    q: DropOldestQueue[int] = DropOldestQueue(2)
    outcome: list[str] = []

    def consume():
        try:
            q.get()
        except QueueClosed:
            outcome.append("closed")

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.1)
    q.close()
    t.join(2)
    assert outcome == ["closed"]


def test_blocking_put_waits_for_room_and_loses_nothing():
    q: DropOldestQueue[int] = DropOldestQueue(2)
    q.put(0, block=True)
    q.put(1, block=True)
    with pytest.raises(queue.Full):
        q.put(2, block=True, timeout=0.05)
    got: list[int] = []

    def consume():
        for _ in range(50):
            time.sleep(0.002)
            got.append(q.get(timeout=5))

    t = threading.Thread(target=consume)
    t.start()
    for i in range(2, 50):
        q.put(i, block=True, timeout=5)
    t.join(10)
    assert got == list(range(50)) and q.dropped == 0


def test_slow_consumer_sees_fresh_frames_in_order():
    q: DropOldestQueue[int] = DropOldestQueue(3)
    produced = 2000

    def produce():
        for i in range(produced):
            q.put(i)
            if i % 100 == 0:
                time.sleep(0.001)
        q.close()

    t = threading.Thread(target=produce)
    t.start()
    got = []
    while True:
        try:
            got.append(q.get(timeout=5))
        except QueueClosed:
            break
        time.sleep(0.0005)
    t.join(5)
    assert got == sorted(got) and got[-1] == produced - 1
    assert len(got) + q.dropped == produced and q.dropped > 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_maxsize_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError):
        DropOldestQueue(bad)
