"""The detection pipeline: one frame in, class probabilities and the temporal decision out.

The same ``Detector`` runs live on the edge and inside ``adbreak evaluate`` / ``annotate``, so offline figures are
the live system's figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edge.bundle import ModelBundle
from edge.decision import AdStateMachine, DecisionConfig, Label, Transition
from edge.geometry import Geometry
from edge.sources.base import Frame


@dataclass(frozen=True, slots=True)
class FrameResult:
    t: float
    probs: np.ndarray  # per class, in bundle label order
    p_ad: float
    smoothed: float
    state: Label | None
    transition: Transition | None
    latency_s: float  # wall time from frame arrival to decision (preprocess + backbone + head + decision)


@dataclass(frozen=True, slots=True)
class PreparedFrame:
    """A frame already mapped to the model input by ``Detector.prepare`` (e.g. in the decoding thread); the full-size
    image is not kept."""

    t: float
    index: int
    input: np.ndarray  # (size, size, 3) uint8
    prepare_s: float  # wall time of the preprocessing, counted in the result's latency


class Detector:
    def __init__(
        self,
        bundle: ModelBundle,
        decision: DecisionConfig | None = None,
        geometry: Geometry | None = None,
    ) -> None:
        self.bundle = bundle
        self.decision = decision or bundle.decision
        self.geometry = geometry if geometry is not None else bundle.preprocessing.geometry
        self.size = bundle.preprocessing.input_size
        self.backbone = bundle.backbone()
        self.head = bundle.head
        self.ad_index = bundle.ad_index
        self.machine = AdStateMachine(self.decision)

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return self.geometry.to_input(image, self.size)

    def prepare(self, frame: Frame) -> PreparedFrame:
        """The preprocessing alone, so that another thread can run it (``Prefetcher(..., transform=prepare)``)."""
        started = time.perf_counter()
        x = self.preprocess(frame.image)
        return PreparedFrame(frame.t, frame.index, x, time.perf_counter() - started)

    def classify(self, x: np.ndarray) -> np.ndarray:
        """Per-class probabilities of one model input (size x size x 3 uint8)."""
        return self.head.predict_proba(self.backbone.features(x[None]))[0]

    def scores(self, image: np.ndarray) -> np.ndarray:
        """Per-class probabilities of one full RGB frame (no temporal decision)."""
        return self.classify(self.preprocess(image))

    def process(self, frame: Frame | PreparedFrame) -> FrameResult:
        started = time.perf_counter()
        if isinstance(frame, PreparedFrame):
            probs = self.classify(frame.input)
            started -= frame.prepare_s
        else:
            probs = self.scores(frame.image)
        p_ad = float(probs[self.ad_index])
        step = self.machine.update(frame.t, p_ad)
        return FrameResult(
            t=frame.t,
            probs=probs,
            p_ad=p_ad,
            smoothed=step.smoothed,
            state=step.state,
            transition=step.transition,
            latency_s=time.perf_counter() - started,
        )

    def run(self, frames: Iterable[Frame | PreparedFrame]) -> Iterator[FrameResult]:
        for frame in frames:
            yield self.process(frame)
