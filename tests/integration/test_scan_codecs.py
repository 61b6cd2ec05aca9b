"""``adbreak scan`` on what DVRs record besides H.264 in MP4: HEVC in MKV, and interlaced MPEG-2 in MPEG-TS (as
DVB-T/ATSC broadcasts are), both encoded by FFmpeg from the first 150 s of the session's built recording (a full
break with program before it). The 1080i and 2-hour figures are ``bench/bench_scan.py``'s; here the formats must
decode, be scanned coarse to fine, and give the break."""

from __future__ import annotations

import subprocess

import pytest

from adbreak.segments import is_ad
from tests import scan_support as ss
from tests.support import missing_service

pytestmark = pytest.mark.slow

CLIP_S = 150.0
ENCODINGS = {
    "hevc-mkv": ("mkv", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
                         "-c:a", "aac", "-f", "matroska"]),
    "mpeg2-interlaced-ts": ("ts", ["-vf", "scale=720:576", "-c:v", "mpeg2video", "-b:v", "4M", "-g", "12", "-bf", "2",
                                   "-flags", "+ilme+ildct", "-top", "1", "-c:a", "mp2", "-b:a", "192k",
                                   "-f", "mpegts"]),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> ss.Built:
    return ss.built_recording(tmp_path_factory)


@pytest.fixture(scope="module", params=sorted(ENCODINGS))
def encoded(request, built, tmp_path_factory):  # noqa: ANN001, ANN201
    exe = ss.ffmpeg()
    if exe is None:
        missing_service("no FFmpeg program to encode the test recording")
    suffix, args = ENCODINGS[request.param]
    out = tmp_path_factory.mktemp(request.param) / f"{ss.NAME}.{suffix}"
    proc = subprocess.run([exe, "-nostdin", "-v", "error", "-y", "-i", str(built.video), "-t", str(CLIP_S), *args,
                           str(out)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "Unknown encoder" in proc.stderr:
        pytest.skip(f"this FFmpeg cannot encode {request.param}: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return request.param, out


def test_the_format_is_scanned_coarse_to_fine_and_the_break_found(built, encoded):
    name, path = encoded
    proc, data = ss.scan_json(path, "--no-files")
    assert proc.returncode == 0, proc.stderr
    assert data["mode"] == "fast", data["warnings"]
    assert data["info"]["video_codec"] == {"hevc-mkv": "hevc", "mpeg2-interlaced-ts": "mpeg2video"}[name]
    if name.startswith("mpeg2"):
        assert data["info"]["interlaced"] is True
    segments = ss.segments_of(data)
    ss.assert_tiles(segments, segments[-1].end)
    assert abs(segments[-1].end - CLIP_S) < 0.5
    breaks = [b for b in ss.full_breaks(built.truth) if b.end < CLIP_S - 20]
    assert breaks, "the built recording has no full break in its first 150 s"
    for b in breaks:
        found = ss.ad_overlap(segments, b.start, b.end)
        assert found >= 0.95 * (b.end - b.start), (name, b, [s for s in segments if is_ad(s.label)])
    program = sum(s.end - s.start for s in segments if not is_ad(s.label))
    true_program = sum(s.end - s.start for s in ss.clip(built.truth, CLIP_S) if not is_ad(s.label))
    assert program >= true_program - 3.0, (name, segments)
