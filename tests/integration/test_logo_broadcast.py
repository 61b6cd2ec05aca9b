"""edge.logo on built broadcasts: the logo learned from the program itself, presence against the truth's labels.

The held-out pool's program (clips and pans over photos, letterboxed, pillarboxed and full-frame, some with bright
skies that nearly hide a white logo) carries the default channel's logo, a white "TV5" outline top-right; the ads
(some 4:3, their pillarbox border running right past the logo) carry none. Clean, through the camera (the screen
warped back with the builder's corners, as the edge does) and with the logo at alpha 0.25 (``transparent``).
"""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from adbreak.broadcast.builder import build_broadcast
from adbreak.segments import read_segments
from edge.cues.base import ScreenFrame
from edge.logo import LogoLearner
from edge.sources import VideoSource

pytestmark = pytest.mark.slow

SEED = 1
DURATION = 150.0  # seed 1: two ad breaks


def _label_at(segments, t: float) -> str:
    for s in segments:
        if s.start <= t < s.end:
            return s.label
    return segments[-1].label


@pytest.mark.parametrize(
    "options",
    [{}, {"camera": True}, {"difficulties": ("transparent",)}],
    ids=["clean", "camera", "transparent"],
)
def test_presence_agrees_with_the_truth(tmp_path, options: dict):
    camera = bool(options.get("camera"))
    info = build_broadcast(tmp_path, "held", seed=SEED, duration_s=DURATION, pool="heldout", **options)
    meta = json.loads(info.meta.read_text())
    segments = read_segments(info.truth)
    assert sum(s.label == "ad" for s in segments) >= 2  # at least two breaks to judge presence on
    assert meta["logo"]["corner"] == "top-right"
    w, h = meta["size"]
    warp = None
    if camera:  # the screen as the camera sees it, warped back to a frontal picture (what the edge does)
        frontal = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
        warp = cv2.getPerspectiveTransform(np.float32(meta["screen_corners"]), frontal)

    learner = LogoLearner()
    rows = []
    with VideoSource(str(info.video), 5.0) as source:
        for frame in source:
            image = frame.image if warp is None else cv2.warpPerspective(frame.image, warp, (w, h))
            p = learner.update(ScreenFrame.from_rgb(frame.t, image))
            rows.append((frame.t, p, _label_at(segments, frame.t) == "program"))

    # found within two minutes of program
    assert learner.learned_at_t is not None
    program_before = sum(
        min(s.end, learner.learned_at_t) - s.start
        for s in segments
        if s.label == "program" and s.start < learner.learned_at_t
    )
    assert program_before <= 120.0
    # in the top-right corner, over the truth's logo box (scaled to the 640 px analysis width)
    scale = 640 / w
    lx0, ly0, lx1, ly1 = (v * scale for v in meta["logo"]["box"])
    x0, y0, x1, y1 = learner.box
    ix = max(0.0, min(x1, lx1) - max(x0, lx0))
    iy = max(0.0, min(y1, ly1) - max(y0, ly0))
    assert ix * iy >= 0.8 * (lx1 - lx0) * (ly1 - ly0), (learner.box, (lx0, ly0, lx1, ly1))
    assert (x1 - x0) * (y1 - y0) <= 2.0 * (lx1 - lx0) * (ly1 - ly0)

    after = [(p, prog) for t, p, prog in rows if t >= learner.learned_at_t]
    assert all(not math.isnan(p) and 0.0 <= p <= 1.0 for p, _ in after)
    agree = sum((p > 0.5) == prog for p, prog in after) / len(after)
    assert agree >= 0.95, agree
    on = [p for p, prog in after if prog]
    off = [p for p, prog in after if not prog]
    assert np.mean(on) >= 0.8 and np.mean(off) <= 0.2
