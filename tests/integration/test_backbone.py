"""The committed int8 backbone still computes what the PyTorch original computes."""

from pathlib import Path

import numpy as np
import pytest

from adbreak.errors import AdbreakError
from edge.backbone import DEFAULT_BACKBONE, Backbone, sha256_file
from edge.geometry import RESIZE_AREA, RESIZE_HALVE_LINEAR, resize_input

DATA = Path(__file__).parent.parent / "data"
ESPRESSO = 967


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "backbone_reference.npz") as d:
        return {k: d[k] for k in d.files}


@pytest.fixture(scope="module")
def imagenet_fc():
    with np.load(DEFAULT_BACKBONE.parent / "imagenet_fc.npz") as d:
        return d["weight"].astype(np.float32), d["bias"].astype(np.float32)


def test_committed_model_matches_its_recorded_sha256():
    import json

    meta = json.loads((DEFAULT_BACKBONE.parent / "backbone.json").read_text())
    assert meta["file"] == DEFAULT_BACKBONE.name
    assert sha256_file(DEFAULT_BACKBONE) == meta["sha256"]


def test_preprocessing_of_the_bundled_photos_is_the_reference_input(reference):
    from skimage import data

    names = list(reference["names"])
    for name in ("coffee", "chelsea", "astronaut", "rocket"):  # plain RGB photos; the others need conversion
        want = reference["inputs"][names.index(name)]
        got = resize_input(getattr(data, name)(), method=RESIZE_AREA)
        assert np.array_equal(got, want), name


def test_the_new_bundles_resize_keeps_the_backbone_faithful(reference):
    """Bundles trained now resize with ``halve-linear``: its inputs stay within a grey level of the reference's on
    average, and the int8 features of them still match the PyTorch features of the reference inputs."""
    from skimage import data

    names = list(reference["names"])
    photos = ("coffee", "chelsea", "astronaut", "rocket")
    got = np.stack([resize_input(getattr(data, name)(), method=RESIZE_HALVE_LINEAR) for name in photos])
    want = reference["inputs"][[names.index(n) for n in photos]]
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 12, (diff.mean(), np.percentile(diff, 99))
    feats = Backbone.shared().features(got)
    ref = reference["features"][[names.index(n) for n in photos]]
    cos = (feats * ref).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(ref, axis=1))
    for name, c in zip(photos, cos, strict=True):
        assert c >= 0.97, f"{name}: cosine {c:.4f}"


def test_int8_features_match_pytorch_cosine_at_least_097(reference):
    feats = Backbone.shared().features(reference["inputs"])
    ref = reference["features"]
    cos = (feats * ref).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(ref, axis=1))
    for name, c in zip(reference["names"], cos, strict=True):
        assert c >= 0.97, f"{name}: cosine {c:.4f}"


def test_float_model_and_int8_model_call_coffee_espresso(reference, imagenet_fc):
    w, b = imagenet_fc
    names = list(reference["names"])
    coffee = names.index("coffee")
    # the float (PyTorch) model: its recorded top-5 and its features through the ImageNet classifier layer
    assert reference["top5"][coffee][0] == ESPRESSO
    assert int(np.argmax(reference["features"][coffee] @ w.T + b)) == ESPRESSO
    # the committed int8 model
    feats = Backbone.shared().features(reference["inputs"][coffee : coffee + 1])[0]
    assert int(np.argmax(feats @ w.T + b)) == ESPRESSO


def test_backbone_with_a_wrong_hash_is_refused(tmp_path):
    with pytest.raises(AdbreakError, match="does not match"):
        Backbone(DEFAULT_BACKBONE, sha256="0" * 64)
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(DEFAULT_BACKBONE.read_bytes()[:1000])
    with pytest.raises(AdbreakError, match="cannot load backbone"):
        Backbone(bad)
