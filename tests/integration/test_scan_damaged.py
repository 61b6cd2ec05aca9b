"""``adbreak scan`` on MPEG-TS recordings, whole and damaged (issue 14, bad input): "A truncated or corrupt recording
(missing TS packets, a cut-off end, a broken GOP): scan what decodes, say where the gaps were, exit 0 with a warning;
exit non-zero with a one-line error only when nothing decodes. A recording with no audio: the video cues decide."

The TS is the session's built recording (``tests/scan_support.py``) copied into MPEG-TS by FFmpeg (``-c copy``);
each damaged copy is made from it in Python, 188-byte packet by packet, in the program between the two ad breaks:
cut off at 70 % of its bytes; 15 s of packets removed; the same packets overwritten with random bytes; ~4 KB of
the packets of an intra picture zeroed (its GOP decodes broken). Every one is scanned once by the real command."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from adbreak.metrics import evaluate_segments
from adbreak.segments import Segment, is_ad
from tests import scan_support as ss

pytestmark = pytest.mark.slow


DAMAGE = re.compile(r"damag|corrupt|cut off|cut-off|truncat|missing|nothing decoded|broken|\bgaps?\b", re.I)
"""What a warning about the recording's damage says (one of these words)."""
HOLE_S = (30.0, 45.0)
"""The stretch of the middle program (seconds after its start) whose packets are removed or overwritten."""


@dataclass(frozen=True)
class Scanned:
    path: Path
    stderr: str
    data: dict[str, Any]

    @property
    def segments(self) -> list[Segment]:
        return ss.segments_of(self.data)

    @property
    def warnings(self) -> list[str]:
        return list(self.data["warnings"])

    def damage_warnings(self, whole: Scanned | None = None) -> list[str]:
        """The warnings about damage, less any the whole recording (``whole``) gets too."""
        return [w for w in self.warnings if DAMAGE.search(w) and (whole is None or w not in whole.warnings)]


def scan(path: Path) -> Scanned:
    """``adbreak scan PATH --json --no-files``: exit 0, no traceback (asserted); every JSON warning on stderr."""
    proc, data = ss.scan_json(path, "--no-files")
    assert sorted(ln.removeprefix("adbreak scan: warning: ") for ln in ss.warnings_of(proc)) == sorted(
        data["warnings"]), proc.stderr
    ss.assert_tiles(ss.segments_of(data), data["duration_s"])
    return Scanned(path, proc.stderr, data)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> ss.Built:
    return ss.built_recording(tmp_path_factory)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scan-ts")


@pytest.fixture(scope="module")
def ts(built, root) -> Path:
    return ss.remux(built.video, root / "source.ts", "mpegts")


@pytest.fixture(scope="module")
def middle(built) -> Segment:
    """The program between the two breaks (the damage goes there, away from any boundary)."""
    framed = [s for i, s in enumerate(built.truth) if 0 < i < len(built.truth) - 1 and not is_ad(s.label)]
    assert framed, built.truth
    seg = max(framed, key=lambda s: s.duration)
    assert seg.duration >= HOLE_S[1] + 20, seg
    return seg


# ------------------------------------------------------------------------------------------------- whole TS
@pytest.fixture(scope="module")
def intact(ts) -> Scanned:
    return scan(ts)


def test_an_intact_ts_scans_as_the_mp4_does(built, intact):
    """The same streams in another container: the same answer, coarse to fine with its sound, nothing to warn of."""
    info = intact.data["info"]
    assert info["container"] == "mpegts" and info["video_codec"] == "h264", info
    assert info["audio"] is True, (info, intact.warnings)
    assert intact.data["mode"] == "fast"
    assert intact.warnings == [] and intact.data["gaps"] == [], intact.warnings
    assert intact.data["duration_s"] == pytest.approx(built.duration_s, abs=0.1)
    assert evaluate_segments(built.truth, intact.segments)["accuracy"] >= 0.98


