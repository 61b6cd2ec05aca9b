"""edge.memory: the repeated-ad memory (pHash runs, audio codes, bounds, the file on disk)."""

from __future__ import annotations

import functools
import logging
import math

import cv2
import numpy as np
import pytest
from skimage import data

from edge.cues.base import AUDIO_RATE, ScreenFrame
from edge.memory import AdMemory, MemoryConfig
from edge.memory.audio import CONTEXT_S, AudioFingerprinter
from edge.memory.hashing import frame_hash, phash64

FPS = 5.0
DT = 1.0 / FPS
CHUNK = int(AUDIO_RATE * DT)

# -- made footage ---------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def _photo(name: str) -> np.ndarray:
    img = getattr(data, name)()
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    return cv2.resize(img.astype(np.uint8), (960, 540), interpolation=cv2.INTER_AREA)


def _texture(seed: int) -> np.ndarray:
    """A random smooth texture, 960x540."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (54, 96)).astype(np.float32)
    tex = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 2.0), (960, 540), interpolation=cv2.INTER_CUBIC)
    tex = (tex - tex.min()) / (np.ptp(tex) + 1e-9)
    return (tex * 220 + 15).astype(np.uint8)


def _pan(source: np.ndarray, n: int, dx: float = 3.0, dy: float = 1.0) -> list[np.ndarray]:
    """``n`` 640x360 views panning slowly over a 960x540 source: a shot whose frames change a little each step."""
    out = []
    for i in range(n):
        x, y = int(round(i * dx)) % 320, int(round(i * dy)) % 180
        out.append(np.ascontiguousarray(source[y : y + 360, x : x + 640]))
    return out


def _ad_footage(seed: int, seconds: float = 10.0) -> list[np.ndarray]:
    """A made spot: three shots (two textures and a photo), cut at 1/3 and 2/3."""
    n = int(round(seconds * FPS))
    a, b = n // 3, 2 * n // 3
    photos = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "horse", "page"]
    return (
        _pan(_texture(seed), a)
        + _pan(_photo(photos[seed % len(photos)]), b - a, dx=-2.0, dy=0.5)
        + _pan(_texture(seed + 1000), n - b, dx=0.0, dy=2.0)
    )


def _program_footage(seed: int, n: int) -> list[np.ndarray]:
    """Program footage: shots of 4 s over other textures and photos."""
    photos = ["brick", "grass", "gravel", "moon", "text", "hubble_deep_field", "immunohistochemistry", "retina"]
    shot = int(4 * FPS)
    frames: list[np.ndarray] = []
    k = 0
    while len(frames) < n:
        src = _texture(50_000 + seed * 100 + k) if k % 2 else _photo(photos[(seed + k) % len(photos)])
        frames += _pan(src, shot, dx=2.0 + k % 3, dy=(k % 2) - 0.5)
        k += 1
    return frames[:n]


def _replayed(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same picture from another airing: shifted a pixel or two, gain, noise, JPEG."""
    g = np.roll(frame, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1)).astype(np.float32)
    g = g * rng.uniform(0.92, 1.08) + rng.uniform(-6, 6) + 3.0 * rng.standard_normal(g.shape, dtype=np.float32)
    ok, buf = cv2.imencode(".jpg", np.clip(g, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 50])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _black(rng: np.random.Generator, level: float = 16.0) -> np.ndarray:
    return np.clip(rng.normal(level, 2.0, (360, 640)), 0, 255).astype(np.uint8)


def _feed(mem: AdMemory, frames: list[np.ndarray], t0: float, audio: np.ndarray | None = None) -> list[float]:
    out = []
    for i, g in enumerate(frames):
        chunk = None if audio is None else audio[i * CHUNK : (i + 1) * CHUNK]
        out.append(mem.observe(ScreenFrame.from_gray(t0 + i * DT, g, chunk)))
    return out


def _ad_memory(**overrides: object) -> AdMemory:
    return AdMemory(MemoryConfig(**overrides))  # type: ignore[arg-type]


# -- hashing ----------------------------------------------------------------------------------------------------------


def test_phash_is_imagehash_of_the_small_copy_and_uniform_frames_have_none() -> None:
    import imagehash
    from PIL import Image

    g = _photo("astronaut")[:360, :640]
    small = ScreenFrame.from_gray(0.0, g).small
    tiny = cv2.resize(small, (32, 32), interpolation=cv2.INTER_AREA)
    expected = imagehash.phash(Image.fromarray(tiny))
    code = phash64(small)
    bits = np.array([(code >> (63 - i)) & 1 for i in range(64)], dtype=bool).reshape(8, 8)
    assert (bits == expected.hash).all()
    assert frame_hash(small, 6.0) == code
    rng = np.random.default_rng(0)
    assert frame_hash(ScreenFrame.from_gray(0.0, _black(rng)).small, 6.0) is None
    assert frame_hash(ScreenFrame.from_gray(0.0, _black(rng, 37.0)).small, 6.0) is None


