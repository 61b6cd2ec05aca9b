from pathlib import Path

import numpy as np
import pytest

from adbreak.errors import AdbreakError
from adbreak.training.cache import BottleneckCache, content_key
from adbreak.training.dataset import FrameItem, frame_name, scan_dataset, split_by_time


def _touch(root: Path, label: str, name: str) -> None:
    (root / label).mkdir(parents=True, exist_ok=True)
    (root / label / name).write_bytes(b"x")


def test_scan_parses_recording_and_time_from_names(tmp_path):
    _touch(tmp_path, "ad", frame_name("rec one", 12.5) + ".jpg")
    _touch(tmp_path, "program", "holiday.png")
    items = {i.label: i for i in scan_dataset(tmp_path)}
    assert (items["ad"].recording, items["ad"].t) == ("rec-one", 12.5)
    assert items["program"].recording == "program-folder"


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"ad": ["a.jpg"]}, "at least two class folders"),
        ({"ad": ["a.jpg"], "program": []}, "class 'program' .* has no images"),
        ({"cats": ["a.jpg"], "dogs": ["b.jpg"]}, "no 'ad' class"),
    ],
)
def test_scan_rejects_datasets_that_cannot_train(tmp_path, layout, message):
    for label, names in layout.items():
        (tmp_path / label).mkdir()
        for n in names:
            _touch(tmp_path, label, n)
    with pytest.raises(AdbreakError, match=message):
        scan_dataset(tmp_path)


def _items(label, rec, n, dt=0.5, t0=0.0):
    return [FrameItem(Path(f"{label}{i}"), label, rec, t0 + i * dt) for i in range(n)]


def test_split_is_contiguous_in_time_with_guard_gaps():
    items = _items("ad", "r", 100) + _items("program", "r", 100, t0=100)
    split = split_by_time(items, val_fraction=0.2, holdout_fraction=0.2, guard_s=2.0)
    for label in ("ad", "program"):
        times = {name: sorted(items[i].t for i in getattr(split, name) if items[i].label == label)
                 for name in ("train", "val", "holdout")}
        assert max(times["train"]) < min(times["val"]) and max(times["val"]) < min(times["holdout"])
        assert min(times["val"]) - max(times["train"]) >= 2.0  # guard gap: no near-duplicate across the cut
        assert min(times["holdout"]) - max(times["val"]) >= 2.0
    assert not set(split.train) & set(split.val) | set(split.train) & set(split.holdout)


def test_split_can_hold_out_whole_recordings():
    items = _items("ad", "a", 20) + _items("program", "a", 20) + _items("ad", "b", 10) + _items("program", "b", 10)
    split = split_by_time(items, holdout_recordings=frozenset({"b"}))
    assert {items[i].recording for i in split.holdout} == {"b"}
    assert {items[i].recording for i in split.train + split.val} == {"a"}


def test_split_rejects_a_class_too_small_to_split():
    with pytest.raises(AdbreakError, match="too few"):
        split_by_time(_items("ad", "r", 2) + _items("program", "r", 50))


def test_cache_round_trip_and_misses(tmp_path):
    cache = BottleneckCache(tmp_path, "ab" * 32, dim=4)
    k1, k2 = content_key(b"img1", "p"), content_key(b"img2", "p")
    assert content_key(b"img1", "p") != content_key(b"img1", "other preprocessing")
    cache.put_many([(k1, np.arange(4, dtype=np.float32))])
    got = cache.get_many([k1, k2])
    assert list(got) == [k1] and got[k1].tolist() == [0, 1, 2, 3]
    assert (cache.hits, cache.misses) == (1, 1)
    cache.close()
    # a different backbone never sees these features
    other = BottleneckCache(tmp_path, "cd" * 32, dim=4)
    assert other.get_many([k1]) == {}
    other.close()


def test_corrupt_cache_file_is_set_aside_not_fatal(tmp_path):
    sha = "ef" * 32
    path = tmp_path / f"bottlenecks-{sha[:16]}.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    cache = BottleneckCache(tmp_path, sha, dim=2)
    assert len(cache) == 0
    assert path.with_suffix(".corrupt").exists()
    cache.close()


def test_holdout_frames_repeating_training_footage_are_left_out():
    """A looping recording or an ad aired twice puts the same footage on both sides of a time split; those frames
    would measure memory, so the reported validation and holdout leave them out."""
    import numpy as np

    from adbreak.training.trainer import drop_repeats

    rng = np.random.default_rng(0)
    shows = rng.standard_normal((3, 64)).astype(np.float32)
    feats = np.vstack([
        shows[0] + 0.01 * rng.standard_normal((5, 64)),  # 0-4: training, show A
        shows[1] + 0.01 * rng.standard_normal((5, 64)),  # 5-9: training, show B
        shows[0] + 0.01 * rng.standard_normal((3, 64)),  # 10-12: holdout, show A again (a repeat)
        shows[2] + 0.01 * rng.standard_normal((4, 64)),  # 13-16: holdout, new footage
    ])
    kept, dropped = drop_repeats(feats, np.arange(10), np.arange(10, 17))
    assert dropped == 3 and kept.tolist() == [13, 14, 15, 16]
    assert drop_repeats(feats, np.arange(10), np.arange(0))[1] == 0
