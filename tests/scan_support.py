"""Test support for ``adbreak scan``: one real built recording per test session (shared by every scan test module),
its MPEG-TS copy, damaged copies of that TS (truncated, packets removed or overwritten, a broken GOP), and running
the real ``adbreak scan`` command.

The recording: 6 minutes of the ``heldout`` pool at 640x360 with two ad breaks, each with at least 60 s of
program on both sides (the decision's duration prior wants shows of >= 60 s between breaks). Building it takes
about a minute on the 2-core CI machine; it is built once per process whichever module asks first.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbreak.segments import Segment, is_ad, read_segments

NAME = "Evening News (2026) S01E02"  # a DVR's name: spaces and parentheses
SEED = 1
DURATION_S = 360.0
SIZE = (640, 360)
TS_PACKET = 188
MIN_PROGRAM_S = 60.0

_BUILT: dict[str, Any] = {}


@dataclass(frozen=True)
class Built:
    """The built recording (``video``, untouched: copy it before writing beside it) and its truth."""

    video: Path
    truth: list[Segment]
    duration_s: float
    fps: float


def built_recording(tmp_path_factory) -> Built:  # noqa: ANN001 - pytest's TempPathFactory
    """The session's recording, built on first use (one per process, whichever module asks first)."""
    if "built" not in _BUILT:
        from adbreak.broadcast import build_broadcast

        root = tmp_path_factory.mktemp("scan-recording")
        info = build_broadcast(root, "rec", seed=SEED, duration_s=DURATION_S, pool="heldout", size=SIZE)
        truth = read_segments(info.truth)
        check_structure(truth)
        _BUILT["built"] = Built(Path(info.video), truth, float(info.duration_s), float(info.fps))
    return _BUILT["built"]


def full_breaks(truth: list[Segment], min_program_s: float = MIN_PROGRAM_S) -> list[Segment]:
    """The ad breaks of ``truth`` with at least ``min_program_s`` of program right before and after them."""
    out = []
    for i, seg in enumerate(truth):
        if is_ad(seg.label) and 0 < i < len(truth) - 1:
            before, after = truth[i - 1], truth[i + 1]
            if not is_ad(before.label) and not is_ad(after.label) and min(before.duration, after.duration) >= \
                    min_program_s:
                out.append(seg)
    return out


def check_structure(truth: list[Segment]) -> None:
    """The built truth must give the scan something to find: a full break framed by >= 60 s of program."""
    assert full_breaks(truth), f"the built recording has no ad break with program on both sides: {truth}"


def clip(segments: list[Segment], end: float) -> list[Segment]:
    """``segments`` cut at ``end``."""
    return [Segment(s.start, min(s.end, end), s.label) for s in segments if s.start < end]


def ad_overlap(predicted: list[Segment], a: float, b: float) -> float:
    """Seconds of ``[a, b)`` that ``predicted`` calls ad."""
    return sum(max(0.0, min(b, s.end) - max(a, s.start)) for s in predicted if is_ad(s.label))


def segments_of(data: dict[str, Any]) -> list[Segment]:
    """The segments of ``adbreak scan --json``'s output (or of ``ScanResult.to_json()``)."""
    return [Segment(float(s["start"]), float(s["end"]), s["label"]) for s in data["segments"]]


def assert_tiles(segments: list[Segment], end: float, tol: float = 1e-3) -> None:
    assert segments, "no segment"
    assert abs(segments[0].start) <= tol, segments
    for x, y in zip(segments[:-1], segments[1:], strict=True):
        assert abs(x.end - y.start) <= tol and x.label != y.label, (x, y)
    assert abs(segments[-1].end - end) <= tol, (segments[-1], end)


# ------------------------------------------------------------------------------------------------------- running
def run_scan(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``adbreak scan ARGS`` in a new process, as a user (or a DVR script) runs it."""
    return subprocess.run([sys.executable, "-m", "adbreak.cli", "scan", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=cwd)


def scan_json(*args: str | Path, **kwargs: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``adbreak scan ARGS --json``: the process and its parsed JSON (exit code 0 asserted)."""
    proc = run_scan(*args, "--json", **kwargs)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout)


