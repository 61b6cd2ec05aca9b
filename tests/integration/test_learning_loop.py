"""The learning loop end to end: detect -> review -> retrain -> better, with the real things a user meets.

* The starting model is trained on the wrong footage: a 90 s broadcast of the builder's ``train`` pool.
* A private Mosquitto and a real ``adbreak server`` process (SQLite file); the real ``adbreak edge`` replays "the
  user's TV", a 180 s broadcast of the ``heldout`` pool (no clip, photo or ad in common with ``train``), at x4 with
  that model and the smoothing decider (the head's p(ad) alone decides: with the broadcast cues the fusion is right
  on these broadcasts without any head, ``tests/integration/test_generalise.py``, and there would be nothing to
  learn). Its events, segments and keyframes reach the server over MQTT.
* The test reads back over HTTP what the server stored, compares it with the broadcast's truth and corrects exactly
  the detector's mistakes through the review API (``tests/learning_support.py``: relabel, merge, move, split, as in
  the dashboard's Review view), confirming the rest.
* ``adbreak dataset`` exports the reviewed keyframes from the server's database and data folder, ``adbreak train``
  trains a new bundle on them alone.
* ``adbreak evaluate`` runs the starting model and the retrained one over a third broadcast, of the ``heldout`` pool
  again but another seed: the same channel another evening, never replayed nor trained on. Its shows and most of
  its ads aired in the replayed broadcast too, in other shots (other excerpts, pans, colour grades), as a channel's
  do; one 20 s spot never did. The head's per-frame accuracy (its recorded p(ad) on the truth's side of 0.5) must
  rise by at least 0.10, and the decided accuracy with it. The figures, with the per-frame accuracy apart on the
  known and the never-aired material, land in ``out/test-artifacts/learning-loop.json``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from adbreak.atomic import write_text
from adbreak.broadcast import build_broadcast
from adbreak.segments import label_at, read_segments
from tests.db_support import sqlite_url
from tests.edge_mqtt_support import Mosquitto, start_edge
from tests.learning_support import Mistake, Reviewer, StreamClock, material, per_frame_accuracy
from tests.server_support import ServerProcess
from tests.support import ROOT, run_cli, wait_for

pytestmark = pytest.mark.slow

DEVICE = "living-room"
SPEED = 4.0  # replay speed: the agent analyses 8 frames a second of wall time (it drops none here, loaded)
ANALYSIS_FPS = 2  # the bundles' analysis rate (the agent's and evaluate's)
BUILD = {"size": (640, 360), "fps": 10}
MIN_GAIN = 0.10  # per-frame accuracy on the unseen broadcast, retrained minus starting model
ARTIFACT = ROOT / "out" / "test-artifacts" / "learning-loop.json"


@dataclass
class Footage:
    start: object  # BroadcastInfo: what the starting model was trained on (pool train)
    user: object  # the replayed one (pool heldout)
    unseen: object  # the evaluation one (pool heldout, another seed)


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> Footage:
    root = tmp_path_factory.mktemp("loop-footage")
    return Footage(
        start=build_broadcast(root, "start", seed=21, duration_s=90, pool="train", **BUILD),
        user=build_broadcast(root, "user", seed=22, duration_s=180, pool="heldout", **BUILD),
        unseen=build_broadcast(root, "unseen", seed=23, duration_s=150, pool="heldout", **BUILD),
    )


@pytest.fixture(scope="module")
def start_model(footage, cache_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("loop-start")
    proc = run_cli("extract", footage.start.video, "--segments", footage.start.truth, "--out", root / "frames",
                   "--fps", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", root / "frames", "--out", root / "start-model", "--fps", ANALYSIS_FPS,
                   "--cache-dir", cache_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    return root / "start-model"


@dataclass
class Live:
    root: Path
    server: ServerProcess
    api: requests.Session
    clock: StreamClock
    events: list[dict]
    keyframes: list[dict]
    edge_log: str


def _keyframes(srv: ServerProcess, api: requests.Session) -> list[dict]:
    r = api.get(f"{srv.base}/api/v1/keyframes", params={"device": DEVICE, "limit": 10000}, timeout=10)
    r.raise_for_status()
    return r.json()["keyframes"]


@pytest.fixture(scope="module")
def live(footage, start_model, tmp_path_factory):
    """The agent has replayed the user's broadcast into the server, which is still running."""
    root = tmp_path_factory.mktemp("loop-live")
    broker = Mosquitto(root).start()
    try:
        with ServerProcess(root, (broker.host, broker.port), db=sqlite_url(root)) as srv:
            edge = start_edge("--source", footage.user.video, "--device", DEVICE, "--model", start_model,
                              "--decider", "smoothing", "--mqtt", f"{broker.host}:{broker.port}", "--speed", SPEED,
                              "--state-dir", root / "state", "-q", log=root / "edge.log")
            try:
                rc = edge.wait(timeout=400)
            finally:
                if edge.poll() is None:
                    edge.kill()
                    edge.wait(10)
            edge_log = (root / "edge.log").read_text()
            assert rc == 0, edge_log[-3000:]
            api = srv.session()

            def settled() -> bool:
                device = api.get(f"{srv.base}/api/v1/devices/{DEVICE}", timeout=10).json()
                segs = api.get(f"{srv.base}/api/v1/segments", params={"device": DEVICE}, timeout=10).json()
                return device["availability"] == "stopped" and all(s["status"] != "open" for s in segs["segments"])

            wait_for(settled, timeout=60, interval=0.5, what="the server to record the agent's stop")
            seen: list[int] = []

            def keyframes_still() -> bool:  # the last ones travel just before the stop
                seen.append(len(_keyframes(srv, api)))
                return len(seen) >= 3 and seen[-1] == seen[-2] == seen[-3]

            wait_for(keyframes_still, timeout=30, interval=1.0, what="the keyframes to stop arriving")
            events = api.get(f"{srv.base}/api/v1/events", params={"device": DEVICE, "limit": 1000},
                             timeout=10).json()["events"]
            yield Live(root, srv, api, StreamClock(events, SPEED), events, _keyframes(srv, api), edge_log)
    finally:
        broker.stop()


