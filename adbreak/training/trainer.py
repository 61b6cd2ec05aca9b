"""``adbreak train``: backbone features (cached) -> multinomial logistic-regression head -> model bundle + report."""

from __future__ import annotations

import json
import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adbreak.atomic import atomic_dir
from adbreak.errors import AdbreakError
from adbreak.training.cache import BottleneckCache, content_key, default_cache_dir
from adbreak.training.dataset import FrameItem, Split, scan_dataset, split_by_time
from edge.backbone import DEFAULT_BACKBONE, Backbone
from edge.bundle import Preprocessing, write_bundle_files
from edge.decision import DecisionConfig
from edge.geometry import DEFAULT_RESIZE, Geometry
from edge.head import SoftmaxHead

log = logging.getLogger(__name__)

BATCH = 128


@dataclass(frozen=True)
class TrainConfig:
    name: str = "adbreak"
    val_fraction: float = 0.15
    holdout_fraction: float = 0.15
    holdout_recordings: frozenset[str] = frozenset()
    c: float = 0.1  # inverse L2 strength on standardised features
    iterations_per_round: int = 10
    max_rounds: int = 30
    geometry: Geometry = field(default_factory=Geometry)
    fps: float = 5.0
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    cache_dir: Path | None = None
    backbone_path: Path = DEFAULT_BACKBONE
    force: bool = False
    progress: bool = True


@dataclass
class TrainResult:
    bundle: Path
    report: dict[str, Any]


