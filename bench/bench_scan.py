"""`adbreak scan`: accuracy, speed against a full FFmpeg decode, and memory (issue 14).

Recordings, all from the builder's `heldout` pool (no clip shared with anything trained; no scan setting was tuned on
them: the planner's settings come from `train`-pool broadcasts):

1. the 30-minute 960x540 25 fps H.264 + AAC MP4 of `bench_generalise.py` (seed 21);
2. the first 10 minutes of the same timeline as a 1080i MPEG-2 + MP2 MPEG-TS, as a DVR records broadcast TV
   (FFmpeg: scaled to 1920x1080, interlaced coding with the top field first, 8 Mb/s, a GOP of 12 with 2 B-frames;
   10 minutes because FFmpeg encodes 1080 MPEG-2 at about realtime on this 2-core machine);
3. that TS twelve times over (2 hours; FFmpeg's concat demuxer, streams copied) for the memory figure.

For each of 1-2, in one run on the same machine, alternating: `ffmpeg -threads 2 -i FILE -f null -` (decoding every
frame on two threads, the yardstick) and `adbreak scan FILE --json` (a new process, as a user runs it), each
`--repeats` times; medians and their ratio. Accuracy and boundaries against the truth; on 1 also `adbreak scan --full`
(every grid frame analysed) and `adbreak evaluate` (the live pipeline, frame by frame) on the same file. Memory: the
peak of the summed RSS of the scan's whole process tree (the CLI, its worker, FFmpeg's audio decoder), sampled every
50 ms from /proc.

In the quick profile the recording is 2 minutes, its TS 1 minute, one run each, and there is no 2-hour run.

Usage: python bench/bench_scan.py [--repeats 3] [--skip-2h] [--minutes 30] [--ts-minutes 10] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import DATA, ROOT, broadcast, log, median, parse_args, write_result

sys.path.insert(0, str(ROOT))
from adbreak.metrics import evaluate_segments  # noqa: E402
from adbreak.segments import Segment, read_segments  # noqa: E402

QUICK = {"repeats": 1, "skip_2h": True, "minutes": 2.0, "ts_minutes": 1.0}
TS_ARGS = ["-vf", "scale=1920:1080:flags=bicubic", "-c:v", "mpeg2video", "-b:v", "8M", "-maxrate", "15M",
           "-bufsize", "8M", "-g", "12", "-bf", "2", "-flags", "+ilme+ildct", "-top", "1", "-threads", "2",
           "-c:a", "mp2", "-b:a", "192k", "-ar", "48000", "-f", "mpegts"]
"""How the 1080i MPEG-2 TS is made from the built MP4 (part of the cache key)."""


def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise SystemExit("bench_scan needs ffmpeg on the PATH (apt-get install ffmpeg)")
    return exe


def cached(out: Path, key: str, make) -> Path:  # noqa: ANN001
    """``out``, made by ``make(tmp)`` unless a file made with the same ``key`` is there already."""
    stamp = out.with_name(out.name + ".key")
    if out.exists() and stamp.exists() and stamp.read_text() == key:
        return out
    tmp = out.with_name(out.name + ".part")
    make(tmp)
    os.replace(tmp, out)
    stamp.write_text(key)
    return out


def mpeg2_ts(src: Path, minutes: float) -> Path:
    out = DATA / f"{src.stem}-1080i.ts"
    args = ["-t", f"{minutes * 60:g}", *TS_ARGS]
    key = json.dumps({"src": src.name, "size": src.stat().st_size, "args": args})

    def make(tmp: Path) -> None:
        log(f"encoding {out.name} (1080i MPEG-2; takes a while)")
        subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(src), *args, str(tmp)], check=True)

    return cached(out, key, make)


def looped(src: Path, times: int) -> Path:
    out = DATA / f"{src.stem}-x{times}.ts"
    key = json.dumps({"src": src.name, "size": src.stat().st_size, "times": times})

    def make(tmp: Path) -> None:
        log(f"joining {times} copies of {src.name}")
        lst = DATA / f"{src.stem}-x{times}.txt"
        lst.write_text("".join(f"file '{src.resolve()}'\n" for _ in range(times)))
        subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
                        "-map", "0", "-c", "copy", "-f", "mpegts", str(tmp)], check=True)

    return cached(out, key, make)


class TreeRss:
    """Peak of the summed resident memory of a process and all its descendants, sampled from /proc."""

    def __init__(self, pid: int, every_s: float = 0.05) -> None:
        self.pid, self.every_s, self.peak_kb = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _children() -> dict[int, list[int]]:
        kids: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
        return kids

    def _rss_kb(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            kids = self._children()
            todo, total = [self.pid], 0
            while todo:
                p = todo.pop()
                total += self._rss_kb(p)
                todo.extend(kids.get(p, []))
            self.peak_kb = max(self.peak_kb, total)
            self._stop.wait(self.every_s)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024.0


def run_scan(video: Path, *extra: str) -> tuple[dict, float, float]:
    """`adbreak scan VIDEO --json --no-files` in a new process: its JSON, wall seconds, peak tree RSS (MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adbreak.cli", "scan", str(video), "--json", "--no-files",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    rss = TreeRss(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    peak = rss.stop()
    if proc.returncode != 0:
        raise SystemExit(f"adbreak scan {video.name} failed: {err.strip()}")
    return json.loads(out), wall, peak


def ffmpeg_decode(video: Path) -> float:
    started = time.perf_counter()
    subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-threads", "2", "-i", str(video), "-f", "null", "-"],
                   check=True)
    return time.perf_counter() - started