@dataclass
class Reviewed:
    mistakes: list[Mistake]
    wrong_before_s: float
    wrong_after_s: float
    stored_s: float
    requests: int


@pytest.fixture(scope="module")
def reviewed(live, footage) -> Reviewed:
    reviewer = Reviewer(live.api, live.server.base, DEVICE, read_segments(footage.user.truth), live.clock)
    wrong_before, stored = reviewer.disagreement_s()
    mistakes = reviewer.review()
    wrong_after, _ = reviewer.disagreement_s()
    return Reviewed(mistakes, wrong_before, wrong_after, stored, reviewer.requests)


@dataclass
class Retrained:
    dataset: Path
    summary: dict
    model: Path
    report: dict


@pytest.fixture(scope="module")
def retrained(live, reviewed, cache_dir) -> Retrained:
    out = live.root / "reviewed"
    proc = run_cli("dataset", live.server.db, "--data-dir", live.root / "server-data", "--device", DEVICE,
                   "--out", out, "-q")
    assert proc.returncode == 0, proc.stderr
    assert f"frames into {out}" in proc.stdout and "next: adbreak train" in proc.stdout, proc.stdout
    model = live.root / "retrained-model"
    proc = run_cli("train", out, "--out", model, "--fps", ANALYSIS_FPS, "--cache-dir", cache_dir, "-q",
                   "--json", live.root / "report.json")
    assert proc.returncode == 0, proc.stderr
    return Retrained(out, json.loads((out / "summary.json").read_text()), model,
                     json.loads((live.root / "report.json").read_text()))


