"""``adbreak annotate``: the recording with the decision and the raw and smoothed ad probability drawn on every frame.

Every source frame is written; the detector runs on the frames the sampling rate picks (exactly what the live
pipeline analyses: the bundle's rate, or 5 per second without a model), and the frames in between show the latest
values. A strip chart at the bottom shows the last 30 s: the head's raw p(ad) (thin; with a model), the decision's
P(ad) (thick: the smoothed p(ad), or the fusion's), and the hysteresis thresholds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np

from adbreak.atomic import atomic_path
from adbreak.errors import AdbreakError
from edge.bundle import ModelBundle
from edge.decision import DecisionConfig, Label
from edge.geometry import Geometry
from edge.pipeline import Detector
from edge.sources import TimestampSampler, VideoSource

CHART_S = 30.0
AD_COLOR = (220, 40, 40)
PROGRAM_COLOR = (40, 170, 70)
UNDECIDED_COLOR = (128, 128, 128)


def _draw(
    image: np.ndarray,
    t: float,
    state: Label | None,
    p_ad: float,
    smoothed: float,
    history: deque[tuple[float, float, float]],
    cfg: DecisionConfig,
) -> np.ndarray:
    img = image.copy()
    h, w = img.shape[:2]
    color = {Label.AD: AD_COLOR, Label.PROGRAM: PROGRAM_COLOR}.get(state, UNDECIDED_COLOR)  # type: ignore[arg-type]
    bar_h = max(28, h // 16)
    cv2.rectangle(img, (0, 0), (w, bar_h), color, -1)
    label = (state.value if state else "undecided").upper()
    text = f"{label}   p(ad) raw {p_ad:.2f}  smoothed {smoothed:.2f}   t={t:7.1f}s"
    cv2.putText(
        img, text, (10, int(bar_h * 0.72)), cv2.FONT_HERSHEY_SIMPLEX, bar_h / 40, (255, 255, 255), 2, cv2.LINE_AA
    )
    # strip chart
    ch = max(60, h // 6)
    y0 = h - ch
    overlay = img[y0:h].astype(np.float32) * 0.35
    img[y0:h] = overlay.astype(np.uint8)

    def y_of(p: float) -> int:
        return int(y0 + (1 - p) * (ch - 6) + 3)

    for thr in (cfg.enter_threshold, cfg.exit_threshold):
        cv2.line(img, (0, y_of(thr)), (w, y_of(thr)), (200, 200, 200), 1, cv2.LINE_AA)
    if len(history) >= 2:
        pts_raw = np.array([[int(w - (t - ht) / CHART_S * w), y_of(hp)] for ht, hp, _ in history], np.int32)
        pts_s = np.array([[int(w - (t - ht) / CHART_S * w), y_of(hs)] for ht, _, hs in history], np.int32)
        cv2.polylines(img, [pts_raw], False, (255, 210, 90), 1, cv2.LINE_AA)
        cv2.polylines(img, [pts_s], False, (255, 255, 255), 2, cv2.LINE_AA)
    return img


def annotate(
    video: str | Path,
    bundle_path: str | Path | None,
    out: str | Path,
    *,
    decision: DecisionConfig | None = None,
    geometry: Geometry | None = None,
    decider: str = "fusion",
    progress: bool = True,
) -> int:
    from tqdm import tqdm

    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".mkv", ".mov"):
        raise AdbreakError(f"output must be .mp4, .mkv or .mov, got {out.name}")
    bundle = ModelBundle.load(bundle_path) if bundle_path is not None else None
    detector = Detector(bundle, decision, geometry, decider=decider)  # type: ignore[arg-type]
    source = VideoSource(str(video), fps=None)  # every frame goes to the output
    rate = source._stream.average_rate or 25  # noqa: SLF001 - the output keeps the input's frame rate
    sampler = TimestampSampler(detector.fps)
    audio: list[np.ndarray] = []  # the sound of the frames not analysed, handed to the next analysed one
    history: deque[tuple[float, float, float]] = deque()
    state: Label | None = None
    p_ad = smoothed = 0.0
    written = 0
    total = source.duration_s
    with atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4" if out.suffix == ".mp4" else None) as container:
        stream = None
        bar = tqdm(total=round(total) if total else None, desc="annotate", unit="s", disable=not progress, leave=False)
        for frame in source:
            if stream is None:
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = frame.image.shape[1] // 2 * 2, frame.image.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"preset": "veryfast", "crf": "23"}
            if frame.audio is not None:
                audio.append(frame.audio)
            if sampler.take(frame.t):
                if frame.audio is not None:
                    frame = replace(frame, audio=np.concatenate(audio) if audio else frame.audio)
                    audio.clear()
                r = detector.process(frame)
                state, p_ad, smoothed = r.state, r.p_ad, r.smoothed
                history.append((r.t, p_ad, smoothed))
                while history and history[0][0] < r.t - CHART_S:
                    history.popleft()
            drawn = _draw(frame.image, frame.t, state, p_ad, smoothed, history, detector.decision)
            vf = av.VideoFrame.from_ndarray(drawn[: stream.height, : stream.width], format="rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
            written += 1
            bar.update(int(frame.t) - bar.n)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
        bar.close()
    source.close()
    return written