def clipped(truth: list[Segment], end: float) -> list[Segment]:
    return [Segment(s.start, min(s.end, end), s.label) for s in truth if s.start < end]


def scored(result: dict, truth: list[Segment]) -> dict:
    predicted = [Segment(s["start"], s["end"], s["label"]) for s in result["segments"]]
    m = evaluate_segments(truth, predicted, duration_s=truth[-1].end)
    keys = ("accuracy", "program_lost_s", "ad_missed_s", "false_breaks", "missed_breaks", "boundary_err_median_s",
            "boundary_err_p95_s")
    return {k: m[k] for k in keys}


def speed(video: Path, truth: list[Segment], repeats: int) -> dict:
    walls, decodes, peaks, result = [], [], [], {}
    for i in range(repeats):
        decodes.append(ffmpeg_decode(video))
        result, wall, peak = run_scan(video)
        walls.append(wall)
        peaks.append(peak)
        log(f"{video.name} run {i + 1}: ffmpeg -threads 2 {decodes[-1]:.1f} s, scan {wall:.1f} s, {peak:.0f} MB")
    duration = result["duration_s"]
    return {
        "file": video.name,
        "duration_s": duration,
        "ffmpeg_decode_s": [round(x, 2) for x in decodes],
        "scan_s": [round(x, 2) for x in walls],
        "ffmpeg_decode_median_s": round(median(decodes), 2),
        "scan_median_s": round(median(walls), 2),
        "ratio": round(median(walls) / median(decodes), 3),
        "scan_realtime_x": round(duration / median(walls), 1),
        "peak_rss_mb": round(max(peaks), 1),
        "passes_s": result["timings"],
        "windows": result["info"]["windows"],
        "window_s": result["info"]["window_s"],
        "mode": result["mode"],
        "metrics": scored(result, truth),
        "warnings": result["warnings"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-2h", action="store_true", help="no 2-hour memory run")
    ap.add_argument("--minutes", type=float, default=30.0, help="the H.264 MP4 recording")
    ap.add_argument("--ts-minutes", type=float, default=10.0, help="its first minutes made a 1080i MPEG-2 TS")
    args = parse_args(ap, QUICK)
    name = "test-clean" if args.minutes == 30 else f"test-clean-{args.minutes:g}m"
    video, truth_path, _ = broadcast(name, seed=21, duration_s=args.minutes * 60, pool="heldout")
    truth = read_segments(truth_path)
    res: dict = {"repeats": args.repeats, "minutes": args.minutes, "ts_minutes": args.ts_minutes}
    res["h264"] = speed(video, truth, args.repeats)
    full, wall, _ = run_scan(video, "--full")
    res["h264"]["full"] = {"scan_s": round(wall, 2), "metrics": scored(full, truth)}
    log("adbreak evaluate on the same file")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "adbreak.cli", "evaluate", str(video), "--truth", str(truth_path),
                           "--json", str(DATA / "scan-evaluate.json"), "-q"], capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"evaluate failed: {proc.stderr.strip()}")
    ev = json.loads((DATA / "scan-evaluate.json").read_text())
    res["h264"]["evaluate"] = {"wall_s": round(time.perf_counter() - started, 1),
                               "metrics": {k: ev.get(k) for k in res["h264"]["metrics"]}}
    ts = mpeg2_ts(video, args.ts_minutes)
    res["mpeg2_1080i"] = speed(ts, clipped(truth, args.ts_minutes * 60.0), args.repeats)
    if not args.skip_2h:
        long = looped(ts, 12)
        result, wall, peak = run_scan(long)
        res["mpeg2_1080i_2h"] = {"file": long.name, "duration_s": result["duration_s"], "scan_s": round(wall, 1),
                                 "peak_rss_mb": round(peak, 1), "ad_breaks": result["ad_breaks"]}
        log(f"2 h: {wall:.1f} s, peak {peak:.0f} MB, {result['ad_breaks']} breaks")
    write_result("scan", res, table(res))


