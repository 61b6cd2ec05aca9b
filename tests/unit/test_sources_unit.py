import threading

import numpy as np
import pytest

from edge.sources import Frame, FrameSource, Prefetcher, TimestampSampler


def taken(fps, times):
    s = TimestampSampler(fps)
    return [t for t in times if s.take(t)]


def test_sampler_takes_first_frame_at_or_after_each_grid_point():
    times = [i / 25 for i in range(50)]  # 2 s at 25 fps
    assert taken(5, times) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8])


def test_sampler_skips_missing_grid_points_without_shifting_later_ones():
    times = [0.0, 0.04, 0.08, 0.9, 0.94, 1.0, 1.2, 1.24]  # a gap 0.08 -> 0.9
    assert taken(5, times) == pytest.approx([0.0, 0.9, 1.0, 1.2])


def test_sampler_none_takes_every_frame_and_rejects_bad_rates():
    assert taken(None, [0, 0.01, 0.02]) == [0, 0.01, 0.02]
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            TimestampSampler(bad)


class _ListSource(FrameSource):
    def __init__(self, n, live=False, fail_at=None):
        super().__init__(None)
        self.n, self.live, self.fail_at = n, live, fail_at
        self.release = threading.Event()

    def __iter__(self):
        for i in range(self.n):
            if i == self.fail_at:
                raise RuntimeError("camera unplugged")
            yield Frame(t=i / 5, image=np.zeros((2, 2, 3), np.uint8), index=i)


def test_prefetcher_keeps_every_frame_of_a_file_in_order():
    with Prefetcher(_ListSource(200), maxsize=4) as frames:
        assert [f.index for f in frames] == list(range(200))


def test_prefetcher_drops_oldest_when_a_live_consumer_falls_behind():
    import time

    pf = Prefetcher(_ListSource(100, live=True), maxsize=3)
    time.sleep(0.5)  # consumer stalls: the decoder must not block
    got = [f.index for f in pf]
    pf.close()
    assert got[-1] == 99  # the freshest frame is delivered
    assert pf.dropped == 100 - len(got) > 0
    assert got == sorted(got)


def test_prefetcher_reraises_source_errors_in_the_consumer():
    with Prefetcher(_ListSource(10, fail_at=5)) as frames, pytest.raises(RuntimeError, match="unplugged"):
        list(frames)
