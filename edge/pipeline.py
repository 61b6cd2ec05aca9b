"""The detection pipeline: one frame in, cues, class probabilities and the temporal decision out.

The stages, each in a place of its own (``docs/architecture.md``, "Detection stages"):

1. source (``edge/sources``) -> 2. preprocessing (``edge/geometry``: the model input and the screen's luma) ->
3. backbone + head (``edge/backbone``, ``edge/head``; only with a model bundle) -> 4. cues (``edge/cues``),
5. the learned logo (``edge/logo``), 6. the repeated-ad memory (``edge/memory``), wired by
``edge/broadcast_cues`` -> 7. fusion and the duration-aware decision (``edge/fusion``), or the p(ad) smoothing state
machine (``edge/decision``, ``decider="smoothing"``).

The same ``Detector`` runs live on the edge and inside ``adbreak evaluate`` / ``annotate``, so offline figures are
the live system's figures. Without a model bundle it runs on the cues alone (zero labels).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from adbreak.errors import AdbreakError
from edge.broadcast_cues import BroadcastCues
from edge.bundle import ModelBundle
from edge.cues import CueSet
from edge.cues.base import ANALYSIS_WIDTH, ScreenFrame
from edge.decision import AdStateMachine, DecisionConfig, Label, Transition
from edge.fusion import FusionConfig, FusionDecision
from edge.fusion.decoder import clean_ad_spans
from edge.geometry import DEFAULT_RESIZE, Geometry
from edge.sources.base import Frame

log = logging.getLogger(__name__)

Decider = Literal["fusion", "smoothing"]
DECIDERS: tuple[str, ...] = ("fusion", "smoothing")
DEFAULT_FPS = 5.0
CALIBRATION_FILE = "calibration.json"
"""In a device's state folder: the fusion's learned histograms (``edge.fusion.calibration``), kept across restarts."""
NO_MODEL_VERSION = "cues-only"
"""The model version the agent reports when it runs without a model bundle."""


@dataclass(frozen=True, slots=True)
class FrameResult:
    t: float
    probs: np.ndarray  # per class, in bundle label order (empty without a model)
    p_ad: float  # the head's p(ad); without a model, the fused P(ad) (same as ``smoothed``)
    smoothed: float  # the decision's own P(ad): the smoothed p_ad, or the fusion's P(ad | evidence so far)
    state: Label | None
    transition: Transition | None
    latency_s: float  # wall time from frame arrival to decision (preprocess + backbone + head + cues + decision)
    cues: Mapping[str, float] = field(default_factory=dict)  # every cue value by its scores-file name


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """A frame already mapped to the model input and the screen's luma by ``Detector.prepare`` (e.g. in the
    decoding thread); the full-size image is not kept."""

    t: float
    index: int
    input: np.ndarray | None  # (size, size, 3) uint8, or None without a model
    prepare_s: float  # wall time of the preprocessing, counted in the result's latency
    screen: ScreenFrame | None = None
    cues: Mapping[str, float] | None = None  # the screen's own cues (``BroadcastCues.screen_values``), if measured
    frame_cues: Mapping[str, float] | None = None  # the per-frame cues alone, if measured where it was decoded


@dataclass(frozen=True)
class FrameConverter:
    """The stateless part of ``Detector.prepare``: a frame to its model input (``size`` > 0) and its screen's luma
    (``screen``). Picklable, so that a decoding process can run it (``edge.sources.process.ProcessSource``)."""

    geometry: Geometry
    size: int
    screen: bool
    resize: str = DEFAULT_RESIZE  # the bundle's (``edge.geometry.RESIZES``)

    def __call__(self, frame: Frame) -> PreparedFrame:
        started = time.perf_counter()
        x = self.geometry.to_input(frame.image, self.size, self.resize) if self.size > 0 else None
        screen = None
        if self.screen:
            gray = self.geometry.to_screen_gray(frame.image, ANALYSIS_WIDTH)
            screen = ScreenFrame.from_gray(frame.t, gray, frame.audio)
        return PreparedFrame(frame.t, frame.index, x, time.perf_counter() - started, screen)


class StreamConverter:
    """A :class:`FrameConverter` followed by the per-frame cues (:class:`~edge.cues.CueSet`: black, cut, aspect,
    silence) for a process that decodes one stream and sees its frames in order (``ProcessSource(...,
    convert=...)``). Those cues keep a little state of their own stream (the previous frame's histogram, the black
    level seen so far) and nothing a device keeps, so they can run there, on the decoder's core; the learned logo
    and the ad memory, which belong to the device, stay with the :class:`Detector`. One per stream; picklable."""

    def __init__(self, converter: FrameConverter) -> None:
        self.converter = converter
        self.cue_set = CueSet()

    def __call__(self, frame: Frame) -> PreparedFrame:
        prepared = self.converter(frame)
        if prepared.screen is None:
            return prepared
        started = time.perf_counter()
        values = self.cue_set.update(prepared.screen)
        return replace(prepared, prepare_s=prepared.prepare_s + time.perf_counter() - started, frame_cues=values)


class Detector:
    """Runs the stages on one frame at a time. ``bundle`` may be None (cues only). ``state_dir`` keeps the learned
    logo and the ad memory of this device across restarts."""

    def __init__(
        self,
        bundle: ModelBundle | None,
        decision: DecisionConfig | None = None,
        geometry: Geometry | None = None,
        *,
        fusion: FusionConfig | None = None,
        decider: Decider = "fusion",
        state_dir: str | os.PathLike[str] | None = None,
        cues: bool = True,
    ) -> None:
        if decider not in DECIDERS:
            raise AdbreakError(f"unknown decider {decider!r}; choose one of {', '.join(DECIDERS)}")
        if decider == "smoothing" and bundle is None:
            raise AdbreakError("the smoothing decider needs a model (--model): it smooths the head's p(ad)")
        self.bundle = bundle
        self.decider = decider
        self.decision = decision or (bundle.decision if bundle else DecisionConfig())
        self.fusion = fusion or (bundle.fusion if bundle else FusionConfig())
        if geometry is not None:
            self.geometry = geometry
        else:
            self.geometry = bundle.preprocessing.geometry if bundle else Geometry()
        self.fps = bundle.preprocessing.fps if bundle else DEFAULT_FPS
        self.size = bundle.preprocessing.input_size if bundle else 0
        self.resize = bundle.preprocessing.resize if bundle else DEFAULT_RESIZE
        self.backbone = bundle.backbone() if bundle else None
        self.head = bundle.head if bundle else None
        self.ad_index = bundle.ad_index if bundle else -1
        self.cues = BroadcastCues(state_dir) if cues and decider == "fusion" else None
        self.machine: AdStateMachine | FusionDecision = (
            FusionDecision(self.fusion) if decider == "fusion" else AdStateMachine(self.decision)
        )
        self.converter = FrameConverter(self.geometry, self.size if bundle else 0, self.cues is not None, self.resize)
        """This detector's stateless preprocessing, picklable for a decoding process."""
        self._calibration_path = (
            Path(state_dir) / CALIBRATION_FILE if state_dir is not None and decider == "fusion" else None
        )
        if self._calibration_path is not None and isinstance(self.machine, FusionDecision):
            self.machine.calibration.load(self._calibration_path)

    def stream_converter(self) -> FrameConverter | StreamConverter:
        """What a decoding process of one stream runs on each frame: the converter, and the per-frame cues when this
        detector runs cues (``prepare`` then takes their values as they come)."""
        return StreamConverter(self.converter) if self.cues is not None else self.converter

    @property
    def version(self) -> str:
        return self.bundle.version if self.bundle else NO_MODEL_VERSION

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return self.geometry.to_input(image, self.size, self.resize)

    def prepare(self, frame: Frame | PreparedFrame) -> PreparedFrame:
        """The preprocessing (unless ``frame`` was converted already, e.g. in a decoding process) and the cues that
        depend on the picture and sound alone, so that another thread can run them (``Prefetcher(...,
        transform=prepare)``), frames in order; ``process`` does the rest."""
        prepared = frame if isinstance(frame, PreparedFrame) else self.converter(frame)
        if self.cues is None or prepared.screen is None or prepared.cues is not None:
            return prepared
        started = time.perf_counter()
        cues = self.cues.screen_values(prepared.screen, prepared.frame_cues)
        spent = prepared.prepare_s + (time.perf_counter() - started)
        return PreparedFrame(prepared.t, prepared.index, prepared.input, spent, prepared.screen, cues)

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Per-class probabilities of one model input (size x size x 3 uint8)."""
        assert self.head is not None and self.backbone is not None
        return self.head.predict_proba(self.backbone.features(x[None]))[0]

    def scores(self, image: np.ndarray) -> np.ndarray:
        """Per-class probabilities of one full RGB frame (no temporal decision)."""
        return self.classify(self.preprocess(image))

    def process(self, frame: Frame | PreparedFrame) -> FrameResult:
        started = time.perf_counter()
        if isinstance(frame, PreparedFrame):
            started -= frame.prepare_s  # prepared elsewhere (another thread or process): its time counts too
        prepared = self.prepare(frame)  # whatever was not done yet: the conversion, the screen's own cues
        x, screen, screen_values = prepared.input, prepared.screen, prepared.cues
        probs = self.classify(x) if x is not None else np.zeros(0)
        p_ad = float(probs[self.ad_index]) if self.bundle else math.nan
        values: dict[str, float] = (
            {} if self.cues is None or screen is None else self.cues.update(screen, screen_values)
        )
        values["p_ad"] = p_ad
        if isinstance(self.machine, FusionDecision):
            step = self.machine.update(frame.t, values)
        else:
            step = self.machine.update(frame.t, p_ad)
        self._remember(step.transition)
        return FrameResult(
            t=frame.t,
            probs=probs,
            p_ad=p_ad if self.bundle else step.smoothed,
            smoothed=step.smoothed,
            state=step.state,
            transition=step.transition,
            latency_s=time.perf_counter() - started,
            cues=values,
        )

    def _remember(self, tr: Transition | None) -> None:
        """After every decided change the fusion's histograms are kept (``calibration.json``); ad breaks the decision
        closes go into the repeated-ad memory: their blocks where the learned logo is known to be absent
        (``edge.fusion.decoder.clean_ad_spans``)."""
        if tr is None:
            return
        self._save_calibration()
        if self.cues is None or tr.to_label is not Label.PROGRAM:
            return
        if isinstance(self.machine, FusionDecision):
            for start, end in clean_ad_spans(self.machine.closed_break):
                self.cues.remember_ad(start, end)

    def reconfigure(self, config: DecisionConfig) -> None:
        """New per-device decision settings from the next frame on (the smoothing decider's; the fusion keeps its
        own, and the settings' thresholds still mark low-confidence stretches for keyframes)."""
        self.decision = config
        if isinstance(self.machine, AdStateMachine):
            self.machine.reconfigure(config)

    def _save_calibration(self) -> None:
        if self._calibration_path is None or not isinstance(self.machine, FusionDecision):
            return
        try:
            self.machine.calibration.save(self._calibration_path)
        except OSError as exc:  # a full or read-only disk must not stop the detection
            log.warning("cannot keep the fusion calibration in %s: %s", self._calibration_path, exc)

    def close(self) -> None:
        """Persist what this device learned (logo, ad memory, the fusion's histograms)."""
        self._save_calibration()
        if self.cues is not None:
            self.cues.close()

    def run(self, frames: Iterable[Frame | PreparedFrame]) -> Iterator[FrameResult]:
        for frame in frames:
            yield self.process(frame)