def table(res: dict) -> str:
    h, m = res["h264"], res["mpeg2_1080i"]

    def row(name: str, r: dict) -> str:
        mt = r["metrics"]
        return (f"| {name} | {mt['accuracy']} | {mt['program_lost_s']} | {mt['ad_missed_s']} | "
                f"{mt['boundary_err_median_s']} | {r['scan_median_s']} s | {r['ffmpeg_decode_median_s']} s | "
                f"**{r['ratio']}** | {r['scan_realtime_x']}x | {r['peak_rss_mb']} MB |")

    lines = [
        "# adbreak scan (`bench/bench_scan.py`)",
        "",
        f"Recordings from the `heldout` pool ({res.get('minutes', 30):g} min; no "
        "model, no setting tuned on them). Medians of the runs; ratio = scan wall time / `ffmpeg -threads 2 -i FILE "
        "-f null -` wall time, both measured alternately in this run. [target: accuracy >= 0.996, within 0.001 of "
        "`evaluate`, boundary median <= 0.5 s, ratio <= 0.5, peak RSS <= 300 MB on 2 h of 1080i]",
        "",
        "| recording | accuracy | program lost (s) | ad missed (s) | boundary median (s) | scan | ffmpeg decode | "
        "ratio | realtime | peak RSS (tree) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        row("540p H.264 MP4", h),
        row(f"1080i MPEG-2 TS (first {res.get('ts_minutes', 10):g} min)", m),
        "",
        f"Same MP4: `adbreak scan --full` (every grid frame analysed) accuracy {h['full']['metrics']['accuracy']} "
        f"in {h['full']['scan_s']} s; `adbreak evaluate` (the live pipeline, frame by frame) accuracy "
        f"{h['evaluate']['metrics']['accuracy']} (boundary median {h['evaluate']['metrics']['boundary_err_median_s']}"
        f" s) in {h['evaluate']['wall_s']} s.",
        "",
        f"Passes (s, last run): MP4 {h['passes_s']}; TS {m['passes_s']}. Full-rate windows: MP4 {h['windows']} "
        f"covering {h['window_s']} s, TS {m['windows']} covering {m['window_s']} s.",
    ]
    if "mpeg2_1080i_2h" in res:
        r = res["mpeg2_1080i_2h"]
        lines += ["", f"2 hours of 1080i MPEG-2 TS ({r['file']}): scanned in {r['scan_s']} s, peak RSS of the process "
                  f"tree {r['peak_rss_mb']} MB, {r['ad_breaks']} ad breaks."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
