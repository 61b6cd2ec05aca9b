"""GET /api/v1/export through the app in this process (Flask's test client) on a migrated database of each engine,
signed in; the history comes from the real store's ingest (availability, state, events), corrections as the review
leaves them."""

from __future__ import annotations

import pytest

from adbreak import exports
from adbreak.segments import Segment
from tests.export_support import history, review
from tests.server_support import SignedIn, error_of, make_app

pytestmark = pytest.mark.usefixtures("db_engine")

T0 = 1763892000.0  # 2025-11-23T10:00:00Z
STAMP = "20251123T100000Z"
CHANGES = [(0.0, "program"), (600.0, "ad"), (732.5, "program"), (1800.0, "ad"), (1830.25, "program")]
WANT = [Segment(0, 600, "program"), Segment(600, 732.5, "ad"), Segment(732.5, 1800, "program"),
        Segment(1800, 1830.25, "ad"), Segment(1830.25, 3600, "program")]


@pytest.fixture(scope="module")
def app(tmp_path_factory, db_engine):
    app = make_app(tmp_path_factory.mktemp("export"))
    store = app.extensions["adbreak"].store
    # offline from +1000 s to +1200 s: no data there (exported as program)
    history(store, "tv1", T0, CHANGES, offline=(1000.0, 1200.0))
    history(store, "kitchen", T0, [(0.0, "program"), (100.0, "ad")])
    yield app
    app.extensions["adbreak"].stop()


@pytest.fixture(scope="module")
def api(app):
    return SignedIn(app)


def url(**params) -> str:
    base = {"device": "tv1", "start": str(T0), "end": str(T0 + 3600)}
    base.update(params)
    return "/api/v1/export?" + "&".join(f"{k}={v}" for k, v in base.items() if v is not None)


def close(got: list[Segment], want: list[Segment], tol: float) -> None:
    assert [s.label for s in got] == [s.label for s in want], got
    for g, w in zip(got, want, strict=True):
        assert abs(g.start - w.start) <= tol and abs(g.end - w.end) <= tol, (g, w)


@pytest.mark.parametrize(("fmt", "ext", "ctype"), [
    ("csv", "csv", "text/csv; charset=utf-8"),
    ("edl", "edl", "text/plain; charset=utf-8"),
    ("comskip", "txt", "text/plain; charset=utf-8"),
    ("ffmetadata", "ffmeta", "text/plain; charset=utf-8"),
])
def test_every_format_is_an_attachment_that_reads_back_to_the_segments(api, fmt, ext, ctype):
    r = api.get(url(format=fmt))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == ctype
    assert r.headers["Content-Disposition"] == f'attachment; filename="tv1_{STAMP}.{ext}"'
    assert float(r.headers["X-Adbreak-Gap-Seconds"]) == pytest.approx(200.0)
    text = r.get_data(as_text=True)
    close(exports.parse(fmt, text, duration=3600.0), WANT, exports.precision(fmt))


def test_exact_texts_of_edl_and_comskip(api):
    assert api.get(url(format="edl")).get_data(as_text=True) == "600.000\t732.500\t3\n1800.000\t1830.250\t3\n"
    text = api.get(url(format="comskip", fps="25")).get_data(as_text=True)
    assert text == ("FILE PROCESSING COMPLETE  90000 FRAMES AT 2500\n-------------------\n"
                    "15000\t18312\n45000\t45756\n")
    default = api.get(url(format="comskip")).get_data(as_text=True)
    assert default.splitlines()[0] == "FILE PROCESSING COMPLETE 107892 FRAMES AT 2997"


def test_range_is_clipped_and_relative_to_its_start_iso_times_too(api):
    r = api.get(url(format="csv", start="2025-11-23T10:11:40Z", end="2025-11-23T11:30:10%2B01:00"))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Disposition"] == 'attachment; filename="tv1_20251123T101140Z.csv"'
    assert r.get_data(as_text=True) == ("start,end,label\n0.000,32.500,ad\n32.500,1100.000,program\n"
                                        "1100.000,1110.000,ad\n")


def test_a_correction_is_what_gets_exported(app, api, tmp_path):
    segs = api.get(f"/api/v1/segments?device=kitchen&start={T0}").get_json()["segments"]
    assert [(s["label"], s["status"]) for s in segs] == [("program", "closed"), ("ad", "open")]
    review(app.extensions["adbreak"].engine, segs[0]["id"], "corrected", label="ad", detected="program")
    r = api.get(url(device="kitchen", format="edl", end=str(T0 + 60)))
    assert r.get_data(as_text=True) == "0.000\t60.000\t3\n"


def test_signed_out_is_401(app):
    error_of(app.test_client().get(url(format="csv")), 401)


@pytest.mark.parametrize(("params", "status", "match"), [
    ({"format": "srt"}, 400, "expected one of csv, edl, comskip, ffmetadata"),
    ({"format": None}, 400, "format is required"),
    ({"format": "csv", "device": "TV 1"}, 400, "not a device name"),
    ({"format": "csv", "device": "nosuch"}, 404, "unknown device 'nosuch'"),
    ({"format": "csv", "device": None}, 400, "device is required"),
    ({"format": "csv", "start": None}, 400, "start is required"),
    ({"format": "csv", "end": str(T0)}, 400, "end must be after start"),
    ({"format": "csv", "end": "tomorrow"}, 400, "neither epoch seconds nor an ISO 8601"),
    ({"format": "csv", "end": str(T0 + 40 * 86400)}, 400, "at most 31 days"),
    ({"format": "csv", "fps": "25"}, 400, "fps applies to format=comskip only"),
    ({"format": "comskip", "fps": "0"}, 400, "fps"),
    ({"format": "comskip", "fps": "fast"}, 400, "not a number"),
    ({"format": "csv", "limit": "5"}, 400, "unknown parameter(s) limit"),
    ({"format": "csv", "start": str(T0 - 7200), "end": str(T0 - 3600)}, 404, "no stored segment overlaps the range"),
])
def test_bad_requests_get_one_line_json_errors(api, params, status, match):
    assert match in error_of(api.get(url(**params)), status)


def test_a_parameter_given_twice_is_refused(api):
    assert "more than once" in error_of(api.get(url(format="csv") + "&format=edl"), 400)
