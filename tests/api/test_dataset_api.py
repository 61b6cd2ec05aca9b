"""GET /api/v1/dataset and /dataset/summary through the app in this process (Flask's test client) on a migrated
database of each engine, with keyframe rows and JPEG files laid out as the server keeps them; the zip is what
`adbreak train` reads."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter

import pytest

from adbreak.training.dataset import scan_dataset, split_by_time
from server import dataset
from server.dataset import KeyframeRow, ReviewedSegment
from tests.export_support import add_keyframe, add_segment, jpeg, solid
from tests.server_support import SignedIn, error_of, make_app

pytestmark = pytest.mark.usefixtures("db_engine")

T0 = 1763892000.0  # 2025-11-23T10:00:00Z


@pytest.fixture(scope="module")
def app(tmp_path_factory, db_engine):
    root = tmp_path_factory.mktemp("dataset")
    app = make_app(root)
    rt = app.extensions["adbreak"]
    engine, data = rt.engine, rt.settings.data_dir
    add_segment(engine, "tv1", T0, T0 + 20, "program", review="confirmed")
    add_segment(engine, "tv1", T0 + 20, T0 + 30, "ad", review="corrected", detected="program")  # a missed break
    add_segment(engine, "tv1", T0 + 30, T0 + 50, "program")  # not reviewed
    add_segment(engine, "tv1", T0 + 50, T0 + 60, "ad", review="confirmed")
    add_segment(engine, "tv1", T0 + 60, None, "program")  # open
    for k in range(60):
        ts = T0 + k + 0.25
        truth = "ad" if 20 <= k < 30 or 50 <= k < 60 else "program"
        detected = "program" if 20 <= k < 30 else truth
        color = (200, 10 + k, 10) if truth == "ad" else (10, 10 + k, 200)
        add_keyframe(engine, data, "tv1", ts, jpeg(solid(color)), label=detected, p_ad=0.9 if detected == "ad" else 0.1,
                     write_file=k != 5)  # the file of one keyframe is gone (retention)
    # a device whose reviews are all program
    add_segment(engine, "kitchen", T0, T0 + 30, "program", review="confirmed")
    for k in range(5):
        add_keyframe(engine, data, "kitchen", T0 + 5 + k, jpeg(solid((0, 255, 0))), label="program")
    yield app
    app.extensions["adbreak"].stop()


@pytest.fixture(scope="module")
def api(app):
    return SignedIn(app)


def test_summary_counts_what_the_dataset_holds(api):
    r = api.get(f"/api/v1/dataset/summary?device=tv1&start={T0}&end={T0 + 3600}")
    assert r.status_code == 200, r.get_data(as_text=True)
    s = r.get_json()
    assert s["frames"] == 36 and s["labels"] == {"ad": 18, "program": 18}
    assert s["devices"] == {"tv1": 36} and s["recordings"] == 1 and s["frame_sizes"] == {"64x36": 36}
    assert s["segments"] == 3 and s["corrected_segments"] == 1
    assert s["frames_in_corrected_segments"] == 9 and s["relabelled_frames"] == 9
    # 0.25 / 20.25 / 50.25 s are within 0.5 s of an edge; 20 frames in the unreviewed segment; one file gone
    assert s["left_out"] == {"near_edge": 3, "not_reviewed": 20, "missing_file": 1, "duplicate_name": 0}
    assert s["trainable"] is True and s["problem"] is None and s["warnings"] == []
    assert s["margin_s"] == 0.5 and s["window"]["device"] == "tv1"


def test_margin_and_range_filter(api):
    s = api.get("/api/v1/dataset/summary?device=tv1&margin=0").get_json()
    assert s["left_out"]["near_edge"] == 0 and s["frames"] == 39
    s = api.get(f"/api/v1/dataset/summary?start={T0 + 7}&end={T0 + 55}").get_json()  # both devices, part of each
    assert s["labels"] == {"ad": 9 + 4, "program": 13 + 3} and s["devices"] == {"kitchen": 3, "tv1": 26}


def test_zip_is_the_folder_train_reads(api, app, tmp_path):
    r = api.get("/api/v1/dataset?device=tv1")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/zip"
    disposition = r.headers["Content-Disposition"]
    top = "adbreak-dataset-tv1-"
    assert disposition.startswith(f"attachment; filename={top}") and disposition.endswith(".zip")
    assert r.headers["X-Adbreak-Frames"] == "36"
    with zipfile.ZipFile(io.BytesIO(r.get_data())) as zf:
        names = zf.namelist()
        root = names[0].split("/")[0]
        assert root.startswith(top) and all(n.startswith(f"{root}/") for n in names)
        assert Counter(n.split("/")[1] for n in names) == {"ad": 18, "program": 18, "manifest.csv": 1,
                                                           "summary.json": 1}
        assert f"{root}/ad/tv1-20251123_t036021.250.jpg" in names  # seconds since 00:00 UTC
        rows = list(csv.DictReader(io.StringIO(zf.read(f"{root}/manifest.csv").decode())))
        zf.extractall(tmp_path)
    r.close()
    assert len(rows) == 36 and set(rows[0]) == set(dataset.MANIFEST_FIELDS)
    corrected = [r for r in rows if r["review"] == "corrected"]
    assert len(corrected) == 9
    assert all(r["label"] == "ad" and r["corrected_from"] == "program" and r["detected"] == "program"
               for r in corrected)
    assert {r["corrected_from"] for r in rows if r["review"] == "confirmed"} == {""}
    # the JPEG is the stored file, byte for byte
    row = next(r for r in rows if r["frame"] == "ad/tv1-20251123_t036021.250.jpg")
    data_dir = app.extensions["adbreak"].settings.data_dir
    stored = next(p for p in data_dir.rglob("*.jpg") if p.read_bytes() == (tmp_path / root / row["frame"]).read_bytes())
    assert stored.is_file()
    # `adbreak train`'s own loader and split accept it, by recording and time
    items = scan_dataset(tmp_path / root)
    assert Counter(i.label for i in items) == {"ad": 18, "program": 18}
    assert {i.recording for i in items} == {"tv1-20251123"}
    split = split_by_time(items)
    blocks = split.summary(items)
    assert all(set(blocks[b]) == {"ad", "program"} for b in ("train", "val", "holdout")), blocks


def test_refusals(api):
    r = api.get("/api/v1/dataset?device=kitchen")
    assert "training needs at least two labels" in error_of(r, 409)
    s = api.get("/api/v1/dataset/summary?device=kitchen").get_json()
    assert s["trainable"] is False and "at least two labels" in s["problem"] and s["labels"] == {"program": 5}
    assert "label 'program' has only 5 frames" in s["warnings"]
    r = api.get(f"/api/v1/dataset?device=tv1&start={T0 + 30}&end={T0 + 50}")
    assert "no keyframe falls inside a reviewed segment of device tv1 between" in error_of(r, 404)


@pytest.mark.parametrize(("query", "status", "match"), [
    ("margin=-1", 400, "margin"),
    ("margin=abc", 400, "not a number"),
    ("margin=31", 400, "between 0 and 30"),
    ("device=nosuch", 404, "unknown device 'nosuch'"),
    ("device=No!", 400, "not a device name"),
    (f"start={T0 + 10}&end={T0}", 400, "end must be after start"),
    ("start=soon", 400, "neither epoch seconds nor an ISO 8601"),
    ("format=zip", 400, "unknown parameter(s) format"),
])
def test_bad_requests(api, query, status, match):
    for path in ("/api/v1/dataset", "/api/v1/dataset/summary"):
        assert match in error_of(api.get(f"{path}?{query}"), status)


def test_signed_out_is_401(app):
    for path in ("/api/v1/dataset?device=tv1", "/api/v1/dataset/summary"):
        error_of(app.test_client().get(path), 401)


# ---------------------------------------------------------------------------------------------------- pure logic
def _kf(i: int, ts: float, device: str = "tv1") -> KeyframeRow:
    return KeyframeRow(i, device, ts, "sample", None, None, f"k{i}.jpg")


def test_assign_edges_margins_and_devices():
    segs = [ReviewedSegment(1, "tv1", 10.0, 20.0, "program", "confirmed", None),
            ReviewedSegment(2, "tv1", 20.0, 30.0, "ad", "corrected", "program"),
            ReviewedSegment(3, "b", 0.0, 100.0, "ad", "confirmed", None)]
    frames = [_kf(1, 9.99), _kf(2, 10.0), _kf(3, 19.99), _kf(4, 20.0), _kf(5, 29.99), _kf(6, 30.0), _kf(7, 15.0),
              _kf(8, 15.0, "b"), _kf(9, 15.0, "c")]
    pairs, other = dataset.assign(segs, frames, margin_s=0.0)
    assert [(k.id, s.id) for k, s in pairs] == [(8, 3), (2, 1), (7, 1), (3, 1), (4, 2), (5, 2)]
    assert other == {"not_reviewed": 3}  # 9.99 and 30.0 of tv1, and device c
    pairs, other = dataset.assign(segs, frames, margin_s=0.5)
    assert [k.id for k, _ in pairs] == [8, 7] and other == {"not_reviewed": 3, "near_edge": 4}
    assert segs[1].corrected_from == "program" and segs[0].corrected_from is None


def test_plan_names_by_device_and_utc_day_and_refuses_without_ad():
    seg = ReviewedSegment(1, "living_room", T0 - 36000 + 86399.0, T0 - 36000 + 86401.5, "program", "confirmed",
                          None)
    frames = [_kf(1, T0 - 36000 + 86399.5, "living_room"), _kf(2, T0 - 36000 + 86400.5, "living_room")]
    p = dataset.plan(*dataset.assign([seg], frames, margin_s=0))
    assert [it.name for it in p.items] == ["program/living-room-20251123_t086399.500.jpg",
                                           "program/living-room-20251124_t000000.500.jpg"]
    assert p.summary["recordings"] == 2 and p.problem is not None and "at least two labels" in p.problem
    other = ReviewedSegment(2, "living_room", T0, T0 + 10, "sport", "confirmed", None)
    p = dataset.plan(*dataset.assign([seg, other], [*frames, _kf(3, T0 + 5, "living_room")], margin_s=0))
    assert p.problem == "no reviewed frame is labelled 'ad' (found program, sport): review an ad break"
    with pytest.raises(dataset.DatasetError, match="no reviewed frame is labelled 'ad'"):
        dataset.require_trainable(p)
