"""The model bundle: one directory (or a .tar.gz / .zip of it) holding everything a device needs to detect.

Layout (see docs/model-bundle.md)::

    bundle.json          metadata: version, creation time, labels, backbone file + sha256, head file + sha256,
                         preprocessing, default decision settings, pointers to the report files
    <backbone>.tflite    the int8 backbone (a copy, so a bundle is self-contained); sha256 checked on load
    head.npz             the classifier head
    report.json          training report: validation / holdout metrics, confusion matrix, per-class precision/recall
    training_curves.png  loss and accuracy per iteration
    confusion.png        holdout confusion matrix
    data_summary.json    what the model was trained on
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adbreak.errors import AdbreakError
from edge.backbone import Backbone, sha256_file
from edge.decision import DecisionConfig
from edge.fusion import FusionConfig
from edge.geometry import DEFAULT_RESIZE, Geometry, resize_name
from edge.head import SoftmaxHead

FORMAT = "adbreak-model-bundle"
FORMAT_VERSION = 1
AD_LABEL = "ad"


@dataclass(frozen=True)
class Preprocessing:
    input_size: int = 224
    fps: float = 5.0
    geometry: Geometry = field(default_factory=Geometry)
    resize: str = DEFAULT_RESIZE
    """How a frame becomes the model input (``edge.geometry.RESIZES``): the one the head was trained with."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_size": self.input_size,
            "resize": self.resize,
            "color": "RGB",
            "backbone_input": "int8 byte = pixel - 128 (float equivalent (pixel - 127) / 128)",
            "fps": self.fps,
            "geometry": self.geometry.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            input_size=int(data.get("input_size", 224)),
            fps=float(data.get("fps", 5.0)),
            geometry=Geometry.from_dict(data.get("geometry")),
            resize=resize_name(data.get("resize")),
        )


@dataclass
class ModelBundle:
    path: Path
    meta: dict[str, Any]
    head: SoftmaxHead
    backbone_path: Path
    preprocessing: Preprocessing
    decision: DecisionConfig
    fusion: FusionConfig = field(default_factory=FusionConfig)

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def labels(self) -> tuple[str, ...]:
        return self.head.labels

    @property
    def ad_index(self) -> int:
        return self.head.labels.index(AD_LABEL)

    def backbone(self) -> Backbone:
        return Backbone.shared(self.backbone_path, self.meta["backbone"]["sha256"])

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        src = Path(path)
        if not src.exists():
            raise AdbreakError(f"model bundle not found: {src}")
        root = _unpack(src) if src.is_file() else src
        meta_path = root / "bundle.json"
        if not meta_path.is_file():
            raise AdbreakError(f"{src} is not a model bundle (no bundle.json)")
        try:
            meta = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AdbreakError(f"{meta_path} is corrupt: {exc}") from exc
        if not isinstance(meta, dict):
            raise AdbreakError(f"{meta_path} is corrupt: a JSON {type(meta).__name__}, not an object")
        if meta.get("format") != FORMAT:
            raise AdbreakError(f"{src} is not an adbreak model bundle")
        if meta.get("format_version") != FORMAT_VERSION:
            raise AdbreakError(
                f"{src}: bundle format {meta.get('format_version')} is not supported (want {FORMAT_VERSION})"
            )
        try:
            bb = meta["backbone"]
            backbone_path = root / bb["file"]
            head_path = root / meta["head"]["file"]
            want_bb, want_head = bb["sha256"], meta["head"]["sha256"]
        except (KeyError, TypeError) as exc:
            raise AdbreakError(f"{meta_path} lacks {exc}") from exc
        for file, want in ((backbone_path, want_bb), (head_path, want_head)):
            if not file.is_file():
                raise AdbreakError(f"model bundle {src} is incomplete: {file.name} missing")
            got = sha256_file(file)
            if got != want:
                raise AdbreakError(f"model bundle {src}: {file.name} sha256 {got[:12]}… does not match {want[:12]}…")
        head = SoftmaxHead.load(head_path)
        if AD_LABEL not in head.labels:
            raise AdbreakError(f"model bundle {src} has no '{AD_LABEL}' class (labels: {', '.join(head.labels)})")
        try:
            decision = DecisionConfig.from_dict(meta.get("decision", {}))
        except (TypeError, ValueError) as exc:
            raise AdbreakError(f"model bundle {src}: bad decision settings: {exc}") from exc
        try:
            fusion = FusionConfig.from_dict(meta.get("fusion"))
        except (TypeError, ValueError) as exc:
            raise AdbreakError(f"model bundle {src}: bad fusion settings: {exc}") from exc
        try:
            preprocessing = Preprocessing.from_dict(meta.get("preprocessing", {}))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise AdbreakError(f"model bundle {src}: bad preprocessing settings: {exc}") from exc
        return cls(
            path=src,
            meta=meta,
            head=head,
            backbone_path=backbone_path,
            preprocessing=preprocessing,
            decision=decision,
            fusion=fusion,
        )


def _unpack(archive: Path) -> Path:
    """Extract a bundle archive into a temporary directory (kept for the process's life) and return its root."""
    dest = Path(tempfile.mkdtemp(prefix="adbreak-bundle-"))
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(dest)
        else:
            raise AdbreakError(f"{archive} is neither a bundle directory nor a .tar.gz/.zip archive of one")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise AdbreakError(f"cannot unpack model bundle {archive}: {exc}") from exc
    entries = [p for p in dest.iterdir()]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def write_bundle_files(
    root: Path,
    *,
    head: SoftmaxHead,
    backbone: Backbone,
    preprocessing: Preprocessing,
    decision: DecisionConfig,
    name: str,
    fusion: FusionConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write bundle.json, head.npz and the backbone copy into ``root`` (a directory being built atomically)."""
    shutil.copyfile(backbone.path, root / backbone.path.name)
    head.save(root / "head.npz")
    created = datetime.now(UTC)
    head_sha = sha256_file(root / "head.npz")
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": f"{name}-{created:%Y%m%dT%H%M%SZ}-{head_sha[:8]}",
        "created": created.isoformat(timespec="seconds"),
        "labels": list(head.labels),
        "ad_label": AD_LABEL,
        "backbone": {
            "name": "EfficientNet-Lite0 (ImageNet), int8 TFLite feature extractor",
            "file": backbone.path.name,
            "sha256": backbone.sha256,
            "dim": backbone.dim,
        },
        "head": {"file": "head.npz", "sha256": head_sha, "kind": "standardise + multinomial logistic regression"},
        "preprocessing": preprocessing.to_dict(),
        "decision": decision.to_dict(),
        "fusion": (fusion or FusionConfig()).to_dict(),
        "report": "report.json",
        "data_summary": "data_summary.json",
        "plots": ["training_curves.png", "confusion.png"],
    }
    meta.update(extra or {})
    (root / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