def _replay_counts(edge_log: str) -> dict:
    """The agent's closing line: frames analysed and dropped (behind the replay: the drop-oldest queue)."""
    m = re.search(r"(\d+) frames analysed, (\d+) dropped", edge_log)
    assert m, edge_log[-2000:]
    return {"frames_analysed": int(m[1]), "frames_dropped": int(m[2])}


def _evaluate(footage: Footage, model: Path, out: Path) -> dict:
    proc = run_cli("evaluate", footage.unseen.video, "--truth", footage.unseen.truth, "--model", model,
                   "--decider", "smoothing", "--fps", ANALYSIS_FPS, "--record-scores", out.with_suffix(".csv"),
                   "--json", out.with_suffix(".json"), "-q")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.with_suffix(".json").read_text())
    scores, truth = out.with_suffix(".csv"), footage.unseen.truth
    per_frame, frames = per_frame_accuracy(scores, truth)
    kind = material(footage.unseen.meta, footage.user.meta)
    apart = {k: per_frame_accuracy(scores, truth, lambda t, k=k: kind(t) == k) for k in ("known", "new")}
    return {"per_frame": round(per_frame, 4), "frames": frames, "accuracy": metrics["accuracy"],
            "missed_breaks": metrics["missed_breaks"], "false_breaks": metrics["false_breaks"],
            **{f"per_frame_{k}": round(a, 4) for k, (a, _) in apart.items()},
            **{f"frames_{k}": n for k, (_, n) in apart.items()}}


# ---------------------------------------------------------------------------------------------------- the tests
def test_the_agent_stores_what_it_detected(live, start_model):
    version = json.loads((start_model / "bundle.json").read_text())["version"]
    assert _replay_counts(live.edge_log)["frames_analysed"] >= 180 * ANALYSIS_FPS / 2, live.edge_log[-2000:]
    assert live.events and {e["model_version"] for e in live.events} == {version}
    assert len(live.keyframes) >= 40, Counter(k["kind"] for k in live.keyframes)
    assert {k["model_version"] for k in live.keyframes} == {version}
    assert {k["label"] for k in live.keyframes} <= {"ad", "program"}
    picture = live.api.get(f"{live.server.base}{live.keyframes[0]['url']}", timeout=10)
    assert picture.status_code == 200 and picture.headers["Content-Type"] == "image/jpeg"
    assert picture.content[:2] == b"\xff\xd8"


def test_the_review_corrects_what_the_detector_got_wrong(live, reviewed):
    # the starting model really is wrong on this footage, and the review puts every second of it right
    assert reviewed.mistakes, "the starting detector made no mistake: nothing for the loop to learn"
    assert reviewed.wrong_before_s >= 10.0, reviewed
    assert reviewed.stored_s >= 170.0, reviewed
    assert reviewed.wrong_after_s <= 1.0, reviewed  # what is left: edges within EDGE_TOL_S, left alone
    segments = live.api.get(f"{live.server.base}/api/v1/segments", params={"device": DEVICE},
                            timeout=10).json()["segments"]
    assert all(s["review"] in ("confirmed", "corrected") and s["reviewed_by"] == "admin" for s in segments)
    assert any(s["review"] == "corrected" for s in segments)
    # the audit trail holds one correction per request the reviewer made, confirmations included
    corrections = live.api.get(f"{live.server.base}/api/v1/corrections", params={"device": DEVICE},
                               timeout=10).json()["corrections"]
    assert len(corrections) == reviewed.requests
    assert Counter(c["action"] for c in corrections)["confirm"] == sum(s["review"] == "confirmed" for s in segments)