# -- matching ---------------------------------------------------------------------------------------------------------


def test_empty_memory_is_unknown_and_buffers_frames() -> None:
    mem = AdMemory()
    values = _feed(mem, _program_footage(0, 10), 0.0)
    assert all(math.isnan(v) for v in values)
    assert mem.run_length_s == 0.0 and mem.runs() == []
    assert mem.remember(0.0, 2.0) == 10
    assert not math.isnan(mem.observe(ScreenFrame.from_gray(2.0, _program_footage(1, 1)[0])))


def test_remembered_ad_seen_again_is_a_run_with_its_start_and_length() -> None:
    rng = np.random.default_rng(1)
    mem = AdMemory()
    ad = _ad_footage(3)
    _feed(mem, _program_footage(1, 100), 0.0)
    _feed(mem, ad, 20.0)
    _feed(mem, _program_footage(2, 100), 30.0)
    assert mem.remember(20.0, 30.0) == len(ad)
    assert mem.runs(min_s=0.0) == []

    later = _program_footage(3, 150) + [_replayed(f, rng) for f in ad] + _program_footage(4, 100)
    values = _feed(mem, later, 200.0)
    start = 200.0 + 150 * DT
    assert values[:150] == [0.0] * 150
    assert values[150] == 0.0  # a run's first frame: nothing confirms it yet
    assert values[150 + len(ad) :] == [0.0] * 100
    assert np.mean(values[151 : 150 + len(ad)]) > 0.9

    runs = mem.runs(min_s=5.0)
    assert len(runs) == 1, runs
    run = runs[0]
    assert run.ad_id == mem.ad_ids[0] and run.source == "video"
    assert abs(run.start_t - start) <= DT + 1e-9
    assert abs(run.length_s - (len(ad) - 1) * DT) <= DT + 1e-9
    assert mem.run_length_s == 0.0  # ended: the program has been on for more than max_gap_s


def test_run_length_grows_while_the_ad_plays_and_a_late_entry_starts_there() -> None:
    rng = np.random.default_rng(2)
    mem = AdMemory()
    ad = _ad_footage(5)
    _feed(mem, ad, 0.0)
    mem.remember(0.0, 10.0)
    _feed(mem, _program_footage(5, 50), 10.0)
    # Joined 3 s into the spot (a late channel change): the run starts there.
    lengths = []
    for i, g in enumerate(ad[15:]):
        mem.observe(ScreenFrame.from_gray(100.0 + i * DT, _replayed(g, rng)))
        lengths.append(mem.run_length_s)
    assert lengths[-1] == pytest.approx((len(ad) - 16) * DT, abs=DT + 1e-9)
    assert all(b >= a for a, b in zip(lengths, lengths[1:], strict=False))
    (run,) = mem.runs(min_s=5.0)
    assert run.start_t == pytest.approx(100.0, abs=DT + 1e-9)


def test_frames_out_of_the_ads_order_do_not_make_a_run() -> None:
    """Every frame of the ad, shuffled: each matches a stored frame, but not along the ad's timeline.

    A slow pan barely changes a pHash, so frames of one shot (3.2 s here) match each other: shuffled frames can
    follow one shot for a while, never for the 5 s a run needs to count.
    """
    rng = np.random.default_rng(3)
    mem = AdMemory()
    ad = _ad_footage(7)
    _feed(mem, ad, 0.0)
    mem.remember(0.0, 10.0)
    shuffled = [ad[i] for i in rng.permutation(len(ad))]
    values = _feed(mem, shuffled, 50.0)
    assert np.nansum(values) > 0  # frames do match...
    assert mem.runs(min_s=5.0) == []  # ...but make no run
    assert max(r.length_s for r in mem.runs(min_s=0.0)) < 3.2 + 0.5 + DT


def test_unrelated_footage_never_matches() -> None:
    rng = np.random.default_rng(4)
    mem = AdMemory()
    t = 0.0
    for seed in range(6):
        ad = _ad_footage(seed * 11 + 1)
        _feed(mem, ad, t)
        assert mem.remember(t, t + 10.0) > 0
        t += 20.0
    assert len(mem.ad_ids) == 6
    footage = _program_footage(9, 1000)
    values = _feed(mem, [_replayed(f, rng) for f in footage], 1000.0)
    assert values == [0.0] * len(footage)
    assert mem.runs(min_s=0.0) == []


