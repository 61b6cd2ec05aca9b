"""edge.sources.process: a video decoded in a child process gives exactly what the in-process source gives."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from test_source_audio import damage, make_clip

from adbreak.errors import AdbreakError
from edge.geometry import Geometry
from edge.pipeline import Detector, FrameConverter, PreparedFrame
from edge.sources import VideoSource
from edge.sources.process import ProcessSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("proc") / "clip.mp4"
    make_clip(path)
    return path


@pytest.mark.parametrize("luma_only", [False, True])
def test_frames_from_the_child_equal_the_in_process_ones(clip, luma_only):
    with VideoSource(str(clip), 5.0, luma_only=luma_only) as src:
        want = list(src)
    with ProcessSource(str(clip), 5.0, luma_only=luma_only) as src:
        got = list(src)
        assert src.has_audio and src.decode_errors == 0 and src.duration_s == pytest.approx(4.0, abs=0.1)
    assert [f.t for f in got] == [f.t for f in want] and [f.index for f in got] == [f.index for f in want]
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.audio, b.audio)


def test_the_converter_runs_in_the_child(clip):
    detector = Detector(None)
    conv = detector.converter
    assert conv == FrameConverter(Geometry(), 0, True)
    with ProcessSource(str(clip), 5.0, convert=conv, luma_only=True) as src:
        got = list(src)
    with VideoSource(str(clip), 5.0, luma_only=True) as src:
        want = [conv(f) for f in src]
    assert all(isinstance(p, PreparedFrame) and p.input is None and p.screen is not None for p in got)
    for a, b in zip(got, want, strict=True):
        assert a.t == b.t and np.array_equal(a.screen.gray, b.screen.gray) and np.array_equal(a.screen.audio,
                                                                                           b.screen.audio)


def test_a_missing_file_is_the_same_one_line_error(tmp_path):
    with pytest.raises(AdbreakError, match="video not found"):
        ProcessSource(str(tmp_path / "nope.mp4"), 5.0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(AdbreakError, match="cannot open video"):
        ProcessSource(str(bad), 5.0)


def test_corrupt_packets_are_counted_by_the_child(tmp_path, clip):
    damaged = tmp_path / "damaged.mp4"
    damage(clip, damaged, 60, 70)
    with ProcessSource(str(damaged), 5.0) as src:
        frames = list(src)
        assert src.audio_errors >= 5 and src.decode_errors == src.audio_errors
    assert len(frames) == 20


def test_a_child_that_dies_is_an_error_not_a_hang(clip):
    src = ProcessSource(str(clip), 5.0, batch=1, maxsize=1)
    it = iter(src)
    next(it)
    os.kill(src._process.pid, signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(AdbreakError, match="decoder .* stopped"):
        for _ in it:
            pass
    assert time.monotonic() - started < 10
    src.close()


def _growing(frame):
    """A converter whose output grows 8x from frame to frame: later batches outgrow the ring's slots."""
    return frame.index, np.full(64 * 8 ** min(frame.index, 5), frame.index % 251, np.uint8)


def test_batches_cross_through_shared_memory_or_whole_through_the_pipe_and_the_ring_goes(clip):
    from pathlib import Path

    with ProcessSource(str(clip), 5.0, convert=_growing, batch=1) as src:
        got = list(src)
        name = src._ring_name
        assert Path("/dev/shm", name).exists()  # the child made the ring for the first batch
    assert [i for i, _ in got] == list(range(len(got))) and len(got) == 20
    for i, data in got:
        assert data.size == 64 * 8 ** min(i, 5) and (data == i % 251).all()
        data[0] = 1  # a copy of its own, not a view of a slot that is reused
    assert not Path("/dev/shm", name).exists()



def test_without_shared_memory_the_pipe_carries_everything(monkeypatch):
    """A ring that cannot be made (no /dev/shm, or a container's too small one) is no error: batches take the pipe,
    and no second try is made for each batch."""
    from edge.sources import process

    tries = []

    def refuse(**kwargs):
        tries.append(kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(process.shared_memory, "SharedMemory", refuse)
    sent = []
    queue = type("Queue", (), {"put": lambda self, message: sent.append(message)})()
    writer = process._RingWriter(queue, None, "adbreak-test-no-ring", 3)
    for k in range(3):
        writer.send([np.full(1000, k, np.uint8)])
    assert [kind for kind, _ in sent] == ["frames"] * 3 and len(tries) == 1
    assert [int(items[0][0]) for _, items in sent] == [0, 1, 2]
    writer.close()