def test_the_dataset_holds_the_corrected_keyframes(live, reviewed, retrained, footage):
    summary, out = retrained.summary, retrained.dataset
    rows = list(csv.DictReader(io.StringIO((out / "manifest.csv").read_text())))
    assert summary["trainable"] and summary["frames"] == len(rows) >= 40
    assert set(summary["labels"]) == {"ad", "program"} and summary["left_out"]["not_reviewed"] == 0
    # what the corrections teach: frames the detector had labelled wrong, now labelled as the truth says
    relabelled = [r for r in rows if r["label"] != r["detected"]]
    assert relabelled and summary["relabelled_frames"] == len(relabelled)
    truth = read_segments(footage.user.truth)
    for r in rows:  # every frame is labelled as the truth says (frames near an edge are left out: the margin)
        t = min(max(live.clock.stream(float(r["ts"])), 0.0), truth[-1].end)
        assert r["label"] == label_at(truth, t), (r, t)
    assert all((out / r["frame"]).is_file() for r in rows)
    # the same selection over HTTP, as the dashboard's download would make it
    api = live.api.get(f"{live.server.base}/api/v1/dataset/summary", params={"device": DEVICE}, timeout=10).json()
    assert (api["frames"], api["labels"], api["relabelled_frames"]) == \
        (summary["frames"], summary["labels"], summary["relabelled_frames"])


def test_the_retrained_model_does_better_on_footage_it_never_saw(live, reviewed, retrained, footage, start_model):
    before = _evaluate(footage, start_model, live.root / "eval-start")
    after = _evaluate(footage, retrained.model, live.root / "eval-retrained")
    figures = {
        "unseen_broadcast": {"pool": "heldout", "seed": 23, "duration_s": 150, "frames": after["frames"]},
        "starting_model": before, "retrained_model": after, "replay": _replay_counts(live.edge_log),
        "review": {"mistakes": [m.__dict__ for m in reviewed.mistakes], "wrong_before_s": reviewed.wrong_before_s,
                   "wrong_after_s": reviewed.wrong_after_s, "stored_s": reviewed.stored_s},
        "dataset": {k: retrained.summary[k] for k in ("frames", "labels", "relabelled_frames", "left_out")},
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    write_text(ARTIFACT, json.dumps(figures, indent=2) + "\n")
    print(f"\nlearning loop: per-frame {before['per_frame']:.3f} -> {after['per_frame']:.3f} (known material "
          f"{before['per_frame_known']:.3f} -> {after['per_frame_known']:.3f} on {after['frames_known']} frames, "
          f"never aired {before['per_frame_new']:.3f} -> {after['per_frame_new']:.3f} on {after['frames_new']}), "
          f"decided {before['accuracy']:.3f} -> {after['accuracy']:.3f} ({ARTIFACT})")
    assert after["frames"] == before["frames"]
    assert after["per_frame"] >= before["per_frame"] + MIN_GAIN, figures
    assert after["accuracy"] > before["accuracy"], figures


def test_dataset_refusals_are_one_line(live, retrained, tmp_path):
    """``adbreak dataset`` on the server's real database: a bad request is one line and exit code 2, nothing
    written. (The API's refusals: ``tests/api/test_dataset_api.py``; the shared time and file parsing:
    ``tests/integration/test_export_cli.py``.)"""
    db, data = live.server.db, live.root / "server-data"
    cases = [
        (("--start", "1000000000", "--end", "1000000100"), "no keyframe falls inside a reviewed segment"),
        (("--device", "nosuch"), f"unknown device 'nosuch' (known: {DEVICE})"),
        (("--margin", "-1"), "margin -1.0 must be between 0 and 30 seconds"),
    ]
    for extra, match in cases:
        proc = run_cli("dataset", db, "--out", tmp_path / "d", "--data-dir", data, *extra)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and match in lines[0], proc.stderr
    proc = run_cli("dataset", db, "--out", tmp_path / "d", "--data-dir", tmp_path / "nowhere")
    assert proc.returncode == 2 and "keyframe folder" in proc.stderr
    assert not (tmp_path / "d").exists()
    # an existing folder is kept unless --force
    again = run_cli("dataset", db, "--out", retrained.dataset, "--data-dir", data)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert json.loads((retrained.dataset / "summary.json").read_text()) == retrained.summary
