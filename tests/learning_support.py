"""Test support for the learning loop (``tests/integration/test_learning_loop.py``): the clock of a replayed file,
a reviewer that corrects a device's stored segments to the truth through the review API over HTTP, and the head's
per-frame accuracy.

The reviewer plays the user in the dashboard's Review view: it reads what the server stored, compares it with the
broadcast's truth and makes only the corrections the detector's mistakes call for (a segment with the wrong label:
relabel; a boundary that is not one: merge; an edge off by more than :data:`EDGE_TOL_S` of stream time: move; a
boundary it missed: split), then confirms what is right, so that every stored segment is reviewed (``adbreak
dataset`` takes reviewed segments only). Each mistake it finds is returned as a :class:`Mistake`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from adbreak.scores import read_scores
from adbreak.segments import Segment, label_at, read_segments

EDGE_TOL_S = 0.5
"""A stored edge this close (stream seconds) to a true boundary is left where it is: the dataset's margin (0.5 s of
wall time) keeps the frames next to an edge out anyway, as a user would not nudge an edge by a frame or two."""
NEAR_S = 15.0
"""A stored edge within this many stream seconds of a true boundary is that boundary, detected late or early (the
smoothing decider's window delays it): it is moved there. Farther, the boundary was missed: a split."""
MIN_PART_S = 1.0
"""The review API's shortest segment (``server.review.MIN_SEGMENT_S``), seconds of wall time."""


@dataclass(frozen=True)
class Mistake:
    """One mistake of the detector, in stream seconds: ``kind`` is ``missed_boundary``, ``false_boundary``,
    ``edge_off`` or ``wrong_label``; ``at`` where; ``detail`` what the detector said."""

    kind: str
    at: float
    detail: str


class StreamClock:
    """Stream time <-> wall time of a file replayed at ``speed`` (``edge.capture.StreamClock``, paced): ``wall = t0 +
    stream_t / speed``, ``t0`` read off the stored events, which carry both times of each boundary."""

    def __init__(self, events: Sequence[dict], speed: float) -> None:
        assert events, "no stored event to read the replay's clock from"
        anchors = [e["boundary_ts"] - e["boundary_stream_t"] / speed for e in events]
        self.t0 = float(np.median(anchors))
        self.speed = speed
        spread = max(anchors) - min(anchors)
        assert spread < 0.05, f"the events do not share one paced clock (anchors spread over {spread:.3f} s)"

    def wall(self, stream_t: float) -> float:
        return self.t0 + stream_t / self.speed

    def stream(self, wall: float) -> float:
        return (wall - self.t0) * self.speed


class Reviewer:
    """A signed-in user (``session``: ``tests.server_support.http_session``) reviewing ``device`` on the server at
    ``base`` against ``truth`` (stream time)."""

    def __init__(self, session: requests.Session, base: str, device: str, truth: Sequence[Segment],
                 clock: StreamClock) -> None:
        self.api = session
        self.base = base
        self.device = device
        self.truth = list(truth)
        self.clock = clock
        self.requests = 0

    # ------------------------------------------------------------------------------------------------ the API
    def segments(self) -> list[dict]:
        r = self.api.get(f"{self.base}/api/v1/segments", params={"device": self.device, "limit": 10000}, timeout=10)
        r.raise_for_status()
        return sorted(r.json()["segments"], key=lambda s: s["start"])

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        r = self.api.request(method, f"{self.base}/api/v1{path}", json=body if body is not None else {}, timeout=10)
        assert r.status_code == 200, f"{method} {path} {body}: {r.status_code} {r.text}"
        self.requests += 1
        return r.json()

    # ------------------------------------------------------------------------------------------------ review
    def review(self) -> list[Mistake]:
        """Correct the stored segments to the truth; return the detector's mistakes, in the order fixed."""
        segs = self.segments()
        assert segs, f"nothing stored for {self.device}"
        assert all(s["status"] != "open" for s in segs), "a segment is still open: the replay has not ended"
        mistakes = self._labels()
        mistakes += self._boundaries()
        for s in self.segments():  # what is right now: confirmed, so that the dataset takes it
            assert s["label"] == self._truth_label(s), s
            if s["review"] is None:
                self._call("POST", f"/segments/{s['id']}/confirm")
        return mistakes

    def _labels(self) -> list[Mistake]:
        """Each stored segment should carry the label the truth gives most of it. Runs of adjacent segments that
        the truth gives the same label are one segment cut by boundaries that are none (a false break, a flap):
        merged, with that label; a single segment with the other label is relabelled."""
        found: list[Mistake] = []
        segs = self.segments()
        runs: list[list[dict]] = [[segs[0]]]
        for s in segs[1:]:
            prev = runs[-1][-1]
            if abs(prev["end"] - s["start"]) < 1e-6 and self._truth_label(prev) == self._truth_label(s):
                runs[-1].append(s)
            else:
                runs.append([s])
        for run in runs:
            want = self._truth_label(run[0])
            if len(run) > 1:
                assert len(run) <= 50, f"{len(run)} segments inside one true segment: more than one merge takes"
                for a, b in zip(run, run[1:], strict=False):
                    found.append(Mistake("false_boundary", self._stream(b["start"]), f"{a['label']} -> {b['label']}"))
                self._call("POST", "/segments/merge", {"ids": [s["id"] for s in run], "label": want})
            elif run[0]["label"] != want:
                s = run[0]
                span = self._stream(s["end"]) - self._stream(s["start"])
                found.append(Mistake("wrong_label", self._stream(s["start"]),
                                     f"{s['label']} for {want} over {span:.1f} s"))
                self._call("PATCH", f"/segments/{s['id']}", {"label": want})
        return found

    def _boundaries(self) -> list[Mistake]:
        """Every true boundary inside the stored stretch becomes an edge: the stored edge of the same change
        (program -> ad or back) within :data:`NEAR_S` moved there when it is off by more than :data:`EDGE_TOL_S`,
        or, with none, a split there (the part on the wrong side relabelled)."""
        found: list[Mistake] = []
        for before, after in zip(self.truth, self.truth[1:], strict=False):
            b = after.start
            w = self.clock.wall(b)
            segs = self.segments()
            if not segs[0]["start"] + MIN_PART_S <= w <= segs[-1]["end"] - MIN_PART_S:
                continue  # outside what was stored (before the first decision, after the agent stopped)
            edges = [(abs(self._stream(a["end"]) - b), a, c) for a, c in zip(segs, segs[1:], strict=False)
                     if abs(a["end"] - c["start"]) < 1e-6 and (a["label"], c["label"]) == (before.label, after.label)
                     and a["start"] + MIN_PART_S <= w <= c["end"] - MIN_PART_S]
            dist, a, _ = min(edges, key=lambda e: e[0], default=(None, None, None))
            if dist is not None and dist <= NEAR_S:
                if dist > EDGE_TOL_S:
                    found.append(Mistake("edge_off", b, f"at {self._stream(a['end']):.2f} s"))
                    self._call("PATCH", f"/segments/{a['id']}", {"end": w})
                continue
            seg = next(s for s in segs if s["start"] <= w < s["end"])
            assert seg["start"] + MIN_PART_S <= w <= seg["end"] - MIN_PART_S, (b, seg)
            found.append(Mistake("missed_boundary", b, f"{before.label} -> {after.label} inside {seg['label']}"))
            if seg["label"] == before.label:  # the part after the boundary is the wrong one
                self._call("POST", f"/segments/{seg['id']}/split", {"at": w, "label": after.label})
            else:
                self._call("POST", f"/segments/{seg['id']}/split", {"at": w, "label": before.label, "part": "before"})
        self._tidy()
        return found

    def _tidy(self) -> None:
        """Neighbours a split left with one label (a break detected too far from where it is) become one."""
        segs = self.segments()
        for a, c in zip(segs, segs[1:], strict=False):
            if abs(a["end"] - c["start"]) < 1e-6 and a["label"] == c["label"]:
                self._call("POST", "/segments/merge", {"ids": [a["id"], c["id"]], "label": a["label"]})
                return self._tidy()
        return None

    # ------------------------------------------------------------------------------------------------ truth
    def _stream(self, wall: float) -> float:
        return self.clock.stream(wall)

    def _label(self, t: float) -> str:
        return label_at(self.truth, min(max(t, 0.0), self.truth[-1].end))

    def _truth_label(self, seg: dict) -> str:
        """The label the truth gives most of a stored segment."""
        a, b = self._stream(seg["start"]), self._stream(seg["end"])
        ts = np.linspace(a, b, max(3, int((b - a) * 10)))
        ads = sum(self._label(float(t)) == "ad" for t in ts)
        return "ad" if ads * 2 > len(ts) else "program"

    def disagreement_s(self) -> tuple[float, float]:
        """``(wrong, stored)``: stream seconds of the stored stretch (inside the truth) whose stored label differs
        from the truth, and how many seconds were stored (sampled every 0.1 s)."""
        wrong = stored = 0
        for s in self.segments():
            a, b = max(self._stream(s["start"]), 0.0), min(self._stream(s["end"]), self.truth[-1].end)
            for t in np.arange(a, b, 0.1):
                stored += 1
                wrong += self._label(float(t)) != s["label"]
        return round(wrong * 0.1, 1), round(stored * 0.1, 1)


def per_frame_accuracy(scores: Path, truth: Path, where: Callable[[float], bool] | None = None) -> tuple[float, int]:
    """Share of the frames of a ``--record-scores`` file whose head p(ad) is on the truth's side of 0.5 (only those
    at times ``where`` accepts, when given), and how many frames that was."""
    t, p, _ = read_scores(scores)
    ok = ~np.isnan(p)
    assert ok.any(), f"{scores}: no frame has a head p(ad) (was a model given?)"
    if where is not None:
        ok &= np.array([where(float(x)) for x in t])
    if not ok.any():
        return float("nan"), 0
    segs = read_segments(truth)
    is_ad = np.array([label_at(segs, float(x)) == "ad" for x in t[ok]])
    return float(np.mean((p[ok] >= 0.5) == is_ad)), int(ok.sum())


def _sources(play: dict) -> frozenset[str]:
    """What a play of the builder's metadata shows: its ad spot, or the clips and photos of its shots."""
    if play.get("spot"):
        return frozenset({play["spot"]})
    return frozenset(shot.get("clip") or shot.get("photo") or "?" for shot in play.get("shots", []))


def material(broadcast_json: Path, seen_json: Path) -> Callable[[float], str]:
    """For a time of one built broadcast: ``known`` when its play (a program shot, an ad spot) shows only shows and
    spots that the other broadcast showed too (in other shots: other excerpts, pans, grades), ``new`` when it shows
    one that the other never did, ``separator`` for the black between spots."""
    plays = json.loads(Path(broadcast_json).read_text())["plays"]
    seen = set().union(*(_sources(p) for p in json.loads(Path(seen_json).read_text())["plays"]))

    def kind(t: float) -> str:
        play = next((p for p in plays if p["start"] <= t < p["end"]), plays[-1])
        if not play.get("shots"):
            return "separator"
        return "known" if _sources(play) <= seen else "new"

    return kind
