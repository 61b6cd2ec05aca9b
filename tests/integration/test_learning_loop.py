"""The loop review -> correct -> retrain, end to end through the real CLI.

A short built broadcast plays on "tv1". The server's database (real, migrated) holds what the detector and the user
left there: keyframes every 0.5 s (the edge's own thumbnail encoder, files under the data folder, the detector's
label at each), the detector's segments, and the user's review: the first ad break and the program confirmed, the
second ad break, which the detector MISSED (it said program), corrected to ad; the last 40% of the program between
the breaks (split off by the user) left unreviewed. `adbreak dataset` turns the reviewed keyframes into a training
folder and `adbreak train` trains a bundle on it whose report names both labels with high accuracy, the corrected
frames included (they are the ad class's last time block: its holdout).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from adbreak.broadcast import build_broadcast
from edge.keyframes import encode_thumbnail
from edge.sources import open_source
from server import db
from tests.export_support import add_keyframe, add_segment
from tests.support import run_cli

pytestmark = pytest.mark.slow

T0 = 1763924400.0  # 2025-11-23T19:00:00Z
KEYFRAME_FPS = 2.0


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("loop")
    bc = build_broadcast(root, "evening", seed=3, duration_s=120.0, pool="train", size=(640, 360))
    truth = bc.segments
    breaks = [i for i, s in enumerate(truth) if s.label == "ad"]
    assert len(breaks) >= 2 and truth[0].label == "program", truth
    missed = breaks[1]  # the detector said program there; the user corrects it
    unreviewed = breaks[0] + 1  # the program stretch between the breaks: its last 40% is never reviewed
    gap_from = truth[unreviewed].start + 0.6 * truth[unreviewed].duration
    url = f"sqlite:///{root / 'adbreak.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    data = root / "data"
    try:
        for i, s in enumerate(truth):
            if i == missed:
                add_segment(engine, "tv1", T0 + s.start, T0 + s.end, "ad", review="corrected", detected="program")
            elif i == unreviewed:  # split by the user: the first part confirmed, the rest not looked at
                add_segment(engine, "tv1", T0 + s.start, T0 + gap_from, "program", review="confirmed")
                add_segment(engine, "tv1", T0 + gap_from, T0 + s.end, "program")
            else:
                add_segment(engine, "tv1", T0 + s.start, T0 + s.end, s.label, review="confirmed")
        n = 0
        with open_source(str(bc.video), KEYFRAME_FPS) as source:
            for frame in source:
                label = next(s.label for s in truth if s.start <= frame.t < s.end or s is truth[-1])
                detected = "program" if truth[missed].start <= frame.t < truth[missed].end else label
                thumb = encode_thumbnail(frame.image)
                assert thumb is not None
                jpeg, w, h = thumb
                add_keyframe(engine, data, "tv1", T0 + frame.t, jpeg, label=detected, size=(w, h),
                             p_ad=0.9 if detected == "ad" else 0.1)
                n += 1
    finally:
        engine.dispose()
    return root, bc, truth, missed, (gap_from, truth[unreviewed].end), n


def test_reviewed_keyframes_become_a_training_folder_that_trains(loop, cache_dir):
    root, bc, truth, missed, unreviewed, n = loop
    assert n >= 230
    out = root / "dataset"
    proc = run_cli("dataset", root / "adbreak.db", "--out", out, "--data-dir", root / "data")
    assert proc.returncode == 0, proc.stderr
    assert f"frames into {out}" in proc.stdout and "next: adbreak train" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))
    assert summary["trainable"] and summary["frames"] == len(rows)
    assert set(summary["labels"]) == {"ad", "program"}
    assert summary["corrected_segments"] == 1
    in_missed = [r for r in rows if T0 + truth[missed].start <= float(r["ts"]) < T0 + truth[missed].end]
    assert len(in_missed) >= KEYFRAME_FPS * (truth[missed].duration - 2)
    assert all(r["label"] == "ad" and r["corrected_from"] == "program" and r["detected"] == "program"
               for r in in_missed)
    assert summary["relabelled_frames"] == len(in_missed)
    gap_start, gap_end = unreviewed
    assert not [r for r in rows if T0 + gap_start <= float(r["ts"]) < T0 + gap_end]  # never reviewed: left out
    assert summary["left_out"]["not_reviewed"] >= KEYFRAME_FPS * (gap_end - gap_start) - 2
    assert all((out / r["frame"]).is_file() for r in rows)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix not in (".jpg", ".csv", ".json")]

    # a second run refuses to overwrite, --force replaces
    again = run_cli("dataset", root / "adbreak.db", "--out", out, "--data-dir", root / "data")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert run_cli("dataset", root / "adbreak.db", "--out", out, "--data-dir", root / "data",
                   "--force").returncode == 0

    bundle = root / "bundle"
    proc = run_cli("train", out, "--out", bundle, "--cache-dir", cache_dir, "-q", "--json", root / "report.json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((root / "report.json").read_text())
    assert json.loads((bundle / "bundle.json").read_text())["labels"] == ["ad", "program"]
    assert set(report["holdout"]["per_class"]) == {"ad", "program"}
    assert report["holdout"]["frames"] >= 10
    assert report["holdout"]["accuracy"] >= 0.9, report["holdout"]
    assert report["validation"]["accuracy"] >= 0.9, report["validation"]


def test_dataset_refusals_are_one_line(loop, tmp_path):
    root, *_ = loop
    db_path = root / "adbreak.db"
    cases = [
        (("--start", str(T0 + 200), "--end", str(T0 + 300)), "no keyframe falls inside a reviewed segment"),
        (("--device", "nosuch"), "unknown device 'nosuch' (known: tv1)"),
        (("--margin", "-1"), "margin -1.0 must be between 0 and 30 seconds"),
        (("--start", "later"), "--start 'later' is neither epoch seconds nor an ISO 8601 time"),
    ]
    for extra, match in cases:
        proc = run_cli("dataset", db_path, "--out", tmp_path / "d", "--data-dir", root / "data", *extra)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and match in lines[0], proc.stderr
    proc = run_cli("dataset", db_path, "--out", tmp_path / "d", "--data-dir", tmp_path / "nowhere")
    assert proc.returncode == 2 and "keyframe folder" in proc.stderr
    proc = run_cli("dataset", tmp_path / "missing.db", "--out", tmp_path / "d", "--data-dir", root / "data")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not (tmp_path / "d").exists() and not Path(tmp_path / "missing.db").exists()
