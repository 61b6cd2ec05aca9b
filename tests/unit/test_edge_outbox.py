"""The durable event outbox (edge/outbox.py) on a real folder, and through MqttLink against a real Mosquitto."""

from __future__ import annotations

import logging
import time

import pytest

from adbreak.wire import EventPayload, EventType, Topics, new_event_id, parse_event
from edge.mqtt import MqttLink
from edge.outbox import Outbox, entry_name
from tests.edge_mqtt_support import needs_mosquitto
from tests.fault_support import EventWatcher, PersistentMosquitto

DEVICE = "tv1"


def event(seq: int, device: str = DEVICE) -> EventPayload:
    return EventPayload(device=device, event_id=new_event_id(), seq=seq,
                        type=EventType.AD_START if seq % 2 else EventType.AD_END, boundary_ts=1000.0 + seq,
                        decided_ts=1000.5 + seq, boundary_stream_t=float(seq), decided_stream_t=seq + 0.5,
                        confidence=0.9, model_version="m-1")


def files(box: Outbox) -> list[str]:
    return sorted(p.name for p in box.dir.iterdir())


def test_entries_survive_a_restart_in_seq_order_and_leave_on_remove(tmp_path):
    box = Outbox(tmp_path, DEVICE)
    sent = [event(s) for s in (8, 9, 10, 11, 12)]  # 9 -> 10: names must sort as numbers
    for e in sent:
        assert box.add(e) == []
    box.remove(10)
    box.remove(99)  # unknown: nothing happens
    assert box.depth == 4 and files(box) == [entry_name(s) for s in (8, 9, 11, 12)]
    again = Outbox(tmp_path, DEVICE)  # the agent restarted (or was killed and started again)
    loaded = again.load()
    assert [e.seq for e in loaded] == [8, 9, 11, 12]
    assert loaded == [e for e in sent if e.seq != 10]  # byte for byte the same events, event ids included
    assert again.depth == 4 and again.size_bytes == sum(len(e.to_bytes()) for e in loaded)
    for e in loaded:
        again.remove(e.seq)
    assert files(again) == [] and again.depth == 0 and again.size_bytes == 0
    assert Outbox(tmp_path, DEVICE).load() == []


def test_a_corrupt_entry_is_moved_aside_counted_and_the_rest_still_loads(tmp_path, caplog):
    box = Outbox(tmp_path, DEVICE)
    good = [event(1), event(4)]
    for e in good:
        box.add(e)
    (box.dir / entry_name(2)).write_bytes(b'{"v": 1, "device": "tv1", "seq": 2, "event_')  # torn by hand
    (box.dir / entry_name(3)).write_bytes(event(7).to_bytes())  # the name says 3, the content 7
    (box.dir / entry_name(5)).write_bytes(event(5, device="other").to_bytes())  # another device's event
    (box.dir / entry_name(6)).write_bytes(b"\xff\xfe not utf-8")
    (box.dir / "notes.txt").write_text("a human's file is left alone")
    again = Outbox(tmp_path, DEVICE)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        assert again.load() == good
    assert again.corrupt == 4
    assert files(again) == sorted([entry_name(1), entry_name(4), "notes.txt",
                                   *(entry_name(s) + ".corrupt" for s in (2, 3, 5, 6))])
    assert sum("corrupt entry" in r.message for r in caplog.records) == 4
    assert Outbox(tmp_path, DEVICE).load() == good  # moved aside once, not counted again


def test_a_half_written_temporary_file_is_ignored_and_cleared(tmp_path):
    box = Outbox(tmp_path, DEVICE)
    box.add(event(1))
    # what adbreak.atomic leaves when a crash comes between the write and the rename
    torn = box.dir / f".{entry_name(2)}.k3j2l_x.json"
    torn.write_bytes(event(2).to_bytes()[:40])
    again = Outbox(tmp_path, DEVICE)
    assert [e.seq for e in again.load()] == [1]
    assert again.corrupt == 0 and not torn.exists()
    assert files(again) == [entry_name(1)]


def test_writes_leave_no_temporary_file_and_each_entry_is_complete(tmp_path):
    box = Outbox(tmp_path, DEVICE)
    events = [event(s) for s in range(1, 51)]
    for e in events:
        box.add(e)
    assert files(box) == [entry_name(s) for s in range(1, 51)]
    for e in events:
        assert parse_event((box.dir / entry_name(e.seq)).read_bytes(), DEVICE) == e


def test_the_bound_drops_the_oldest_loudly_and_counts_it(tmp_path, caplog):
    box = Outbox(tmp_path, DEVICE, max_entries=3)
    with caplog.at_level(logging.ERROR, logger="edge.outbox"):
        assert [box.add(event(s)) for s in range(1, 6)] == [[], [], [], [1], [2]]
    assert box.dropped == 2 and box.depth == 3 and box.seqs() == [3, 4, 5]
    assert files(box) == [entry_name(s) for s in (3, 4, 5)]
    assert sum("FULL" in r.message for r in caplog.records) == 2
    size = len(event(1).to_bytes())
    by_bytes = Outbox(tmp_path / "b", DEVICE, max_bytes=2 * size + size // 2)  # room for two events
    assert [by_bytes.add(event(s)) for s in range(1, 5)] == [[], [], [1], [2]]
    assert by_bytes.seqs() == [3, 4] and by_bytes.dropped == 2 and by_bytes.size_bytes <= by_bytes.max_bytes
    with pytest.raises(ValueError):
        Outbox(tmp_path / "c", DEVICE, max_entries=0)


@needs_mosquitto
def test_link_keeps_events_on_disk_until_the_broker_acknowledges_them_then_drains_in_order(tmp_path):
    topics = Topics("adbreak")
    broker = PersistentMosquitto(tmp_path).start()
    try:
        watcher = EventWatcher(broker, client_id="outbox-unit-watcher")  # its session outlives the broker's restart
        box = Outbox(tmp_path / "state", DEVICE)
        link = MqttLink(device=DEVICE, topics=topics, host=broker.host, port=broker.port, keepalive_s=5,
                        outbox=box, reconnect_max_s=1)
        link.start()
        assert link.wait_connected(10)
        broker.stop()
        deadline = time.monotonic() + 10
        while link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not link.connected
        for seq in range(1, 31):  # decided while the broker is away
            link.publish_event(event(seq))
        assert box.seqs() == list(range(1, 31)) and link.events_waiting == 30
        assert files(box) == [entry_name(s) for s in range(1, 31)]
        broker.start()
        for seq in range(31, 41):  # decided while the link reconnects and drains
            link.publish_event(event(seq))
            time.sleep(0.02)
        assert link.stop() is True
        assert watcher.wait_for(lambda evs: len(evs) >= 40, 15)
        watcher.close()
        assert [e.seq for e in watcher.events] == list(range(1, 41))  # none lost, none doubled, none overtaken
        assert box.depth == 0 and files(box) == [] and link.events_acked == 40
    finally:
        broker.stop()