def test_black_frames_are_never_stored_or_matched() -> None:
    rng = np.random.default_rng(5)
    mem = AdMemory()
    ad = [_black(rng) for _ in range(10)] + _ad_footage(13) + [_black(rng, 37.0) for _ in range(10)]
    _feed(mem, ad, 0.0)
    assert mem.remember(0.0, len(ad) * DT) == len(ad) - 20
    blacks = [_black(rng, level) for level in (2.0, 16.0, 37.0) for _ in range(50)]
    values = _feed(mem, blacks, 100.0)
    assert values == [0.0] * len(blacks)
    assert mem.runs(min_s=0.0) == []


def test_a_known_ad_is_refreshed_not_stored_twice_and_new_spots_are_added() -> None:
    rng = np.random.default_rng(6)
    clock = iter(range(1000, 10_000, 10))
    mem = AdMemory(clock=lambda: float(next(clock)))
    first, second, third = _ad_footage(21), _ad_footage(22), _ad_footage(23)
    _feed(mem, first + second, 0.0)
    assert mem.remember(0.0, 10.0) == 50
    assert mem.remember(10.0, 20.0) == 50
    a, b = mem.ad_ids
    # The first spot again, then a new one, remembered as one break: only the new spot's frames are stored.
    _feed(mem, [_replayed(f, rng) for f in first] + third, 100.0)
    assert mem.remember(100.0, 120.0) == 50
    assert mem.ad_ids[0] == b  # the first spot was seen again: it is now more recent than the second
    assert mem.stored_frames == 150
    # The same break once more: known, nothing stored.
    _feed(mem, [_replayed(f, rng) for f in first + third], 200.0)
    assert mem.remember(200.0, 220.0) == 0
    assert mem.stored_frames == 150
    # Known but for a second of something new at its end (under 20%): still a known break, nothing stored.
    _feed(mem, [_replayed(f, rng) for f in first] + _program_footage(3, 5), 300.0)
    assert mem.remember(300.0, 311.0) == 0
    assert mem.stored_frames == 150
    assert a in mem.ad_ids


def test_the_bound_forgets_the_ads_seen_least_recently() -> None:
    rng = np.random.default_rng(7)
    clock = iter(range(1000, 10_000, 10))
    mem = AdMemory(MemoryConfig(max_frames=120), clock=lambda: float(next(clock)))
    spots = [_ad_footage(31 + k) for k in range(4)]
    t = 0.0
    ids = []
    for spot in spots[:2]:
        _feed(mem, spot, t)
        mem.remember(t, t + 10.0)
        ids.append(mem.ad_ids[-1])
        t += 20.0
    assert mem.stored_frames == 100
    # Seeing the first spot again (a run of 5 s or more) makes it the most recently seen.
    _feed(mem, [_replayed(f, rng) for f in spots[0]], t)
    t += 20.0
    assert mem.ad_ids == [ids[1], ids[0]]
    _feed(mem, spots[2], t)
    mem.remember(t, t + 10.0)
    t += 20.0
    assert ids[1] not in mem.ad_ids and ids[0] in mem.ad_ids
    assert mem.stored_frames <= 120
    # The forgotten spot no longer matches; the kept one still does.
    _feed(mem, [_replayed(f, rng) for f in spots[1]], t)
    assert mem.runs(min_s=2.0) and all(r.ad_id != ids[1] for r in mem.runs(min_s=0.0))
    _feed(mem, [_replayed(f, rng) for f in spots[0]], t + 20.0)
    assert any(r.ad_id == ids[0] and r.start_t >= t + 20.0 for r in mem.runs(min_s=5.0))
    # One entry over the bound alone keeps its first max_frames frames.
    small = AdMemory(MemoryConfig(max_frames=30))
    _feed(small, spots[3], 0.0)
    assert small.remember(0.0, 10.0) == 30 and small.stored_frames == 30


def test_a_live_run_of_an_ad_the_bound_forgets_ends_there() -> None:
    mem = AdMemory(MemoryConfig(max_frames=60))
    spots = [_ad_footage(41), _ad_footage(42)]
    _feed(mem, spots[0], 0.0)
    mem.remember(0.0, 10.0)
    (first,) = mem.ad_ids
    _feed(mem, spots[1], 20.0)
    _feed(mem, spots[0][:20], 50.0)  # a run of the first spot is live...
    assert mem.run_length_s > 3.0
    mem.remember(20.0, 30.0)  # ...when the second is remembered and the bound forgets the first
    assert first not in mem.ad_ids and mem.stored_frames == 50
    assert mem.run_length_s == 0.0
    values = _feed(mem, spots[0][20:], 54.0)
    assert values == [0.0] * 30
    assert all(r.ad_id != first for r in mem.runs(min_s=0.0))


