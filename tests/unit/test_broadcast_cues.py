"""The device's learned state behind the pipeline: a corrupt logo, memory or calibration file is set aside and the
detector runs; what it learned is written back and read on the next start."""

from __future__ import annotations

import math

import numpy as np

from edge.broadcast_cues import LOGO_FILE, MEMORY_FILE
from edge.fusion import FusionDecision
from edge.pipeline import CALIBRATION_FILE, Detector
from edge.sources.base import Frame


def test_corrupt_learned_state_is_set_aside_and_detection_goes_on(tmp_path, caplog):
    state = tmp_path / "tv.cues"
    state.mkdir()
    (state / LOGO_FILE).write_bytes(b"not an npz at all")
    (state / MEMORY_FILE).write_bytes(b"\x00\x01 broken")
    (state / CALIBRATION_FILE).write_text('{"version": 1, "observed": ')
    detector = Detector(None, state_dir=state)  # no model: the cues alone
    rng = np.random.default_rng(0)
    results = [
        detector.process(Frame(i / 5, rng.integers(0, 255, (270, 480, 3), dtype=np.uint8), i, None))
        for i in range(30)
    ]
    assert results[-1].state is not None
    # no audio in the source: the audio cues are unknown, never silence
    assert math.isnan(results[-1].cues["silence"]) and math.isnan(results[-1].cues["loudness"])
    names = sorted(p.name for p in state.iterdir())
    assert any(n.startswith(f"{LOGO_FILE}.corrupt-") for n in names), names
    assert any(n.startswith(f"{MEMORY_FILE}.corrupt-") for n in names), names
    assert any(n.startswith(f"{CALIBRATION_FILE}.corrupt-") for n in names), names
    assert isinstance(detector.machine, FusionDecision)
    detector.machine.calibration.observed["length"][:] = [[3.0, 1.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]]  # as if decided
    detector.close()  # what it learned is written back, readable next time: no new file set aside
    again = Detector(None, state_dir=state)
    assert isinstance(again.machine, FusionDecision) and again.machine.calibration.has_seen_both()
    assert again.machine.calibration.to_dict() == detector.machine.calibration.to_dict()
    again.close()
    assert sum(".corrupt-" in p.name for p in state.iterdir()) == 3


def test_cues_measured_ahead_in_prepare_equal_those_measured_in_process(tmp_path):
    """``evaluate`` measures the screen's own cues in its decoding thread (``Detector.prepare``); the values and the
    decisions are the ones the edge gets by measuring everything in ``process``."""
    rng = np.random.default_rng(1)
    frames = []
    for i in range(120):
        img = np.full((270, 480, 3), 0 if 40 <= i < 44 else 120, np.uint8)  # a black stretch: a separator
        img[10:40, 400:460] = 255  # a logo-like corner patch
        img[100:200, 50:300] = rng.integers(0, 255, (100, 250, 3), dtype=np.uint8)
        audio = (rng.standard_normal(3200) * (0.0 if 40 <= i < 44 else 0.1)).astype(np.float32)
        frames.append(Frame(i / 5, img, i, audio))
    ahead, inline = Detector(None, state_dir=tmp_path / "a"), Detector(None, state_dir=tmp_path / "b")
    for f in frames:
        prepared = ahead.prepare(f)
        assert prepared.cues is not None and "logo" in prepared.cues and "repeat" not in prepared.cues
        r1, r2 = ahead.process(prepared), inline.process(f)
        assert r1.state == r2.state and r1.smoothed == r2.smoothed
        assert r1.cues.keys() == r2.cues.keys()
        for k in r1.cues:
            assert r1.cues[k] == r2.cues[k] or (math.isnan(r1.cues[k]) and math.isnan(r2.cues[k])), k
