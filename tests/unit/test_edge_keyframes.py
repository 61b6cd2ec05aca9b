"""The edge's keyframe choice (``edge.keyframes``): the rings, which frames become start / middle / end / sample
keyframes around the decisions of a real ``AdStateMachine``, the low-confidence samples, the memory bound, and the
real JPEG thumbnail encoder."""

from __future__ import annotations

import time

import numpy as np
import pytest

from adbreak.wire import jpeg_size, parse_keyframe
from edge.decision import AdStateMachine, DecisionConfig
from edge.keyframes import (
    MAX_JPEG_BYTES,
    KeyframeConfig,
    KeyframeRecorder,
    Pick,
    Thumb,
    ThumbRing,
    build_keyframe,
    encode_thumbnail,
    nearest,
)

FPS = 5.0
IMAGE = np.zeros((4, 4, 3), np.uint8)  # the fake encoder never looks at it


class FakeEncoder:
    """Stands in for the JPEG encoder: fixed-size bytes, and counts its calls."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self.calls = 0

    def __call__(self, image):
        self.calls += 1
        return bytes(self.size), 384, 216


def thumb(t: float, size: int = 10) -> Thumb:
    return Thumb(t=t, jpeg=bytes(size), width=1, height=1, p_ad=0.0, label=None)


def run_stream(p_of_t, duration: float, *, config: DecisionConfig | None = None,
               kf: KeyframeConfig | None = None, encoder: FakeEncoder | None = None, finish: bool = True):
    """Feed a synthetic stream through a real decision machine and the recorder; the picks and transitions."""
    cfg = config or DecisionConfig(min_ad_s=5.0, min_program_s=5.0)
    machine = AdStateMachine(cfg)
    picks: list[Pick] = []
    rec = KeyframeRecorder(picks.append, kf, thresholds=(cfg.enter_threshold, cfg.exit_threshold),
                           encoder=encoder or FakeEncoder())
    transitions = []
    for i in range(int(duration * FPS)):
        t = i / FPS
        p = p_of_t(t)
        step = machine.update(t, p)
        tr = step.transition
        if tr is not None:
            transitions.append(tr)
        rec.observe(t, IMAGE, p_ad=p, smoothed=step.smoothed, state=None if step.state is None else step.state.value,
                    transition_boundary_t=None if tr is None else tr.boundary_t,
                    from_label=None if tr is None else tr.from_label.value, initial_t=machine.initial_t)
    if finish:
        rec.finish()
    return picks, transitions, rec


def ad_between(a: float, b: float):
    return lambda t: 0.95 if a <= t < b else 0.05


# ---------------------------------------------------------------------------------------------------- rings
def test_ring_keeps_a_step_and_a_count():
    ring = ThumbRing(step_s=0.5, maxlen=4)
    for t in (0.0, 0.2, 0.5, 0.9, 1.0, 1.5, 2.0):
        if ring.due(t):
            ring.add(thumb(t))
    assert [th.t for th in ring] == [0.5, 1.0, 1.5, 2.0] and ring.bytes == 40  # one per 0.5 s slot


def test_ring_byte_cap_drops_the_oldest():
    ring = ThumbRing(step_s=1.0, maxlen=100, max_bytes=250)
    for t in range(10):
        ring.add(thumb(float(t), size=100))
    assert [th.t for th in ring] == [8.0, 9.0] and ring.bytes == 200


def test_nearest_with_bounds_and_tolerance():
    items = [thumb(t) for t in (0.0, 0.5, 1.0, 1.5)]
    assert nearest(items, 0.74).t == 0.5
    assert nearest(items, 0.75).t == 1.0  # a tie goes to the later one
    assert nearest(items, 1.0, before=1.0).t == 0.5
    assert nearest(items, 0.6, at_or_after=0.6).t == 1.0
    assert nearest(items, 5.0, tolerance=0.5) is None
    assert nearest([], 1.0) is None


# ---------------------------------------------------------------------------------------------------- selection
def test_start_middle_end_and_boundary_samples_of_each_segment():
    picks, transitions, rec = run_stream(ad_between(60.0, 90.0), 150.0)
    assert [(tr.from_label.value, tr.to_label.value) for tr in transitions] == [("program", "ad"), ("ad", "program")]
    b1, b2 = (tr.boundary_t for tr in transitions)
    assert abs(b1 - 60.0) < 1.0 and abs(b2 - 90.0) < 1.0

    main = [(p.kind, p.label) for p in picks if p.kind != "sample"]
    assert main == [("start", "program"),
                    ("end", "program"), ("middle", "program"), ("start", "ad"),
                    ("end", "ad"), ("middle", "ad"), ("start", "program"),
                    ("end", "program"), ("middle", "program")]
    by_kind = [p for p in picks if p.kind != "sample"]
    t = [p.thumb.t for p in by_kind]
    assert t[0] == 0.0  # the first frame starts the first segment
    assert b1 - 0.5 <= t[1] < b1 and b1 <= t[3] < b1 + 0.5  # end just before, start just after the boundary
    assert abs(t[2] - b1 / 2) <= 2.0  # the middle, from the sparse ring (every 2 s)
    assert b2 - 0.5 <= t[4] < b2 and abs(t[5] - (b1 + b2) / 2) <= 2.0 and b2 <= t[6] < b2 + 0.5
    assert 149.8 - 0.5 < t[7] <= 149.8 and abs(t[8] - (b2 + 149.8) / 2) <= 2.0  # finish(): the open segment

    for b, before, after in ((b1, "program", "ad"), (b2, "ad", "program")):
        samples = [p for p in picks if p.kind == "sample" and abs(p.thumb.t - b) <= 5.5]
        assert all(p.reason == "boundary" for p in samples)
        offsets = sorted(round(p.thumb.t - b) for p in samples)
        assert offsets == [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]
        assert all(p.label == (before if p.thumb.t < b else after) for p in samples)
    assert len({id(p.thumb) for p in picks if p.kind in ("start", "end")}) == 6
    assert rec.failed == 0


def test_samples_after_a_boundary_are_taken_as_the_frames_arrive():
    # no smoothing, no minimum: the change is decided on the first ad frame, so its +1..+5 s samples are future
    cfg = DecisionConfig(window_s=0.0, min_ad_s=0.0, min_program_s=0.0)
    sent_at: list[tuple[float, float]] = []
    picks: list[Pick] = []
    machine = AdStateMachine(cfg)
    rec = KeyframeRecorder(picks.append, thresholds=(0.7, 0.3), encoder=FakeEncoder())
    for i in range(int(40 * FPS)):
        t = i / FPS
        p = 0.95 if t >= 20.0 else 0.05
        step = machine.update(t, p)
        tr = step.transition
        n = len(picks)
        rec.observe(t, IMAGE, p_ad=p, smoothed=step.smoothed, state=step.state.value if step.state else None,
                    transition_boundary_t=tr.boundary_t if tr else None,
                    from_label=tr.from_label.value if tr else None, initial_t=machine.initial_t)
        sent_at += [(p.thumb.t, t) for p in picks[n:] if p.kind == "sample"]
    after = [(kt, at) for kt, at in sent_at if kt > 20.0]
    assert len(after) == 5
    assert all(at == pytest.approx(kt) or at > 20.0 for kt, at in after)
    assert max(at for _, at in after) >= 24.5  # the last one only once its frame was there


def test_low_confidence_samples_are_rate_limited():
    # program, then 15 s of p ~ 0.5 (between exit 0.3 and enter 0.7), then program again
    def p_of_t(t):
        return 0.5 if 30.0 <= t < 45.0 else 0.05

    picks, transitions, _ = run_stream(p_of_t, 60.0)
    assert transitions == []
    low = [p for p in picks if p.kind == "sample"]
    assert all(p.reason == "low_confidence" and p.label == "program" for p in low)
    times = [p.thumb.t for p in low]
    assert len(times) == 3, times  # ~32.4, ~37.4, ~42.4 s: after 2 s of doubt, then at most one per 5 s
    assert times[0] >= 32.0 and all(b - a >= 5.0 - 1e-9 for a, b in zip(times, times[1:], strict=False))


def test_thresholds_follow_the_settings():
    picks, _, rec = run_stream(lambda t: 0.6 if t >= 10 else 0.05, 20.0, finish=False)
    assert any(p.reason == "low_confidence" for p in picks)
    rec2_picks: list[Pick] = []
    rec2 = KeyframeRecorder(rec2_picks.append, thresholds=(0.7, 0.3), encoder=FakeEncoder())
    rec2.set_thresholds(0.55, 0.3)  # 0.6 is now above the enter threshold: not a doubt
    for i in range(100):
        rec2.observe(i / FPS, IMAGE, p_ad=0.6, smoothed=0.6, state="program")
    assert not [p for p in rec2_picks if p.reason == "low_confidence"]


def test_encoding_is_sparse():
    enc = FakeEncoder()
    run_stream(ad_between(60.0, 90.0), 150.0, encoder=enc)
    frames = int(150 * FPS)
    assert enc.calls <= 150 / 0.5 + 3 < frames  # one thumbnail per 0.5 s of stream, not one per frame


def test_a_failing_encoder_never_stops_the_stream():
    def broken(image):
        raise RuntimeError("no codec")

    picks: list[Pick] = []
    rec = KeyframeRecorder(picks.append, encoder=broken)
    for i in range(50):
        rec.observe(i / FPS, IMAGE, p_ad=0.1, smoothed=0.1, state="program")
    rec.finish()
    assert picks == [] and rec.failed == 20  # tried once per 0.5 s slot (10 s of stream), never kept


def test_finish_without_frames_sends_nothing():
    picks: list[Pick] = []
    KeyframeRecorder(picks.append, encoder=FakeEncoder()).finish()
    assert picks == []


# ---------------------------------------------------------------------------------------------------- memory
def test_memory_is_bounded_over_hours():
    enc = FakeEncoder(size=20_000)
    kf = KeyframeConfig(max_bytes=8_000_000)
    picks: list[Pick] = []
    rec = KeyframeRecorder(picks.append, kf, encoder=enc)
    peak = 0
    for i in range(int(3 * 3600 * FPS)):  # three hours at 5 fps
        t = i / FPS
        rec.observe(t, IMAGE, p_ad=0.05, smoothed=0.05, state="program")
        if i % 500 == 0:
            peak = max(peak, rec.memory_bytes)
    assert len(rec.recent) <= kf.recent_max and len(rec.sparse) <= kf.sparse_max
    assert rec.sparse.bytes <= kf.max_bytes
    assert peak <= kf.max_bytes + kf.recent_max * 20_000
    # with the defaults: 30 min of sparse thumbnails at ~20 KB stay well under the 150 MB agent budget
    default = KeyframeConfig()
    assert default.sparse_max * 20_000 <= default.max_bytes + 20_000 and default.max_bytes <= 32 * 1024 * 1024


def test_the_middle_of_a_segment_older_than_the_rings_is_skipped():
    kf = KeyframeConfig(sparse_span_s=60.0)
    picks, _, _ = run_stream(ad_between(200.0, 230.0), 260.0, kf=kf, finish=False)
    middles = [p for p in picks if p.kind == "middle"]
    assert [p.label for p in middles] == ["ad"]  # the first program's middle (~100 s) had left the 60 s ring


# ---------------------------------------------------------------------------------------------------- real encoding
def test_encode_thumbnail_scales_keeps_aspect_and_fits():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    frame[:, :, 0] = np.linspace(0, 255, 1280, dtype=np.uint8)[None, :]
    data, w, h = encode_thumbnail(frame)
    assert (w, h) == (384, 216) and jpeg_size(data) == (384, 216) and len(data) <= MAX_JPEG_BYTES
    small = rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)
    assert encode_thumbnail(small)[1:] == (200, 100)  # never scaled up
    assert encode_thumbnail(frame, max_bytes=100) is None  # nothing that small: None, not an oversize message


def test_encode_thumbnail_lowers_the_quality_to_fit():
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    full, _, _ = encode_thumbnail(noise, quality=95, max_bytes=10**9)
    fitted, w, _ = encode_thumbnail(noise, quality=95, max_bytes=len(full) // 2)
    assert w == 384 and len(fitted) <= len(full) // 2


def test_encode_cost_per_frame():
    """The measured cost that docs/edge.md quotes: a 1280x720 frame to a 384 px JPEG, and per analysed frame at
    5 fps with one thumbnail per 0.5 s (2 in 5 frames)."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 60, (720, 1280, 3), dtype=np.uint8) + np.linspace(0, 190, 1280, dtype=np.uint8)[None, :,
                                                                                                         None]
    encode_thumbnail(frame)
    n = 30
    started = time.perf_counter()
    for _ in range(n):
        encode_thumbnail(frame)
    each_ms = (time.perf_counter() - started) / n * 1000
    print(f"encode_thumbnail 1280x720 -> 384x216: {each_ms:.2f} ms; per frame at 5 fps: {each_ms * 2 / 5:.2f} ms")
    assert each_ms < 50  # generous: a shared CI core


def test_build_keyframe_is_a_valid_wire_payload():
    data, w, h = encode_thumbnail(np.full((360, 640, 3), 128, np.uint8))
    th = Thumb(t=12.0, jpeg=data, width=w, height=h, p_ad=1.0000001, label="ad")
    payload = build_keyframe(Pick("start", None, "ad", th), device="tv1", model_version="m",
                             to_wall=lambda s: 1000.0 + s)
    back = parse_keyframe(payload.to_bytes(), "tv1")
    assert back.ts == 1012.0 and back.stream_t == 12.0 and back.p_ad == 1.0 and back.data == data
    assert (back.kind, back.label, back.width, back.height) == ("start", "ad", 384, 216)
