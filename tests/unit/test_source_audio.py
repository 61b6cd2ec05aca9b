"""VideoSource hands each sampled frame the audio since the previous one: on small MP4s made here with PyAV (H.264 and
stereo AAC with a known silent stretch; one without audio; one with corrupt audio packets)."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from edge.cues import AUDIO_RATE, ScreenFrame, SilenceCue
from edge.sources import Frame, VideoSource
from edge.sources.video import AUDIO_MAX_WAIT_S

SECONDS = 4.0
FPS = 25
RATE = 48_000
GAP = (2.0, 2.3)  # the silent stretch, seconds


def make_clip(path, *, audio: bool = True, audio_start: float = 0.0, amplitude: float = 0.5) -> None:
    """SECONDS of 25 fps H.264 (B-frames, as broadcasts have) and, with ``audio``, a 440 Hz stereo AAC tone from
    ``audio_start`` with digital silence over GAP."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 128, 72, "yuv420p"
        video.options = {"preset": "ultrafast", "x264-params": "bframes=2:b-adapt=0:keyint=50"}
        sound = out.add_stream("aac", rate=RATE, layout="stereo") if audio else None
        per = RATE // FPS
        first = round(audio_start * FPS)
        for i in range(int(SECONDS * FPS)):
            img = np.full((72, 128, 3), (i * 7) % 256, np.uint8)
            img[:, (i * 3) % 128] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
            if sound is not None and i >= first:
                t = (i * per + np.arange(per)) / RATE
                x = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                x[(t >= GAP[0]) & (t < GAP[1])] = 0.0
                chunk = av.AudioFrame.from_ndarray(np.stack([x, x]), format="fltp", layout="stereo")
                chunk.sample_rate, chunk.pts = RATE, i * per
                out.mux(sound.encode(chunk))
        out.mux(video.encode(None))
        if sound is not None:
            out.mux(sound.encode(None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("av") / "clip.mp4"
    make_clip(path)
    return path


@pytest.fixture(scope="module")
def reference(clip):
    """The clip's whole audio track decoded and resampled on its own: (container time of its first sample, samples)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AUDIO_RATE)
    chunks, start = [], None
    with av.open(str(clip)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                if start is None:
                    start = float(out.pts * out.time_base)
                chunks.append(out.to_ndarray().reshape(-1))
    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return start, np.concatenate(chunks)


def frames_of(path, fps=5.0, **kw) -> list[Frame]:
    with VideoSource(str(path), fps, **kw) as src:
        return list(src)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else math.nan


@pytest.mark.parametrize("fps", [5.0, 3.0, None], ids=["5fps", "3fps", "every-frame"])
@pytest.mark.parametrize("skip_unsampled", [True, False])
def test_each_frame_carries_exactly_the_audio_since_the_previous_frame(clip, reference, fps, skip_unsampled):
    frames = frames_of(clip, fps, skip_unsampled=skip_unsampled)
    assert len(frames) == (int(SECONDS * fps) if fps else int(SECONDS * FPS))
    start, ref = reference
    assert abs(start) < 0.05  # the tone starts with the video
    for prev, cur in zip(frames, frames[1:], strict=False):
        assert cur.audio is not None and cur.audio.dtype == np.float32 and cur.audio.ndim == 1
        assert abs(cur.audio.size - (cur.t - prev.t) * AUDIO_RATE) <= 1
    # end to end, the slices are the audio track itself: nothing lost, nothing repeated
    joined = np.concatenate([f.audio for f in frames])
    end = round((frames[-1].t - start) * AUDIO_RATE)
    np.testing.assert_array_equal(joined, ref[:end])


def test_the_silent_stretch_lands_in_the_frames_around_it(clip):
    frames = {round(f.t, 3): f.audio for f in frames_of(clip)}
    assert rms(frames[2.0]) > 0.2  # [1.8, 2.0): tone
    assert rms(frames[2.2]) < 1e-3  # [2.0, 2.2): silence
    second_half = frames[2.4]  # [2.2, 2.4): 0.1 s of silence, then the tone again (AAC smears edges by ~20 ms)
    assert rms(second_half[: round(0.07 * AUDIO_RATE)]) < 1e-3
    assert rms(second_half[round(0.13 * AUDIO_RATE) :]) > 0.2
    assert rms(frames[2.6]) > 0.2


def test_silence_cue_on_the_source_finds_the_gap(clip):
    cue = SilenceCue()
    values = {round(f.t, 3): cue.update(ScreenFrame.from_rgb(f.t, f.image, f.audio)) for f in frames_of(clip)}
    assert values[2.2]["silence"] > 0.95 and values[2.4]["silence"] > 0.95
    assert max(v["silence"] for t, v in values.items() if t not in (0.0, 2.2, 2.4)) < 0.05


def test_a_file_without_audio_gives_none(tmp_path):
    path = tmp_path / "mute.mp4"
    make_clip(path, audio=False)
    with VideoSource(str(path), 5.0) as src:
        frames = list(src)
        assert not src.has_audio
    assert len(frames) == 20 and all(f.audio is None for f in frames)
    cue = SilenceCue()
    for f in frames:
        values = cue.update(ScreenFrame.from_rgb(f.t, f.image, f.audio))
        assert math.isnan(values["silence"]) and math.isnan(values["loudness"])  # never read as silence


def test_audio_can_be_turned_off(clip):
    with VideoSource(str(clip), 5.0, audio=False) as src:
        assert not src.has_audio
        frames = list(src)
    assert len(frames) == 20 and all(f.audio is None for f in frames)
    assert [f.t for f in frames] == [f.t for f in frames_of(clip)]  # the video sampling is unchanged


def test_audio_that_starts_late_leaves_the_first_frames_empty_not_none(tmp_path):
    path = tmp_path / "late.mp4"
    make_clip(path, audio_start=1.0)
    frames = frames_of(path)
    early = [f for f in frames if f.t <= 0.8 + 1e-6]  # (AAC primes ~20 ms before its first sample)
    assert all(f.audio is not None and f.audio.size == 0 for f in early)
    assert all(abs(f.audio.size - 3200) <= 1 for f in frames if f.t > 1.2 + 1e-6)


def damage(clip, out, first: int, last: int) -> list[float]:
    """A copy of ``clip`` with audio packets ``first`` to ``last`` (excluded) overwritten with noise; their times."""
    with av.open(str(clip)) as container:
        packets = [(p.pos, p.size, float(p.pts * p.time_base)) for p in container.demux(audio=0) if p.size]
    data = bytearray(clip.read_bytes())
    rng = np.random.default_rng(0)
    for pos, size, _ in packets[first:last]:
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return [t for _, _, t in packets[first:last]]


def test_corrupt_audio_packets_are_counted_and_skipped(tmp_path, clip):
    damaged = tmp_path / "damaged.mp4"
    hit = damage(clip, damaged, 60, 70)  # ~1.26-1.47 s
    with VideoSource(str(damaged), 5.0) as src:
        frames = list(src)
        assert src.audio_errors >= 5 and src.decode_errors == src.audio_errors
    assert [f.t for f in frames] == [f.t for f in frames_of(clip)]  # every video frame still comes
    lost = sum(3200 - f.audio.size for f in frames[1:])
    assert 0.5 * (hit[-1] - hit[0]) * AUDIO_RATE < lost < 1.5 * (hit[-1] - hit[0] + 0.03) * AUDIO_RATE
    # what is missing is missing, not made-up silence: the tone is heard around the damage
    cue = SilenceCue()
    values = [cue.update(ScreenFrame.from_rgb(f.t, f.image, f.audio)) for f in frames if f.t < 2.0]
    assert max(v["silence"] for v in values[1:]) < 0.05


def test_audio_broken_for_good_is_given_up(tmp_path, clip):
    damaged = tmp_path / "broken.mp4"
    hit = damage(clip, damaged, 40, 160)  # 120 packets from ~0.83 s: every one fails to decode
    with VideoSource(str(damaged), 5.0) as src:
        frames = list(src)
        assert not src.has_audio and src.audio_errors == 50
    assert len(frames) == 20
    assert hit[49] - hit[0] < AUDIO_MAX_WAIT_S  # frames wait for audio that never comes until it is given up:
    assert all(f.audio is not None and f.audio.size == 3200 for f in frames[1:] if f.t < hit[0])
    assert all(f.audio is None for f in frames if f.t > hit[0] + 0.1)  # None, not empty: no audio is not silence


def test_frame_keeps_its_positional_fields():
    frame = Frame(1.0, np.zeros((2, 2, 3), np.uint8), 3)
    assert (frame.t, frame.index, frame.audio) == (1.0, 3, None)
