"""Recordings sent for review, against a real ``adbreak server`` process over HTTP (SQLite, or PostgreSQL with
both engines: ``db_engine``): ``send_recording`` uploads a scanned recording with its thumbnails; it is
listed under its file name, corrected through the segment routes like a device, exported (EDL, Comskip, CSV) and its
corrected frames go into the training set (``GET /dataset`` and ``adbreak dataset``). A different scan replaces an
unreviewed recording and is refused (409) over a review unless an admin says ``replace``; deleting a reviewed one is
for admins; bad input is a one-line 4xx; the retention jobs leave recordings alone."""

from __future__ import annotations

import base64
import csv
import io
import subprocess
import sys
import urllib.parse
import zipfile

import pytest
import requests

from adbreak.errors import AdbreakError
from adbreak.scan.upload import send_recording
from adbreak.training.dataset import frame_name
from server import db, retention
from server.keyframes import KeyframeStore
from server.store import SegmentStore
from tests.mqtt_support import find_free_port
from tests.recording_support import AD, DURATION, NAME, scan_result, thumb_times, thumbnail
from tests.server_support import ADMIN_PASSWORD, ServerProcess, http_session
from tests.support import ROOT

pytestmark = pytest.mark.usefixtures("db_engine")

API = "/api/v1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory, db_engine):
    tmp = tmp_path_factory.mktemp("recordings-server")
    with ServerProcess(tmp, wait_mqtt=False) as server:  # no broker: recordings need none
        server.data_dir = tmp / "server-data"
        server.log_path = tmp / "server.log"
        yield server
        assert server.proc.poll() is None, "the server process died"
    log = (tmp / "server.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def admin(srv):
    """The admin's session and API token."""
    session = srv.session()
    token = session.post(f"{srv.base}{API}/auth/tokens", json={"name": "scan"}, timeout=10).json()["token"]
    return session, token


@pytest.fixture(scope="module")
def viewer(srv, admin):
    """A user who is not an admin, and their API token."""
    session, _ = admin
    r = session.post(f"{srv.base}{API}/users", json={"username": "viewer", "password": ADMIN_PASSWORD}, timeout=10)
    assert r.status_code == 201, r.text
    s = http_session(srv.base, "viewer", ADMIN_PASSWORD)
    return s.post(f"{srv.base}{API}/auth/tokens", json={"name": "scan"}, timeout=10).json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def path_of(name: str) -> str:
    return f"{API}/recordings/{urllib.parse.quote(name, safe='')}"


def get(srv, token: str, path: str, **params):
    r = requests.get(f"{srv.base}{path}", params=params, headers=bearer(token), timeout=10)
    assert r.status_code == 200, r.text
    return r


def one_line_error(r: requests.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


# ---------------------------------------------------------------------------------------------------- end to end
def test_a_scanned_recording_is_reviewed_exported_and_trained_on(srv, admin, tmp_path):
    session, token = admin
    result = scan_result()
    sent = send_recording(result, srv.base, token)
    assert sent["change"] == "created" and sent["name"] == NAME
    key = sent["device"]
    assert key.startswith("rec:the-show-2026-ts-")
    assert sent["keyframes"] == sent["keyframes_sent"] == sent["keyframes_stored"] == len(result.thumbnails)
    assert sent["keyframes_skipped"] == 0
    assert sent["review_url"] == f"{srv.base}/#/history?device={urllib.parse.quote(key)}"

    # listed under its file name; not a device (no MQTT, no Home Assistant, no statistics of all devices)
    listed = get(srv, token, f"{API}/recordings").json()["recordings"]
    rec = next(r for r in listed if r["name"] == NAME)
    assert rec["device"] == key and rec["duration_s"] == DURATION and rec["fps"] == 25.0
    assert (rec["segments"], rec["ad_breaks"], rec["ad_s"], rec["reviewed"]) == (3, 1, 120.0, 0)
    assert rec["keyframes"] == len(result.thumbnails) and rec["uploaded_by"] == "admin"
    assert rec["info"]["container"] == "mpegts" and rec["scan"]["mode"] == "fast"
    assert get(srv, token, path_of(NAME)).json()["device"] == key
    assert key not in [d["name"] for d in get(srv, token, f"{API}/devices").json()["devices"]]
    assert key not in [d["device"] for d in get(srv, token, f"{API}/stats").json()["devices"]]

    # its segments and keyframes, times from its start, through the device routes
    segs = get(srv, token, f"{API}/segments", device=key).json()["segments"]
    assert [(s["start"], s["end"], s["label"], s["status"]) for s in segs] == [
        (0.0, AD[0], "program", "closed"), (AD[0], AD[1], "ad", "closed"), (AD[1], DURATION, "program", "closed")]
    frames = get(srv, token, f"{API}/keyframes", device=key).json()["keyframes"]
    assert [k["ts"] for k in frames] == thumb_times(AD, DURATION)
    assert {(k["width"], k["height"]) for k in frames} == {(384, 216)}
    assert all(k["label"] == ("ad" if AD[0] <= k["ts"] < AD[1] else "program") for k in frames)
    jpeg = requests.get(f"{srv.base}{frames[0]['url']}", headers=bearer(token), timeout=10)
    assert jpeg.status_code == 200 and jpeg.headers["Content-Type"] == "image/jpeg"
    assert jpeg.content == dict(result.thumbnails)[frames[0]["ts"]]

    # review: the break really ended 10 s later; the first program is right (the session of the dashboard)
    r = session.patch(f"{srv.base}{API}/segments/{segs[1]['id']}", json={"end": AD[1] + 10}, timeout=10)
    assert r.status_code == 200, r.text
    assert [(s["start"], s["end"], s["review"]) for s in r.json()["segments"]] == [
        (AD[0], AD[1] + 10, "corrected"), (AD[1] + 10, DURATION, "corrected")]
    r = session.post(f"{srv.base}{API}/segments/{segs[0]['id']}/confirm", timeout=10)
    assert r.status_code == 200 and r.json()["segments"][0]["review"] == "confirmed"
    # a recording's segments stay inside it
    r = session.patch(f"{srv.base}{API}/segments/{segs[2]['id']}", json={"end": DURATION + 5}, timeout=10)
    assert "between 0 and its end" in one_line_error(r, 400)
    corrections = get(srv, token, f"{API}/corrections", device=key).json()["corrections"]
    assert [c["action"] for c in corrections] == ["confirm", "move"]
    assert all(c["device"] == key and c["username"] == "admin" for c in corrections)
    assert get(srv, token, path_of(NAME)).json()["reviewed"] == 3

    # exports of the corrected recording, named after it
    def export(fmt: str, **extra) -> requests.Response:
        return get(srv, token, f"{API}/export", device=key, start=0, end=DURATION, format=fmt, **extra)

    edl = export("edl")
    assert edl.text == f"{AD[0]:.3f}\t{AD[1] + 10:.3f}\t3\n"
    assert edl.headers["Content-Disposition"] == 'attachment; filename="The_Show_2026.edl"'
    assert edl.headers["X-Adbreak-Gap-Seconds"] == "0.000"
    comskip = export("comskip", fps="25")
    assert f"{int(AD[0] * 25)}\t{int((AD[1] + 10) * 25)}" in comskip.text
    rows = list(csv.DictReader(io.StringIO(export("csv").text)))
    assert [(float(r["start"]), float(r["end"]), r["label"]) for r in rows] == [
        (0.0, AD[0], "program"), (AD[0], AD[1] + 10, "ad"), (AD[1] + 10, DURATION, "program")]

    # the training set: keyframes inside the reviewed segments, with the corrected labels
    summary = get(srv, token, f"{API}/dataset/summary", device=key).json()
    assert summary["trainable"] and summary["devices"] == {key: summary["frames"]} and summary["recordings"] == 1
    assert summary["relabelled_frames"] == 2  # 240.0 and 240.5: scanned as program, corrected to ad
    zipped = get(srv, token, f"{API}/dataset", device=key)
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as zf:
        names = zf.namelist()
        top = names[0].split("/", 1)[0]
        manifest = list(csv.DictReader(io.StringIO(zf.read(f"{top}/manifest.csv").decode())))
        assert top.startswith("adbreak-dataset-rec-the-show-2026-ts-")
        frame = frame_name(key.replace(":", "-", 1), 240.5) + ".jpg"  # rec-the-show-2026-ts-<hash>_t000240.500.jpg
        corrected = f"{top}/ad/{frame}"
        assert corrected in names
        assert zf.read(corrected) == dict(result.thumbnails)[240.5]
    row = next(m for m in manifest if m["frame"] == f"ad/{frame}")
    # its segment kept its label (only its end moved); the frame itself was scanned as program
    assert (row["label"], row["device"], row["review"], row["corrected_from"], row["detected"]) == (
        "ad", key, "corrected", "", "program")
    assert {m["label"] for m in manifest} == {"ad", "program"}

    # `adbreak dataset` reads the same from the server's database and folder
    out = tmp_path / "train"
    cli = subprocess.run([sys.executable, "-m", "adbreak", "dataset", srv.db, "--data-dir", str(srv.data_dir),
                          "--out", str(out), "--device", key], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert (out / "ad" / frame).read_bytes() == dict(result.thumbnails)[240.5]
    assert sorted(p.name for p in (out / "ad").iterdir()) == sorted(
        n.rsplit("/", 1)[1] for n in names if "/ad/" in n)

    # sending the same scan again changes nothing: the review stays, the pictures are there already
    again = send_recording(result, srv.base, token)
    assert again["change"] == "unchanged" and again["reviewed"] == 3
    assert again["keyframes_stored"] == 0 and again["keyframes"] == len(result.thumbnails)
    assert len(get(srv, token, f"{API}/corrections", device=key).json()["corrections"]) == 2


# ---------------------------------------------------------------------------------------------------- replace
def test_a_new_scan_replaces_an_unreviewed_recording_and_asks_before_dropping_a_review(srv, admin, viewer):
    session, token = admin
    name = "Film.mkv"
    first = send_recording(scan_result(name, ad=(100.0, 160.0)), srv.base, viewer)  # any signed-in user sends
    assert first["change"] == "created" and first["uploaded_by"] == "viewer"
    key = first["device"]
    second = send_recording(scan_result(name, ad=(110.0, 170.0)), srv.base, viewer)
    assert second["change"] == "replaced" and second["device"] == key
    segs = get(srv, token, f"{API}/segments", device=key).json()["segments"]
    assert [(s["start"], s["end"]) for s in segs if s["label"] == "ad"] == [(110.0, 170.0)]
    frames = get(srv, token, f"{API}/keyframes", device=key).json()["keyframes"]
    assert [k["ts"] for k in frames] == thumb_times((110.0, 170.0), DURATION)  # the old pictures went

    r = session.patch(f"{srv.base}{API}/segments/{segs[1]['id']}", json={"label": "program"}, timeout=10)
    assert r.status_code == 200, r.text
    third = scan_result(name, ad=(120.0, 180.0))
    with pytest.raises(AdbreakError, match=r"refused recording 'Film.mkv' \(409\): .*1 reviewed segment.*replace=1"):
        send_recording(third, srv.base, viewer)
    with pytest.raises(AdbreakError, match=r"\(403\): .*only an admin"):
        send_recording(third, srv.base, viewer, replace=True)
    replaced = send_recording(third, srv.base, token, replace=True)
    assert replaced["change"] == "replaced" and replaced["reviewed"] == 0 and replaced["ad_breaks"] == 1
    segs = get(srv, token, f"{API}/segments", device=key).json()["segments"]
    assert [(s["start"], s["end"], s["review"]) for s in segs if s["label"] == "ad"] == [(120.0, 180.0, None)]
    # the correction stays in the audit trail
    assert [c["action"] for c in get(srv, token, f"{API}/corrections", device=key).json()["corrections"]] == [
        "relabel"]


# ---------------------------------------------------------------------------------------------------- delete
def test_deleting_a_reviewed_recording_is_for_admins_and_its_files_go(srv, admin, viewer):
    session, token = admin
    # an unreviewed one: whoever may send recordings may delete it
    gone = send_recording(scan_result("Trailer.ts", thumbnails=False), srv.base, viewer)
    r = requests.delete(f"{srv.base}{path_of('Trailer.ts')}", headers=bearer(viewer), timeout=10)
    assert r.status_code == 204, r.text
    assert gone["device"] not in [x["device"] for x in get(srv, token, f"{API}/recordings").json()["recordings"]]

    name = "Old news.ts"
    key = send_recording(scan_result(name), srv.base, viewer)["device"]
    folder = srv.data_dir / "keyframes" / "_recordings" / key.removeprefix("rec:")
    assert len(list(folder.iterdir())) == len(thumb_times(AD, DURATION))
    first = get(srv, token, f"{API}/segments", device=key).json()["segments"][0]
    assert session.post(f"{srv.base}{API}/segments/{first['id']}/confirm", timeout=10).status_code == 200
    r = requests.delete(f"{srv.base}{path_of(name)}", headers=bearer(viewer), timeout=10)
    assert "1 reviewed segment(s): only an admin may delete it" in one_line_error(r, 403)
    r = requests.delete(f"{srv.base}{path_of(name)}", headers=bearer(token), timeout=10)
    assert r.status_code == 204, r.text
    assert not folder.exists()
    assert "no recording" in one_line_error(requests.get(f"{srv.base}{path_of(name)}", headers=bearer(token),
                                                         timeout=10), 404)
    for what in ("segments", "corrections", "keyframes"):
        r = requests.get(f"{srv.base}{API}/{what}", params={"device": key}, headers=bearer(token), timeout=10)
        assert "unknown device" in one_line_error(r, 404)
    assert name not in [x["name"] for x in get(srv, token, f"{API}/recordings").json()["recordings"]]
    r = requests.delete(f"{srv.base}{path_of(name)}", headers=bearer(token), timeout=10)
    one_line_error(r, 404)


# ---------------------------------------------------------------------------------------------------- bad input
def _body(**changes):
    body = {"duration_s": 60.0, "fps": 25.0, "segments": [{"start": 0, "end": 20, "label": "program"},
                                                          {"start": 20, "end": 60, "label": "ad"}]}
    body.update(changes)
    return body


@pytest.mark.parametrize(("name", "body", "status", "match"), [
    ("a.ts", _body(segments=[{"start": 0, "end": 20, "label": "program"}, {"start": 25, "end": 60, "label": "ad"}]),
     400, "segments.1: starts at 25 but segments.0 ends at 20"),
    ("a.ts", _body(segments=[{"start": 0, "end": 50, "label": "program"}]), 400, "not at duration_s 60"),
    ("a.ts", _body(segments=[{"start": 0, "end": 60, "label": "credits"}]), 400, "stores program and ad"),
    ("a.ts", _body(fps=0), 400, "fps: Input should be greater than 0"),
    ("a.ts", _body(duration_s="60"), 400, "duration_s: Input should be a valid number"),
    ("a.ts", _body(segments=[]), 400, "segments: List should have at least 1 item"),
    ("a.ts", _body(colour="red"), 400, "colour: unknown field"),
    ("a.ts", _body(name="b.ts"), 400, "is not the recording of this URL"),
    ("a.ts", _body(info={"x": "y" * 9000}), 400, "info: 9008 characters as JSON"),
    ("a.ts", [1, 2], 400, "expected a JSON object body"),
    (" a.ts", _body(), 400, "begins or ends with white space"),
    ("a\x01.ts", _body(), 400, "control characters"),
    ("x" * 256, _body(), 400, "1 to 255 characters"),
])
def test_bad_uploads_are_one_line_400s(srv, admin, name, body, status, match):
    _, token = admin
    r = requests.put(f"{srv.base}{path_of(name)}", json=body, headers=bearer(token), timeout=10)
    assert match in one_line_error(r, status)


def test_bad_requests_around_uploads(srv, admin):
    _, token = admin
    base = srv.base
    r = requests.put(f"{base}{path_of('nan.ts')}", data=b'{"duration_s": NaN, "fps": 25, "segments": []}',
                     headers={**bearer(token), "Content-Type": "application/json"}, timeout=10)
    assert "duration_s: Input should be a finite number" in one_line_error(r, 400)
    r = requests.put(f"{base}{path_of('big.ts')}", data=b"{" + b" " * (5 * 1024 * 1024) + b"}",
                     headers={**bearer(token), "Content-Type": "application/json"}, timeout=30)
    assert "at most" in one_line_error(r, 413)
    r = requests.put(f"{base}{path_of('a.ts')}?replace=maybe", json=_body(), headers=bearer(token), timeout=10)
    assert "replace='maybe'" in one_line_error(r, 400)
    r = requests.put(f"{base}{path_of('a.ts')}?force=1", json=_body(), headers=bearer(token), timeout=10)
    assert "unknown parameter" in one_line_error(r, 400)
    r = requests.put(f"{base}{path_of('a.ts')}", json=_body(), timeout=10)
    one_line_error(r, 401)

    jpeg = base64.b64encode(thumbnail("ad", 1.0)).decode()
    r = requests.post(f"{base}{path_of('never sent.ts')}/keyframes", json={"keyframes": [{"t": 1, "jpeg": jpeg}]},
                      headers=bearer(token), timeout=10)
    assert "no recording 'never sent.ts'" in one_line_error(r, 404)
    r = requests.put(f"{base}{path_of('short.ts')}", json=_body(), headers=bearer(token), timeout=10)
    assert r.status_code == 201, r.text
    kf = f"{base}{path_of('short.ts')}/keyframes"
    cases = [
        ({"keyframes": [{"t": 61, "jpeg": jpeg}]}, "keyframes.0.t: 61 is after the recording's end"),
        ({"keyframes": [{"t": 1, "jpeg": base64.b64encode(b"GIF89a....").decode()}]}, "keyframes.0.jpeg: not a JPEG"),
        ({"keyframes": [{"t": 1, "jpeg": "****"}]}, "keyframes.0.jpeg: not base64"),
        ({"keyframes": [{"t": 1, "jpeg": base64.b64encode(thumbnail("ad", 1)[:-200]).decode()}]}, "cut short"),
        ({"keyframes": [{"t": 1, "jpeg": jpeg, "kind": "poster"}]}, "keyframes.0.kind: 'poster'"),
        ({"keyframes": [{"t": 1.0 * i, "jpeg": jpeg} for i in range(51)]}, "keyframes: List should have at most 50"),
        ({"keyframes": []}, "keyframes: List should have at least 1 item"),
    ]
    for body, match in cases:
        r = requests.post(kf, json=body, headers=bearer(token), timeout=10)
        assert match in one_line_error(r, 400), body
    assert get(srv, token, path_of("short.ts")).json()["keyframes"] == 0
    r = requests.post(kf, json={"keyframes": [{"t": 1, "jpeg": jpeg, "p_ad": 0.75}, {"t": 1.0004, "jpeg": jpeg}]},
                      headers=bearer(token), timeout=10)
    assert r.status_code == 200 and (r.json()["stored"], r.json()["duplicates"]) == (1, 1)


def test_send_recording_says_what_went_wrong_in_one_line(srv, admin, monkeypatch):
    result = scan_result("x.ts", thumbnails=False)
    with pytest.raises(AdbreakError, match=r"refused the API token \(401: invalid or revoked API token\)"):
        send_recording(result, srv.base, "adb_not-a-token")
    closed = f"http://127.0.0.1:{find_free_port()}"
    with pytest.raises(AdbreakError, match="cannot reach the server at 127.0.0.1:"):
        send_recording(result, closed, "adb_x", timeout=5)
    monkeypatch.delenv("ADBREAK_TOKEN", raising=False)
    with pytest.raises(AdbreakError, match="give --token or set ADBREAK_TOKEN"):
        send_recording(result, srv.base, None)
    with pytest.raises(AdbreakError, match="expected the server's address"):
        send_recording(result, "ftp://example", "adb_x")
    _, token = admin
    monkeypatch.setenv("ADBREAK_TOKEN", token)
    sent = send_recording(result, f"{srv.base}/api/v1/", None)  # the token from the environment, the API's URL
    assert sent["change"] == "created" and sent["keyframes_sent"] == 0


# ---------------------------------------------------------------------------------------------------- retention
def test_the_retention_jobs_leave_recordings_alone(srv, admin):
    _, token = admin
    name = "Kept forever.ts"
    sent = send_recording(scan_result(name), srv.base, token)
    key, frames = sent["device"], sent["keyframes"]
    engine = db.make_engine(srv.db)
    try:
        store = SegmentStore(db.make_sessionmaker(engine))
        with engine.connect() as conn:  # its segments lie in 1970: far past any horizon, yet none is due
            assert retention.count_due(conn, retention.RetentionPolicy(events_days=1), 1e10)["segments"] == 0
        keyframes = KeyframeStore(store, srv.data_dir, max_mb=0.000001, max_days=0.000001, clock=lambda: 1e10)
        with store.batch() as batch:
            keyframes.retention(batch)
    finally:
        engine.dispose()
    rec = get(srv, token, path_of(name)).json()
    assert (rec["segments"], rec["keyframes"]) == (3, frames)
    folder = srv.data_dir / "keyframes" / "_recordings" / key.removeprefix("rec:")
    assert len(list(folder.iterdir())) == frames