def test_a_window_of_a_ts_decodes_from_its_start_as_in_the_mp4(built, ts):
    """``window_pass`` seeks to the intra frame before each window: in a TS as in an MP4, every grid frame of a window
    that begins between two intra frames is analysed (none lost to a seek that lands after the intra frame)."""
    from adbreak.scan import passes

    keys = ss.keyframe_times(ts)
    step = keys[1] - keys[0]
    a = keys[len(keys) // 2] + 0.3 * step  # inside a GOP
    windows = [(a, a + 0.4 * step), (keys[-1], built.duration_s + 1.0)]  # and the last GOP, to the very end
    got = passes.window_pass(ts, windows, 5.0)
    want = passes.window_pass(built.video, windows, 5.0)
    assert want.k and want.k[-1] == int(built.duration_s * 5) - 1, want.k[-3:]
    assert got.k == want.k, (got.k[:3], got.k[-3:], want.k[:3], want.k[-3:])


# ------------------------------------------------------------------------------------------------ cut off
@pytest.fixture(scope="module")
def truncated(ts, root) -> tuple[Scanned, float]:
    path = ss.truncated(ts, root / "truncated.ts", 0.7)
    return scan(path), ss.last_video_time(path)


def test_a_cut_off_ts_scans_to_where_its_picture_ends(built, truncated):
    scanned, video_end = truncated
    assert video_end < built.duration_s - 30, video_end
    assert scanned.data["duration_s"] == pytest.approx(video_end, abs=1.0)
    assert scanned.segments[-1].end == pytest.approx(video_end, abs=1.0)


def test_a_cut_off_ts_finds_the_breaks_before_the_cut(built, truncated):
    scanned, video_end = truncated
    before = [s for s in built.truth if is_ad(s.label) and s.end < video_end - 5.0]
    assert before, (built.truth, video_end)
    for brk in before:
        assert ss.ad_overlap(scanned.segments, brk.start, brk.end) >= 0.5 * brk.duration, (brk, scanned.segments)
    truth = ss.clip(built.truth, scanned.data["duration_s"])
    metrics = evaluate_segments(truth, scanned.segments)
    assert metrics["accuracy"] >= 0.95, (metrics, scanned.segments, scanned.warnings)


def test_a_cut_off_ts_says_so(truncated, intact):
    scanned, _ = truncated
    assert scanned.damage_warnings(intact), (scanned.warnings, intact.warnings)
    assert scanned.damage_warnings(intact)[0] in scanned.stderr


# --------------------------------------------------------------------------------- packets missing or garbage
def hole(ts: Path, middle: Segment) -> tuple[float, float, int, int]:
    a, b = middle.start + HOLE_S[0], middle.start + HOLE_S[1]
    return a, b, ss.packet_index_at(ts, a), ss.packet_index_at(ts, b)


@pytest.fixture(scope="module")
def removed(ts, root, middle) -> tuple[Scanned, float, float]:
    a, b, first, last = hole(ts, middle)
    return scan(ss.packets_removed(ts, root / "removed.ts", first, last)), a, b


@pytest.fixture(scope="module")
def garbled(ts, root, middle) -> tuple[Scanned, float, float]:
    a, b, first, last = hole(ts, middle)
    return scan(ss.packets_garbled(ts, root / "garbled.ts", first, last)), a, b


@pytest.mark.parametrize("damage", ["removed", "garbled"])
def test_missing_packets_give_sensible_segments(built, request, damage):
    scanned, _, _ = request.getfixturevalue(damage)
    metrics = evaluate_segments(built.truth, scanned.segments)
    assert metrics["accuracy"] >= 0.95 and metrics["missed_breaks"] == 0, (metrics, scanned.segments)


@pytest.mark.parametrize("damage", ["removed", "garbled"])
def test_missing_packets_are_reported_with_where_they_were(request, intact, damage):
    scanned, a, b = request.getfixturevalue(damage)
    assert scanned.damage_warnings(intact), (scanned.warnings, intact.warnings)
    gaps = [tuple(g) for g in scanned.data["gaps"]]
    assert any(g0 < b and g1 > a for g0, g1 in gaps), (gaps, (a, b))  # a gap over the missing stretch
    assert all(g1 - g0 < 3 * (b - a) + 20 for g0, g1 in gaps), gaps  # and not much more


# ----------------------------------------------------------------------------------------------- broken GOP
@pytest.fixture(scope="module")
def broken_gop(ts, root, middle) -> tuple[Scanned, float]:
    keys = ss.keyframe_times(ts)
    k = next(i for i, t in enumerate(keys) if t >= middle.start + 20.0)
    return scan(ss.gop_broken(ts, root / "broken-gop.ts", k)), keys[k]


def test_a_broken_gop_gives_sensible_segments(built, broken_gop):
    scanned, _ = broken_gop
    metrics = evaluate_segments(built.truth, scanned.segments)
    assert metrics["accuracy"] >= 0.98, (metrics, scanned.segments)


def test_a_broken_gop_is_reported(broken_gop, intact):
    scanned, at = broken_gop
    assert scanned.damage_warnings(intact), (at, scanned.warnings, intact.warnings, scanned.data["info"])


# ---------------------------------------------------------------------------------------------- no sound
@pytest.fixture(scope="module")
def no_sound(built, root) -> Scanned:
    return scan(ss.remux(built.video, root / "silent-film.mp4", "mp4", audio=False))


def test_a_recording_without_sound_is_decided_by_the_picture(built, no_sound):
    info = no_sound.data["info"]
    assert info["audio"] is False and info["audio_codec"] is None, info
    assert no_sound.data["mode"] == "full"  # no silence to plan windows from: every grid frame analysed
    assert no_sound.data["frames_analysed"] >= built.duration_s * 5 - 5
    assert no_sound.damage_warnings() == [], no_sound.warnings
    metrics = evaluate_segments(built.truth, no_sound.segments)
    assert metrics["accuracy"] >= 0.98, (metrics, no_sound.segments)


def test_a_recording_without_sound_says_the_picture_alone_decides(no_sound):
    """docs/recordings.md: "No sound track, or one that does not decode: the picture alone decides (a warning says
    so)"."""
    assert any(re.search(r"sound|audio", w, re.I) for w in no_sound.warnings), no_sound.warnings
