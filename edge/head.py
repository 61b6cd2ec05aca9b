"""The classifier head over backbone features: standardise, linear, softmax — numpy only (runs on the Pi)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adbreak.errors import AdbreakError


@dataclass(frozen=True)
class SoftmaxHead:
    labels: tuple[str, ...]
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    weights: np.ndarray  # (D, K)
    bias: np.ndarray  # (K,)

    def __post_init__(self) -> None:
        d, k = self.weights.shape
        if self.mean.shape != (d,) or self.scale.shape != (d,) or self.bias.shape != (k,) or len(self.labels) != k:
            raise AdbreakError("head weights have inconsistent shapes")

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def logits(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N, K) class probabilities."""
        z = self.logits(np.atleast_2d(features).astype(np.float32, copy=False))
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(
                fh,
                labels=np.array(self.labels),
                mean=self.mean.astype(np.float32),
                scale=self.scale.astype(np.float32),
                weights=self.weights.astype(np.float32),
                bias=self.bias.astype(np.float32),
            )

    @classmethod
    def load(cls, path: Path) -> SoftmaxHead:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(
                    labels=tuple(str(x) for x in data["labels"]),
                    mean=data["mean"],
                    scale=data["scale"],
                    weights=data["weights"],
                    bias=data["bias"],
                )
        except (OSError, ValueError, KeyError) as exc:
            raise AdbreakError(f"cannot read head weights {path}: {exc}") from exc