# -- on disk ------------------------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(8)
    path = tmp_path / "memory.npz"
    ad = _ad_footage(51)
    with AdMemory(path=path) as mem:
        _feed(mem, ad, 0.0)
        stored = mem.remember(0.0, 10.0)
        ids = mem.ad_ids
    assert path.exists()
    again = AdMemory(path=path)
    assert again.ad_ids == ids and again.stored_frames == stored
    np.testing.assert_array_equal(again._video.codes, mem._video.codes)
    values = _feed(again, [_replayed(f, rng) for f in ad], 500.0)
    assert np.nansum(values) > 40
    (run,) = again.runs()
    assert run.ad_id == ids[0] and run.start_t == pytest.approx(500.0, abs=DT + 1e-9)
    # New ads after a reload get new ids.
    _feed(again, _ad_footage(52), 600.0)
    again.remember(600.0, 610.0)
    assert len(set(again.ad_ids)) == 2
    again.close()
    assert AdMemory(path=path).ad_ids == again.ad_ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.npz"]  # no temporary files left


@pytest.mark.parametrize(
    "content",
    [b"not an npz at all", b"PK\x03\x04 truncated zip", None],
    ids=["garbage", "truncated-zip", "wrong-columns"],
)
def test_a_corrupt_file_is_set_aside_and_the_memory_keeps_working(tmp_path, caplog, content) -> None:
    path = tmp_path / "memory.npz"
    if content is None:
        np.savez(path, format=np.array(1), hashes=np.zeros((2, 2), dtype=np.uint64))
    else:
        path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="edge.memory.memory"):
        mem = AdMemory(path=path)
    assert mem.ad_ids == [] and not path.exists()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("memory.npz.corrupt-")]
    assert len(aside) == 1
    assert any("unreadable" in r.getMessage() and aside[0].name in r.getMessage() for r in caplog.records)
    assert math.isnan(mem.observe(ScreenFrame.from_gray(0.0, _program_footage(0, 1)[0])))
    _feed(mem, _ad_footage(61), 1.0)
    assert mem.remember(1.0, 11.0) == 50
    mem.close()
    assert AdMemory(path=path).stored_frames == 50


def test_stream_time_going_back_restarts_buffers_not_ads() -> None:
    mem = AdMemory()
    ad = _ad_footage(71)
    _feed(mem, ad, 100.0)
    mem.remember(100.0, 110.0)
    _feed(mem, _program_footage(7, 10), 0.0)  # a new source from t = 0
    assert mem.remember(100.0, 110.0) == 0  # the buffer restarted: nothing of that range is left
    values = _feed(mem, ad, 10.0)
    assert np.nansum(values) > 40 and len(mem.runs()) == 1


# -- audio ----------------------------------------------------------------------------------------------------------


def _music(seed: int, seconds: float) -> np.ndarray:
    """Made music: notes with harmonics and decays, some with a noise burst, of random pitch and length."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * AUDIO_RATE))
    pos = 0
    while pos < out.size:
        n = int(rng.uniform(0.08, 0.5) * AUDIO_RATE)
        t = np.arange(n) / AUDIO_RATE
        f0 = 220 * 2 ** (rng.integers(-12, 24) / 12)
        tone = sum(0.5**k * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6)) for k in range(5))
        if rng.random() < 0.3:
            tone = tone + rng.normal(0, 0.5, n) * np.exp(-t * 30)
        m = min(n, out.size - pos)
        out[pos : pos + m] += (0.2 * tone * np.exp(-t * rng.uniform(2, 10)))[:m]
        pos += int(n * rng.uniform(0.6, 1.0))
    return out.astype(np.float32)


def _aired_again(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Quieter, slightly low-passed, with noise 20 dB under it."""
    x = np.convolve(audio * 0.5, [0.25, 0.5, 0.25], mode="same")
    return (x + rng.normal(0, np.std(x) / 10.0, x.size)).astype(np.float32)


