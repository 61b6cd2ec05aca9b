"""The per-device event sequence number: durable, atomic, counting up across restarts, one agent per device."""

from __future__ import annotations

import json
import os

import pytest

from adbreak.errors import AdbreakError
from edge.sequence import SequenceCounter


def test_seq_counts_up_from_one_and_survives_a_restart(tmp_path):
    first = SequenceCounter(tmp_path / "state", "tv1")
    assert first.last == 0
    assert [first.next() for _ in range(3)] == [1, 2, 3]
    assert json.loads((tmp_path / "state" / "tv1.seq").read_text()) == {"device": "tv1", "seq": 3}
    restarted = SequenceCounter(tmp_path / "state", "tv1")  # a new process reads the persisted counter
    assert restarted.last == 3 and restarted.next() == 4
    assert SequenceCounter(tmp_path / "state", "tv2").next() == 1  # per device
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["tv1.seq", "tv2.seq"]  # no temporary files


def test_a_failed_write_keeps_the_old_value_and_hands_out_nothing(tmp_path, monkeypatch):
    counter = SequenceCounter(tmp_path, "tv1")
    counter.next()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        counter.next()
    monkeypatch.undo()
    assert counter.last == 1
    assert SequenceCounter(tmp_path, "tv1").last == 1
    assert [p.name for p in tmp_path.iterdir()] == ["tv1.seq"]
    assert counter.next() == 2


@pytest.mark.parametrize("content", ["not json", '{"seq": -1, "device": "tv1"}', '{"seq": 3, "device": "tv9"}',
                                     '{"seq": true, "device": "tv1"}', '{"device": "tv1"}'])
def test_a_corrupt_counter_is_an_error_not_a_reset(tmp_path, content):
    (tmp_path / "tv1.seq").write_text(content)
    with pytest.raises(AdbreakError, match="corrupt"):
        SequenceCounter(tmp_path, "tv1")


def test_two_agents_of_one_device_cannot_share_the_counter(tmp_path):
    with SequenceCounter(tmp_path, "tv1"):
        other = SequenceCounter(tmp_path, "tv1")
        with pytest.raises(AdbreakError, match="another edge agent"):
            other.acquire()
        with SequenceCounter(tmp_path, "tv2"):  # another device is fine
            pass
    with SequenceCounter(tmp_path, "tv1"):  # released on exit
        pass


def test_bad_device_names_are_refused(tmp_path):
    with pytest.raises(ValueError):
        SequenceCounter(tmp_path, "../etc")
