"""The pure parts of recordings sent for review: the server's names and tiling (``server.recordings``) and the
client's request bodies (``adbreak.scan.upload``)."""

from __future__ import annotations

import base64

import pytest

from adbreak.errors import AdbreakError
from adbreak.scan import upload
from adbreak.wire import DEVICE_RE
from server import dataset, recordings
from server.recordings import KEY_RE, RecordingError, Tile
from tests.recording_support import AD, DURATION, scan_result, thumb_times


def seg(start, end, label="program"):
    return {"start": start, "end": end, "label": label}


def test_tile_snaps_edges_within_the_slack_and_names_the_first_bad_segment():
    tiles = recordings.tile([seg(0.004, 10.0), seg(10.003, 20.0, "ad"), seg(20.0, 29.995)], 30.0)
    assert tiles == [Tile(0.0, 10.0, "program"), Tile(10.0, 20.0, "ad"), Tile(20.0, 30.0, "program")]
    for segments, match in [
        ([seg(1, 30)], "segments.0: starts at 1 but the recording starts at 0"),
        ([seg(0, 10), seg(11, 30)], "segments.1: starts at 11 but segments.0 ends at 10"),
        ([seg(0, 10), seg(9, 30)], "segments.1: starts at 9"),
        ([seg(0, 29)], "the last segment ends at 29, not at duration_s 30"),
        ([seg(0, 10), seg(10, 10), seg(10, 30)], "segments.1: ends at 10, not after its start"),
        ([seg(0, 30, "credits")], "segments.0.label: 'credits'"),
        ([], "at least one segment"),
    ]:
        with pytest.raises(RecordingError, match=match) as err:
            recordings.tile(segments, 30.0)
        assert err.value.kind == "invalid"


def test_the_digest_is_of_what_was_scanned():
    a = recordings.tile([seg(0, 10), seg(10, 30, "ad")], 30.0)
    b = recordings.tile([seg(0, 10.0004), seg(10.0004, 30, "ad")], 30.0)
    c = recordings.tile([seg(0, 11), seg(11, 30, "ad")], 30.0)
    assert recordings.digest(30.0, a) == recordings.digest(30.0, b) != recordings.digest(30.0, c)


@pytest.mark.parametrize(("name", "key"), [
    ("The Show (2026).ts", "rec:the-show-2026-ts-"),
    ("Émission spéciale.mkv", "rec:emission-speciale-mkv-"),
    ("映画.mp4", "rec:mp4-"),
    ("!!!", "rec:recording-"),
    ("x" * 255, "rec:" + "x" * 40 + "-"),
])
def test_a_recordings_device_name_is_no_mqtt_device_name(name, key):
    got = recordings.recording_key(name)
    assert got.startswith(key) and len(got) == len(key) + 8
    assert KEY_RE.match(got) and not DEVICE_RE.match(got) and len(got) <= 64
    assert recordings.is_recording_key(got) and recordings.source_name_ok(got)
    assert recordings.recording_key(name, 4) != got and KEY_RE.match(recordings.recording_key(name, 8))
    assert recordings.source_name_ok("tv-1") and not recordings.is_recording_key("tv-1")
    assert not recordings.source_name_ok("rec:") and not recordings.source_name_ok("Rec:x")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b.ts", "a\\b.ts", "a\nb", "x" * 256, " a.ts", "a.ts "])
def test_a_name_is_a_file_name(bad):
    with pytest.raises(RecordingError):
        recordings.check_name(bad)
    assert recordings.check_name("Die Sendung – Teil 2 (HD).ts") == "Die Sendung – Teil 2 (HD).ts"


