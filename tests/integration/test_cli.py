"""The CLI as a user meets it: real clips, real model, new processes; bad input gives one line and exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import media, run_cli


def assert_one_line_error(proc, match: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert match in lines[0], lines[0]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for clip, label in (("gillette", "ad"), ("box", "ad"), ("vtest", "program"), ("bikes", "program")):
        proc = run_cli("collect", media(clip), "--label", label, "--out", root, "--fps", "3", "--duration", "15", "-q")
        assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def bundle(dataset, tmp_path_factory, cache_dir) -> Path:
    out = tmp_path_factory.mktemp("models") / "m"
    proc = run_cli("train", dataset, "--out", out, "--cache-dir", cache_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    return out


def test_every_command_has_help():
    for cmd in ("demo", "collect", "extract", "train", "evaluate", "annotate"):
        proc = run_cli(cmd, "--help")
        assert proc.returncode == 0 and "usage: adbreak" in proc.stdout


def test_collect_names_frames_by_recording_and_time(dataset):
    names = sorted(p.name for p in (dataset / "ad").iterdir())
    assert len(names) == 90  # 2 clips x 15 s x 3 fps
    assert all("_t0000" in n and n.endswith(".jpg") for n in names)


def test_train_writes_a_complete_bundle_with_report(bundle):
    import json

    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["labels"] == ["ad", "program"]
    for name in ("head.npz", meta["backbone"]["file"], "report.json", "training_curves.png", "confusion.png",
                 "data_summary.json"):
        assert (bundle / name).stat().st_size > 0, name
    report = json.loads((bundle / "report.json").read_text())
    assert report["holdout"]["accuracy"] >= 0.8  # ~7 holdout frames a class, late in clips it trained on early parts of
    assert set(report["holdout"]["per_class"]) == {"ad", "program"}


def test_second_training_run_reads_the_cache(dataset, bundle, cache_dir, tmp_path):
    import json

    proc = run_cli("train", dataset, "--out", tmp_path / "again", "--cache-dir", cache_dir, "-q",
                   "--json", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    frames = sum(1 for _ in dataset.glob("*/*.jpg"))
    assert frames >= 120
    assert report["cache"]["misses"] == 0 and report["cache"]["hits"] == frames


def test_train_rejects_bad_datasets_without_writing_a_bundle(dataset, tmp_path, cache_dir):
    one = tmp_path / "one"
    shutil.copytree(dataset / "ad", one / "ad")
    assert_one_line_error(run_cli("train", one, "--out", tmp_path / "b1"), "at least two class folders")
    (one / "program").mkdir()
    assert_one_line_error(run_cli("train", one, "--out", tmp_path / "b2"), "class 'program'")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(dataset, corrupt)
    victim = sorted((corrupt / "program").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated JPEG
    proc = run_cli("train", corrupt, "--out", tmp_path / "b3", "--cache-dir", cache_dir)
    assert_one_line_error(proc, "corrupt image")
    assert victim.name in proc.stderr
    assert not any(p.name.startswith(("b1", "b2", "b3", ".b")) for p in tmp_path.iterdir())


def test_bundle_with_a_wrong_backbone_hash_is_refused(bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(bundle, bad)
    tflite = next(bad.glob("*.tflite"))
    data = bytearray(tflite.read_bytes())
    data[-10] ^= 0xFF
    tflite.write_bytes(bytes(data))
    proc = run_cli("annotate", media("bikes"), "--model", bad, "--out", tmp_path / "x.mp4")
    assert_one_line_error(proc, "does not match")
    assert not (tmp_path / "x.mp4").exists()


def test_incomplete_bundle_is_refused(bundle, tmp_path):
    bad = tmp_path / "incomplete"
    shutil.copytree(bundle, bad)
    (bad / "head.npz").unlink()
    assert_one_line_error(run_cli("annotate", media("bikes"), "--model", bad, "--out", tmp_path / "x.mp4"),
                          "incomplete")


def test_bundle_archive_loads_like_the_directory(bundle, tmp_path):
    archive = shutil.make_archive(str(tmp_path / "m"), "gztar", bundle.parent, bundle.name)
    out = tmp_path / "a.mp4"
    proc = run_cli("annotate", media("bikes"), "--model", archive, "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 10_000


def test_unreadable_and_truncated_videos(bundle, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video at all")
    truth = tmp_path / "t.csv"
    truth.write_text("start,end,label\n0.000,10.000,program\n")
    assert_one_line_error(run_cli("evaluate", fake, "--truth", truth, "--model", bundle), "cannot open video")
    missing = tmp_path / "missing.mp4"
    assert_one_line_error(run_cli("evaluate", missing, "--truth", truth, "--model", bundle), "video not found")
    # a recording cut short: the pipeline decodes what is there, then says the video ends before its truth
    clip = media("bikes").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip[: len(clip) // 3])
    truth.write_text("start,end,label\n0.000,10.000,program\n")
    proc = run_cli("evaluate", truncated, "--truth", truth, "--model", bundle)
    assert proc.returncode == 2
    assert "truncated" in proc.stderr or "cannot" in proc.stderr


def test_segment_file_with_a_gap_is_refused(bundle, tmp_path):
    truth = tmp_path / "gap.csv"
    truth.write_text("start,end,label\n0.000,4.000,program\n5.000,10.000,ad\n")
    proc = run_cli("evaluate", media("bikes"), "--truth", truth, "--model", bundle)
    assert_one_line_error(proc, "gap")


def test_extract_cuts_a_recording_by_its_segments(tmp_path):
    truth = tmp_path / "bikes.csv"
    truth.write_text("start,end,label\n0.000,4.000,program\n4.000,10.000,ad\n")
    proc = run_cli("extract", media("bikes"), "--segments", truth, "--out", tmp_path / "f", "--fps", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "f" / "program").iterdir())) == 8
    assert len(list((tmp_path / "f" / "ad").iterdir())) == 12