def test_audio_fingerprint_skips_silence_and_keeps_time() -> None:
    fp = AudioFingerprinter()
    quiet = np.random.default_rng(0).normal(0, 10 ** (-70 / 20), AUDIO_RATE * 3).astype(np.float32)
    steps = []
    for i in range(0, quiet.size, CHUNK):
        steps += fp.feed(10.0 + (i + CHUNK) / AUDIO_RATE, quiet[i : i + CHUNK])
    assert steps and all(code is None for _, _, code in steps)
    times = np.array([t for t, _, _ in steps])
    np.testing.assert_allclose(np.diff(times), 0.064, atol=1e-9)
    assert 10.0 < times[0] < 10.1 and times[-1] <= 13.0 + 1e-9
    loud = _music(1, 3.0)
    fp.reset()
    codes = []
    for i in range(0, loud.size, CHUNK):
        codes += fp.feed((i + CHUNK) / AUDIO_RATE, loud[i : i + CHUNK])
    assert sum(c is not None for _, _, c in codes) >= len(codes) - int(CONTEXT_S / 0.064) - 1


def test_audio_and_video_of_a_remembered_ad_both_match() -> None:
    rng = np.random.default_rng(9)
    mem = AdMemory()
    ad, sound = _ad_footage(81), _music(81, 10.0)
    prog = _program_footage(8, 100)
    _feed(mem, prog, 0.0, _music(500, 20.0))
    _feed(mem, ad, 20.0, sound)
    _feed(mem, prog[:50], 30.0, _music(501, 10.0))
    assert mem.remember(20.0, 30.0) == 50
    assert mem.stored_audio_codes > 25
    # Aired again, with a different sample phase (a 0.37 s lead-in), quieter and noisy.
    lead = int(0.37 * AUDIO_RATE)
    later_audio = np.concatenate([_music(502, 30.0)[: 100 * CHUNK - lead], _aired_again(sound, rng)])
    later_audio = np.concatenate([later_audio, _music(503, 30.0)])
    frames = _program_footage(9, 100) + [_replayed(f, rng) for f in ad] + _program_footage(10, 60)
    start = 200.0 + 100 * DT
    values = _feed(mem, frames, 200.0, np.concatenate([np.zeros(lead, np.float32), later_audio]))
    assert max(values[:100]) < 1.0 and max(values[160:]) < 1.0
    assert np.mean(np.array(values[110:150]) == 1.0) > 0.8
    (run,) = mem.runs()
    assert run.source == "both" and run.start_t == pytest.approx(start, abs=DT + 1e-9)


def test_audio_alone_matches_over_other_pictures_and_scores_either() -> None:
    rng = np.random.default_rng(10)
    mem = AdMemory()
    sound = _music(91, 12.0)
    _feed(mem, _ad_footage(91, 12.0), 0.0, sound)
    mem.remember(0.0, 12.0)
    values = _feed(mem, _program_footage(11, 60), 100.0, _aired_again(sound, rng))
    assert mem.last_video == 0.0
    # One code proves little: audio scores only once its run has lasted 2 s (after a code's 1.28 s of context).
    quiet = int((CONTEXT_S + 2.0) / DT)
    assert values[:quiet] == [0.0] * quiet and values[quiet + 2] == 0.75
    assert np.mean(np.array(values) == 0.75) > 0.0 and set(values) <= {0.0, 0.75}
    (run,) = mem.runs()
    assert run.source == "audio" and run.start_t == pytest.approx(100.0, abs=0.4)
    assert run.end_t == pytest.approx(112.0, abs=0.4)


def test_unrelated_audio_makes_no_runs() -> None:
    mem = AdMemory()
    t = 0.0
    for seed in range(4):
        _feed(mem, _ad_footage(100 + seed, 15.0), t, _music(100 + seed, 15.0))
        mem.remember(t, t + 15.0)
        t += 15.0
    values = _feed(mem, _program_footage(12, 900), 1000.0, _music(999, 180.0))
    assert mem.runs(min_s=2.0) == []
    assert np.mean(np.array(values) > 0) < 0.02


def test_the_edge_phash_is_imagehash_s_bit_for_bit():
    """The edge computes pHash with OpenCV's DCT (no SciPy on the Pi); the bits must be imagehash's own."""
    import imagehash
    from PIL import Image
    from skimage import data

    from edge.memory.hashing import phash_bits

    rng = np.random.default_rng(3)
    images = [cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img, (32, 32),
                         interpolation=cv2.INTER_AREA)
              for img in (data.astronaut(), data.camera(), data.coffee(), data.rocket(), data.coins(), data.grass())]
    images += [(rng.random((32, 32)) * 255).astype(np.uint8) for _ in range(200)]
    for img in images:
        want = imagehash.phash(Image.fromarray(img), hash_size=8).hash
        assert np.array_equal(phash_bits(img), want)