def _decode(item: FrameItem, data: bytes, geometry: Geometry, size: int, resize: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise AdbreakError(f"corrupt image in the dataset: {item.path}")
    return geometry.to_input(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size, resize)


def compute_features(
    items: list[FrameItem],
    backbone: Backbone,
    geometry: Geometry,
    cache: BottleneckCache,
    *,
    resize: str = DEFAULT_RESIZE,
    progress: bool = True,
) -> np.ndarray:
    """Features of every item, from the cache where possible; misses run the backbone and are cached per batch."""
    from tqdm import tqdm

    size = backbone.input_size
    # what makes a cached feature: the image's bytes and this preprocessing
    signature = json.dumps({"size": size, "geometry": geometry.to_dict(), "resize": resize}, sort_keys=True)
    blobs = []
    keys = []
    for it in tqdm(items, desc="hashing", unit="img", disable=not progress, leave=False):
        try:
            data = it.path.read_bytes()
        except OSError as exc:
            raise AdbreakError(f"cannot read {it.path}: {exc}") from exc
        blobs.append(data)
        keys.append(content_key(data, signature))
    found = cache.get_many(keys)
    out = np.empty((len(items), backbone.dim), dtype=np.float32)
    missing = [i for i, k in enumerate(keys) if k not in found]
    for i, k in enumerate(keys):
        if k in found:
            out[i] = found[k]
    if missing:
        bar = tqdm(total=len(missing), desc="backbone", unit="img", disable=not progress)
        with ThreadPoolExecutor(max_workers=2) as pool:  # decode + resize in threads, the backbone here
            for start in range(0, len(missing), BATCH):
                batch = missing[start : start + BATCH]
                images = np.stack(list(pool.map(lambda i: _decode(items[i], blobs[i], geometry, size, resize), batch)))
                feats = backbone.features(images)
                out[batch] = feats
                cache.put_many((keys[i], feats[j]) for j, i in enumerate(batch))
                bar.update(len(batch))
        bar.close()
    return out


def _to_head(clf: Any, scaler: Any) -> SoftmaxHead:
    classes = tuple(str(c) for c in clf.classes_)
    coef = clf.coef_.astype(np.float32)
    intercept = clf.intercept_.astype(np.float32)
    if len(classes) == 2 and coef.shape[0] == 1:  # sklearn's binary form: p(class 1) = sigmoid(z)
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    return SoftmaxHead(
        labels=classes,
        mean=scaler.mean_.astype(np.float32),
        scale=np.where(scaler.scale_ > 0, scaler.scale_, 1.0).astype(np.float32),
        weights=coef.T.copy(),
        bias=intercept,
    )


REPEAT_COSINE = 0.97
"""Two frames whose backbone features have at least this cosine similarity show the same footage."""


def drop_repeats(feats: np.ndarray, train: np.ndarray, other: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, int]:
    """``other`` without the frames that repeat footage of ``train`` (a near-duplicate by feature cosine), and how
    many were left out."""
    if len(other) == 0 or len(train) == 0:
        return other, 0
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    ref = unit(feats[train].astype(np.float32))
    keep = np.ones(len(other), bool)
    for a in range(0, len(other), chunk):
        block = unit(feats[other[a : a + chunk]].astype(np.float32))
        keep[a : a + chunk] = (block @ ref.T).max(axis=1) < REPEAT_COSINE
    return other[keep], int((~keep).sum())


def _split_metrics(head: SoftmaxHead, x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, precision_recall_fscore_support

    if len(y) == 0:
        return {"frames": 0}
    labels = list(head.labels)
    proba = head.predict_proba(x)
    pred = np.array(labels)[proba.argmax(axis=1)]
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {
        "frames": len(y),
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "log_loss": round(float(log_loss(y, proba, labels=labels)), 4),
        "per_class": {
            lab: {"precision": round(float(p[k]), 4), "recall": round(float(r[k]), 4), "f1": round(float(f[k]), 4),
                  "support": int(s[k])}
            for k, lab in enumerate(labels)
        },
        "confusion": {"labels": labels, "matrix": confusion_matrix(y, pred, labels=labels).tolist()},
    }


def _curve_point(head: SoftmaxHead, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Log loss and accuracy in plain numpy (cheap enough to compute after every round)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    proba = head.predict_proba(x)
    truth = np.searchsorted(np.array(head.labels), y)
    picked = np.clip(proba[np.arange(len(y)), truth], 1e-15, 1.0)
    return float(-np.log(picked).mean()), float((proba.argmax(axis=1) == truth).mean())


def fit_head(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, cfg: TrainConfig
) -> tuple[SoftmaxHead, list[dict[str, float]]]:
    """Multinomial logistic regression (L-BFGS) in rounds, recording the training curves after each round."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    xs = scaler.transform(x_train)
    clf = LogisticRegression(
        C=cfg.c, class_weight="balanced", max_iter=cfg.iterations_per_round, warm_start=True, tol=1e-5
    )
    curves: list[dict[str, float]] = []
    total = 0
    for _ in range(cfg.max_rounds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(xs, y_train)
        done = int(np.max(clf.n_iter_))
        total += done
        head = _to_head(clf, scaler)
        tr_loss, tr_acc = _curve_point(head, x_train, y_train)
        va_loss, va_acc = _curve_point(head, x_val, y_val)
        curves.append({
            "iteration": total,
            "train_loss": round(tr_loss, 5),
            "train_accuracy": round(tr_acc, 5),
            "val_loss": round(va_loss, 5),
            "val_accuracy": round(va_acc, 5),
        })
        if done < cfg.iterations_per_round:  # L-BFGS converged inside this round
            break
    return _to_head(clf, scaler), curves


def _plots(root: Path, curves: list[dict[str, float]], confusion: dict[str, Any], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [c["iteration"] for c in curves]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(it, [c["train_loss"] for c in curves], label="train")
    a.plot(it, [c["val_loss"] for c in curves], label="validation")
    a.set_xlabel("L-BFGS iteration")
    a.set_ylabel("log loss")
    a.set_yscale("log")
    a.legend()
    b.plot(it, [c["train_accuracy"] for c in curves], label="train")
    b.plot(it, [c["val_accuracy"] for c in curves], label="validation")
    b.set_xlabel("L-BFGS iteration")
    b.set_ylabel("accuracy")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(root / "training_curves.png", dpi=80)
    plt.close(fig)

    labels, matrix = confusion["labels"], np.array(confusion["matrix"])
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(labels), 1.2 + 1.1 * len(labels)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_title("holdout confusion")
    fig.tight_layout()
    fig.savefig(root / "confusion.png", dpi=80)
    plt.close(fig)


def train(dataset: str | Path, out: str | Path, cfg: TrainConfig = TrainConfig()) -> TrainResult:
    started = time.perf_counter()
    items = scan_dataset(dataset)
    split: Split = split_by_time(
        items,
        val_fraction=cfg.val_fraction,
        holdout_fraction=cfg.holdout_fraction,
        holdout_recordings=cfg.holdout_recordings,
    )
    for name in ("train", "val"):
        present = {items[i].label for i in getattr(split, name)}
        missing = {it.label for it in items} - present
        if missing:
            raise AdbreakError(f"the {name} split has no frames of class {', '.join(sorted(missing))}")
    backbone = Backbone.shared(cfg.backbone_path)
    cache = BottleneckCache(cfg.cache_dir or default_cache_dir(), backbone.sha256, backbone.dim)
    t_feat = time.perf_counter()
    try:
        feats = compute_features(items, backbone, cfg.geometry, cache, resize=DEFAULT_RESIZE, progress=cfg.progress)
    finally:
        cache.close()
    t_fit = time.perf_counter()
    labels = np.array([it.label for it in items])
    tr, va, ho = (np.array(getattr(split, n), dtype=int) for n in ("train", "val", "holdout"))
    # footage-disjoint: validation and holdout frames that repeat footage the head trains on (a looping recording,
    # an ad aired twice) would measure memory, not generalisation; they are left out of both
    # (the curves still use the whole validation block; the reported figures only the new footage)
    va_new, va_repeats = drop_repeats(feats, tr, va)
    ho_new, ho_repeats = drop_repeats(feats, tr, ho)
    head, curves = fit_head(feats[tr], labels[tr], feats[va], labels[va], cfg)
    metrics = {
        "train": _split_metrics(head, feats[tr], labels[tr]),
        "validation": _split_metrics(head, feats[va_new], labels[va_new]),
        "holdout": _split_metrics(head, feats[ho_new], labels[ho_new]),
    }
    finished = time.perf_counter()
    recordings = sorted({it.recording for it in items})
    report = {
        **metrics,
        "split": {"method": "contiguous time blocks per class (train, validation, holdout), 2 s guard gaps; "
                  f"validation and holdout frames repeating training footage (backbone cosine >= {REPEAT_COSINE}) "
                  "left out",
                  "counts": split.summary(items), "holdout_recordings": sorted(cfg.holdout_recordings),
                  "repeats_left_out": {"validation": va_repeats, "holdout": ho_repeats}},
        "head": {"kind": "multinomial logistic regression (L-BFGS), class-balanced", "C": cfg.c,
                 "iterations": curves[-1]["iteration"] if curves else 0},
        "curves": curves,
        "timing_s": {
            "scan": round(t_feat - started, 3),
            "features": round(t_fit - t_feat, 3),
            "fit": round(finished - t_fit, 3),
            "total": round(finished - started, 3),
        },
        "cache": {"path": str(cache.path), "hits": cache.hits, "misses": cache.misses},
    }
    summary = {
        "dataset": str(Path(dataset).resolve()),
        "frames": len(items),
        "classes": {lab: int((labels == lab).sum()) for lab in sorted(set(labels))},
        "recordings": recordings,
        "geometry": cfg.geometry.to_dict(),
    }
    with atomic_dir(out, overwrite=cfg.force) as root:
        meta = write_bundle_files(
            root,
            head=head,
            backbone=backbone,
            preprocessing=Preprocessing(input_size=backbone.input_size, fps=cfg.fps, geometry=cfg.geometry,
                                        resize=DEFAULT_RESIZE),
            decision=cfg.decision,
            name=cfg.name,
        )
        report["version"] = meta["version"]
        (root / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        (root / "data_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        confusion = metrics["holdout"].get("confusion") or metrics["validation"].get("confusion")
        _plots(root, curves, confusion or _split_metrics(head, feats[va], labels[va])["confusion"], meta["version"])
    return TrainResult(bundle=Path(out), report=report)
