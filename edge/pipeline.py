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

    def scores(self, image: np.ndarray) -> np.ndarray:
        """Per-class probabilities of one full RGB frame (no temporal decision)."""
        x = self.preprocess(image)
        return self.head.predict_proba(self.backbone.features(x[None]))[0]

    def process(self, frame: Frame) -> FrameResult:
        started = time.perf_counter()
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

    def run(self, frames: Iterable[Frame]) -> Iterator[FrameResult]:
        for frame in frames:
            yield self.process(frame)