def test_names_of_frames_exports_and_datasets():
    key = recordings.recording_key("A.ts")
    assert recordings.frame_id(key, 12.3456) == recordings.frame_id(key, 12.3459) != recordings.frame_id(key, 12.35)
    assert len(recordings.frame_id(key, recordings.MAX_DURATION_S)) <= 32
    assert recordings.keyframe_relpath(key, "f").startswith("keyframes/_recordings/a-ts-")
    assert recordings.file_stem("The Show (2026).ts") == "The_Show_2026"
    assert recordings.file_stem(".hidden") == "hidden" and recordings.file_stem("a.b.mkv") == "a.b"
    assert dataset.recording_of(key, 61.5) == (key.replace(":", "-"), 61.5)
    assert dataset.recording_of("tv1", 86400.0 + 5) == ("tv1-19700102", 5.0)
    assert dataset.dataset_name(key, 0.0, 1e9).startswith("adbreak-dataset-rec-a-ts-")


def test_breaks_and_labels_of_stored_segments():
    rows = [{"start": 0, "end": 10, "label": "program"}, {"start": 10, "end": 20, "label": "ad"},
            {"start": 20, "end": 25, "label": "ad"}, {"start": 25, "end": 40, "label": "program"},
            {"start": 40, "end": 50, "label": "ad"}]
    assert recordings.breaks(rows) == [(10, 25), (40, 50)]
    assert [recordings.label_at(rows, t) for t in (0, 9.9, 10, 24.9, 25, 49, 50)] == [
        "program", "program", "ad", "ad", "program", "ad", "ad"]


# ---------------------------------------------------------------------------------------------------- the client
def test_the_upload_body_tiles_the_recording_in_milliseconds():
    result = scan_result()
    body = upload.recording_body(result, scanned_at=1800000000.0)
    assert body["name"] == "The Show (2026).ts" and body["duration_s"] == DURATION and body["fps"] == 25.0
    assert body["segments"] == [{"start": 0.0, "end": AD[0], "label": "program"},
                                {"start": AD[0], "end": AD[1], "label": "ad"},
                                {"start": AD[1], "end": DURATION, "label": "program"}]
    assert body["info"]["container"] == "mpegts" and body["scan"]["mode"] == "fast"
    assert body["scan"]["ad_breaks"] == 1 and body["scanned_at"] == 1800000000.0
    assert recordings.tile(body["segments"], body["duration_s"])  # what the server takes


def test_big_details_are_cut_to_the_servers_limit():
    meta = upload._bounded({"small": 1, "huge": "x" * 20000, "nan": float("nan")})
    assert meta == {"small": 1, "nan": None, "truncated": True}


def test_thumbnails_go_in_batches_of_50_once_per_millisecond():
    result = scan_result()
    big = (5.0004, b"\xff\xd8" + b"\0" * 80000 + b"\xff\xd9")  # too large for a keyframe: left out
    twin = (10.0002, result.thumbnails[1][1])  # the same millisecond as t=10
    result.thumbnails.extend([big, twin])
    batches, skipped = upload.keyframe_batches(result)
    assert skipped == 1
    assert [len(b) for b in batches] == [50, len(thumb_times(AD, DURATION)) - 50]
    times = [f["t"] for b in batches for f in b]
    assert times == thumb_times(AD, DURATION)
    assert base64.b64decode(batches[0][0]["jpeg"]) == result.thumbnails[0][1]


def test_server_address_and_token():
    assert upload.server_base("http://host:8080/") == "http://host:8080"
    assert upload.server_base("https://host/adbreak/api/v1") == "https://host/adbreak"
    for bad in ("host:8080", "ftp://host", "http://"):
        with pytest.raises(AdbreakError, match="expected the server's address"):
            upload.server_base(bad)
    assert upload.resolve_token(" adb_x ") == "adb_x"


def test_the_token_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ADBREAK_TOKEN", "adb_env")
    assert upload.resolve_token(None) == "adb_env" and upload.resolve_token("adb_arg") == "adb_arg"
    monkeypatch.delenv("ADBREAK_TOKEN")
    with pytest.raises(AdbreakError, match="give --token or set ADBREAK_TOKEN"):
        upload.resolve_token("")