def warnings_of(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("adbreak scan: warning: ")]


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``adbreak scan: error: ...`` line of a failed run (non-zero exit, no traceback, nothing else)."""
    assert proc.returncode != 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("adbreak scan: error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------------------- FFmpeg
def ffmpeg() -> str | None:
    """An FFmpeg program: the scanner's own choice (``adbreak.scan.passes.ffmpeg_exe``), else the PATH's."""
    from adbreak.scan import passes

    try:
        exe = passes.ffmpeg_exe()
    except Exception:  # noqa: BLE001 - whichever way it says "none"
        exe = None
    return exe or shutil.which("ffmpeg")


def remux(src: Path, dst: Path, fmt: str, *, audio: bool = True) -> Path:
    """``src``'s streams copied (no re-encoding) into container ``fmt`` (``mpegts``, ``mp4``), without its audio
    unless ``audio``: ``ffmpeg -c copy``, or PyAV's muxer where no FFmpeg program is installed."""
    exe = ffmpeg()
    if exe is not None:
        cmd = [exe, "-nostdin", "-v", "error", "-y", "-i", str(src), "-map", "0:v:0"]
        cmd += ["-map", "0:a:0?"] if audio else ["-an"]
        cmd += ["-c", "copy", "-f", fmt, str(dst)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        return dst
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt) as out:
        keep = [s for s in inp.streams if s.type == "video" or (audio and s.type == "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in keep}
        for packet in inp.demux(keep):
            if packet.dts is None:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)
    return dst


def copy_to(src: Path, folder: Path, name: str) -> Path:
    """``src`` copied (modification time kept) as ``folder/name``."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / name
    shutil.copy2(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------- damaged TS
@dataclass(frozen=True)
class TsPacket:
    index: int  # packet number in the file
    pid: int
    start: bool  # payload_unit_start_indicator
    random_access: bool  # adaptation field's random_access_indicator
    payload_at: int  # byte offset of the payload inside the packet


def ts_packets(data: bytes) -> list[TsPacket]:
    """The 188-byte packets of an MPEG-TS (every one must start with the sync byte)."""
    out = []
    for i in range(len(data) // TS_PACKET):
        p = data[i * TS_PACKET:(i + 1) * TS_PACKET]
        assert p[0] == 0x47, f"packet {i} has no sync byte"
        pid = ((p[1] & 0x1F) << 8) | p[2]
        afc = (p[3] >> 4) & 3
        has_af = afc in (2, 3) and p[4] > 0
        payload_at = 4 + (1 + p[4] if afc in (2, 3) else 0)
        out.append(TsPacket(i, pid, bool(p[1] & 0x40), has_af and bool(p[5] & 0x40), min(payload_at, TS_PACKET)))
    return out


def video_pid(data: bytes, packets: list[TsPacket]) -> int:
    """The PID whose PES packets carry a video stream (stream_id 0xE0-0xEF)."""
    for pk in packets:
        if pk.start:
            at = pk.index * TS_PACKET + pk.payload_at
            if data[at:at + 3] == b"\0\0\1" and 0xE0 <= data[at + 3] <= 0xEF:
                return pk.pid
    raise AssertionError("no video PES in the TS")


def packet_index_at(ts: Path, t: float) -> int:
    """The number of the TS packet where the video packet at or after ``t`` seconds (video clock) begins."""
    import av

    with av.open(str(ts)) as c:
        stream = c.streams.video[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        for packet in c.demux(stream):
            if packet.pts is not None and packet.pos is not None and float(packet.pts * packet.time_base) - origin \
                    >= t:
                return int(packet.pos) // TS_PACKET
    raise AssertionError(f"no video packet at {t} s")


def keyframe_times(ts: Path) -> list[float]:
    """The video clock times of the key packets of ``ts``, in file order."""
    import av

    with av.open(str(ts)) as c:
        stream = c.streams.video[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return [float(p.pts * p.time_base) - origin for p in c.demux(stream) if p.is_keyframe and p.pts is not None]


def last_video_time(path: Path) -> float:
    """The video clock time of the last video packet that demuxes (where a cut-off recording's picture ends)."""
    import av

    last = 0.0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        for p in c.demux(stream):
            if p.pts is not None:
                last = max(last, float(p.pts * p.time_base) - origin)
    return last


def truncated(src: Path, dst: Path, share: float) -> Path:
    """The first ``share`` of ``src``'s bytes (a recording cut off mid-packet: a full disk, a crashed tuner)."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def packets_removed(src: Path, dst: Path, first: int, last: int) -> Path:
    """``src`` without TS packets ``first`` to ``last - 1`` (a reception dropout)."""
    data = src.read_bytes()
    dst.write_bytes(data[: first * TS_PACKET] + data[last * TS_PACKET:])
    return dst


def packets_garbled(src: Path, dst: Path, first: int, last: int, *, seed: int = 3) -> Path:
    """``src`` with TS packets ``first`` to ``last - 1`` overwritten with random bytes (sync bytes too)."""
    data = bytearray(src.read_bytes())
    a, b = first * TS_PACKET, last * TS_PACKET
    data[a:b] = random.Random(seed).randbytes(b - a)
    dst.write_bytes(bytes(data))
    return dst


def gop_broken(src: Path, dst: Path, keyframe: int, *, packets: int = 24) -> Path:
    """``src`` with the payload of ``packets`` video TS packets (~4.4 KB) zeroed right after the start of its
    ``keyframe``-th video key frame: the TS stays well-formed, the intra picture and the pictures that refer to it
    (its GOP) decode damaged."""
    data = bytearray(src.read_bytes())
    pks = ts_packets(bytes(data))
    vpid = video_pid(bytes(data), pks)
    keys = [pk for pk in pks if pk.pid == vpid and pk.random_access]
    start = keys[keyframe].index
    zeroed = 0
    for pk in pks[start + 1:]:
        if zeroed >= packets:
            break
        if pk.pid == vpid:
            a = pk.index * TS_PACKET + pk.payload_at
            data[a:(pk.index + 1) * TS_PACKET] = bytes((pk.index + 1) * TS_PACKET - a)
            zeroed += 1
    dst.write_bytes(bytes(data))
    return dst


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())
