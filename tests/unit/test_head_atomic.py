import numpy as np
import pytest

from adbreak.atomic import atomic_dir, write_text
from adbreak.errors import AdbreakError
from edge.head import SoftmaxHead


def test_head_softmax_matches_manual_computation(tmp_path):
    rng = np.random.default_rng(0)
    head = SoftmaxHead(("ad", "program"), rng.normal(size=4).astype(np.float32), np.full(4, 2.0, np.float32),
                       rng.normal(size=(4, 2)).astype(np.float32), np.array([0.5, -0.5], np.float32))
    x = rng.normal(size=(3, 4)).astype(np.float32)
    z = ((x - head.mean) / head.scale) @ head.weights + head.bias
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.allclose(head.predict_proba(x), want, atol=1e-6)
    head.save(tmp_path / "h.npz")
    again = SoftmaxHead.load(tmp_path / "h.npz")
    assert again.labels == ("ad", "program") and np.allclose(again.predict_proba(x), want, atol=1e-6)


def test_head_rejects_inconsistent_shapes_and_corrupt_files(tmp_path):
    with pytest.raises(AdbreakError):
        SoftmaxHead(("a",), np.zeros(4), np.ones(4), np.zeros((4, 2)), np.zeros(2))
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(AdbreakError, match="cannot read head"):
        SoftmaxHead.load(tmp_path / "bad.npz")


def test_atomic_dir_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "bundle"
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "half.json").write_text("{")
        raise RuntimeError("crash mid-write")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_to_overwrite_without_force(tmp_path):
    target = tmp_path / "bundle"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(AdbreakError, match="already exists"), atomic_dir(target):
        pass
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]


def test_write_text_is_atomic(tmp_path):
    p = tmp_path / "x.json"
    write_text(p, "one")
    write_text(p, "two")
    assert p.read_text() == "two" and [q.name for q in tmp_path.iterdir()] == ["x.json"]
