"""The auto-mute rule: the pure decision, then AutoMute on a real store with a recording publisher."""

from __future__ import annotations

from pathlib import Path

import pytest

from adbreak.wire import Availability, EventPayload, EventType, new_event_id
from server import db
from server.rules import (
    Action,
    AdRunning,
    AutoMute,
    AvailabilityChanged,
    Decision,
    MuteConfig,
    Reason,
    SegmentOpened,
    decide,
)
from server.store import SegmentStore

MAX = 360.0
T0 = 1_800_000_000.0


# ---------------------------------------------------------------------------------------------------- decide()
@pytest.mark.parametrize(
    ("muted", "trigger", "expected"),
    [
        (False, SegmentOpened("ad"), Decision(Action.MUTE, Reason.AD_START)),
        (True, SegmentOpened("ad"), None),  # already muted: no second command
        (False, SegmentOpened("ad", age_s=MAX + 1), None),  # an ad already past the fail-safe: not muted
        (True, SegmentOpened("program"), Decision(Action.UNMUTE, Reason.AD_END)),
        (False, SegmentOpened("program"), None),
        (False, SegmentOpened("ad", retained=True), None),
        (True, SegmentOpened("program", retained=True), None),
        (True, AvailabilityChanged(Availability.OFFLINE), Decision(Action.UNMUTE, Reason.OFFLINE)),
        (True, AvailabilityChanged(Availability.STOPPED), Decision(Action.UNMUTE, Reason.OFFLINE)),
        (True, AvailabilityChanged(Availability.ONLINE), None),
        (False, AvailabilityChanged(Availability.OFFLINE), None),
        (True, AvailabilityChanged(Availability.OFFLINE, retained=True), None),  # never on a server restart
        (True, AdRunning(open_s=MAX + 0.5), Decision(Action.UNMUTE, Reason.MAX_AD_LENGTH)),
        (True, AdRunning(open_s=MAX - 0.5), None),
        (False, AdRunning(open_s=MAX * 10), None),
        # a late event (a backlog after a restart or an outage) never mutes, but still unmutes
        (False, SegmentOpened("ad", late=True), None),
        (True, SegmentOpened("program", late=True), Decision(Action.UNMUTE, Reason.AD_END)),
    ],
)
def test_decide(muted, trigger, expected):
    assert decide(muted, trigger, max_ad_s=MAX) == expected


@pytest.mark.parametrize(
    ("muted", "silent", "limit", "expected"),
    [
        (True, 3.5, 3.0, Decision(Action.UNMUTE, Reason.OFFLINE)),  # not heard from: counted as gone
        (True, 2.5, 3.0, None),
        (False, 30.0, 3.0, None),  # nothing to undo
        (True, 30.0, 0.0, None),  # the silence check is off
    ],
)
def test_decide_silence(muted, silent, limit, expected):
    assert decide(muted, AdRunning(open_s=10.0, silent_s=silent), max_ad_s=MAX, silent_s=limit) == expected


# ---------------------------------------------------------------------------------------------------- AutoMute
class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Recorder:
    """Stands in for the MQTT bridge's publish: records what would go to the broker."""

    def __init__(self, ok: bool = True) -> None:
        self.sent: list[tuple[str, str | bytes, int, bool]] = []
        self.ok = ok

    def __call__(self, topic: str, payload: str | bytes, qos: int, retain: bool) -> bool:
        self.sent.append((topic, payload, qos, retain))
        return self.ok


@pytest.fixture
def store(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'adbreak.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    yield SegmentStore(db.make_sessionmaker(engine))
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def make_rule(store, clock, publish, **config) -> tuple[AutoMute, list]:
    fired: list = []
    rule = AutoMute(MuteConfig(max_ad_s=MAX, **config), store, publish, on_firing=lambda f, d: fired.append((f, d)),
                    clock=clock)
    return rule, fired


def ingest(store, seq: int, kind: str, boundary: float):
    ev = EventPayload(device="tv1", event_id=new_event_id(), seq=seq, type=EventType(kind), boundary_ts=boundary,
                      decided_ts=boundary + 1, boundary_stream_t=0.0, decided_stream_t=1.0, confidence=0.9,
                      model_version="m")
    return store.ingest_event(ev, boundary + 1)


def test_mute_on_ad_start_and_unmute_on_ad_end(store, clock):
    publish = Recorder()
    rule, fired = make_rule(store, clock, publish)
    store.availability("tv1", Availability.ONLINE, T0)
    r = ingest(store, 1, "ad_start", T0 - 2)
    firing = rule.on_event(r)
    assert publish.sent == [("adbreak/tv1/mute/set", "ON", 1, False)]
    assert firing["action"] == "mute" and firing["reason"] == "ad_start" and firing["event_id"] == r.event["event_id"]
    assert store.is_muted("tv1")
    assert fired[0][1]["muted"] is True
    assert rule.on_event(ingest(store, 2, "ad_start", T0)) is None  # same label: nothing opened, nothing sent
    clock.t += 30
    rule.on_event(ingest(store, 3, "ad_end", clock.t - 2))
    assert publish.sent[-1] == ("adbreak/tv1/mute/set", "OFF", 1, False)
    assert not store.is_muted("tv1")
    assert [f["reason"] for f in store.firings()] == ["ad_start", "ad_end"]


def test_rejected_and_retained_events_never_fire(store, clock):
    publish = Recorder()
    rule, _ = make_rule(store, clock, publish)
    store.availability("tv1", Availability.ONLINE, T0)
    r = ingest(store, 1, "ad_start", T0)
    assert rule.on_event(r, retained=True) is None
    ev = EventPayload(device="tv1", event_id=r.event["event_id"], seq=1, type=EventType.AD_START, boundary_ts=T0,
                      decided_ts=T0, boundary_stream_t=0.0, decided_stream_t=0.0, confidence=0.9, model_version="m")
    assert rule.on_event(store.ingest_event(ev, T0)) is None  # duplicate
    assert publish.sent == [] and store.firings() == []


def test_custom_topic_and_payloads(store, clock):
    publish = Recorder()
    rule, _ = make_rule(store, clock, publish, topic_template="home/{device}/tv/mute", payload_on="1",
                        payload_off="0", prefix="x")
    store.availability("tv1", Availability.ONLINE, T0)
    rule.on_event(ingest(store, 1, "ad_start", T0))
    assert publish.sent == [("home/tv1/tv/mute", "1", 1, False)]


def test_offline_while_muted_unmutes(store, clock):
    publish = Recorder()
    rule, _ = make_rule(store, clock, publish)
    store.availability("tv1", Availability.ONLINE, T0)
    rule.on_event(ingest(store, 1, "ad_start", T0))
    assert rule.on_availability("tv1", Availability.OFFLINE, retained=True) is None  # a restart's retained will
    firing = rule.on_availability("tv1", Availability.OFFLINE)
    assert firing["reason"] == "offline" and publish.sent[-1][1] == "OFF"
    assert rule.on_availability("tv1", Availability.OFFLINE) is None  # no longer muted


def test_watchdog_unmutes_an_ad_longer_than_max(store, clock):
    publish = Recorder()
    rule, _ = make_rule(store, clock, publish)
    store.availability("tv1", Availability.ONLINE, T0)
    rule.on_event(ingest(store, 1, "ad_start", T0))
    assert rule.check(now=T0 + MAX - 1) == []
    fired = rule.check(now=T0 + MAX + 1)
    assert [f["reason"] for f in fired] == ["max_ad_length"]
    assert publish.sent[-1] == ("adbreak/tv1/mute/set", "OFF", 1, False)
    assert rule.check(now=T0 + MAX + 2) == []  # once


def test_watchdog_thread_fires_on_its_own(store):
    import time

    publish = Recorder()
    rule = AutoMute(MuteConfig(max_ad_s=0.3), store, publish)
    store.availability("tv1", Availability.ONLINE, time.time())
    rule.on_event(ingest(store, 1, "ad_start", time.time()))
    assert publish.sent[-1][1] == "ON"
    rule.start_watchdog(interval_s=0.05)
    try:
        deadline = time.monotonic() + 5
        while len(publish.sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        rule.stop_watchdog()
    assert publish.sent[-1][1] == "OFF"
    assert store.firings()[-1]["reason"] == "max_ad_length"


def test_disabled_rule_never_fires(store, clock):
    publish = Recorder()
    rule, _ = make_rule(store, clock, publish, enabled=False)
    store.availability("tv1", Availability.ONLINE, T0)
    assert rule.on_event(ingest(store, 1, "ad_start", T0)) is None
    assert rule.on_availability("tv1", Availability.OFFLINE) is None
    assert rule.check(now=T0 + 10 * MAX) == []
    assert publish.sent == []


def test_a_command_not_handed_over_is_still_recorded(store, clock):
    publish = Recorder(ok=False)
    rule, _ = make_rule(store, clock, publish)
    store.availability("tv1", Availability.ONLINE, T0)
    assert rule.on_event(ingest(store, 1, "ad_start", T0))["action"] == "mute"
    assert store.is_muted("tv1")


def test_late_ad_start_stores_but_does_not_mute_and_a_late_ad_end_still_unmutes(store, clock):
    publish = Recorder()
    rule, _ = make_rule(store, clock, publish)
    store.availability("tv1", Availability.ONLINE, T0)
    assert rule.on_event(ingest(store, 1, "ad_start", T0 - 40), late=True) is None
    assert publish.sent == [] and not store.is_muted("tv1")
    rule.on_event(ingest(store, 2, "ad_end", T0 - 20))  # live: nothing muted, nothing to undo
    rule.on_event(ingest(store, 3, "ad_start", T0 - 2))  # live: mutes
    assert publish.sent == [("adbreak/tv1/mute/set", "ON", 1, False)]
    firing = rule.on_event(ingest(store, 4, "ad_end", T0 + 10), late=True)  # late, but the safe direction
    assert firing is not None and firing["action"] == "unmute"
    assert publish.sent[-1] == ("adbreak/tv1/mute/set", "OFF", 1, False) and not store.is_muted("tv1")


def test_silence_unmutes_a_muted_device_only_when_the_server_hears_the_broker(store, clock):
    publish = Recorder()
    connected = [True]
    rule = AutoMute(MuteConfig(max_ad_s=MAX, silent_s=3.0), store, publish, clock=clock,
                    connected=lambda: connected[0])
    store.availability("tv1", Availability.ONLINE, T0)
    rule.on_event(ingest(store, 1, "ad_start", T0 - 2))  # heard at T0 - 1 (the event's arrival)
    assert store.is_muted("tv1")
    assert rule.check(T0 + 1.5) == []
    assert store.touch("tv1", T0 + 1.5)  # telemetry: a sign of life
    assert rule.check(T0 + 4.0) == []  # 2.5 s of silence
    connected[0] = False
    assert rule.check(T0 + 10.0) == []  # the server itself is cut off: silence proves nothing
    connected[0] = True
    assert rule.check(T0 + 10.0) == []  # back: silence counts from the reconnection
    assert rule.check(T0 + 12.5) == []
    fired = rule.check(T0 + 13.5)
    assert [(f["action"], f["reason"]) for f in fired] == [("unmute", "offline")]
    assert publish.sent[-1] == ("adbreak/tv1/mute/set", "OFF", 1, False) and not store.is_muted("tv1")


def test_silence_counts_from_the_servers_connection_at_the_earliest(store, clock):
    """A restarted server has heard nothing yet: it waits silent_s from its connection to the broker before calling a
    device gone, however long its start took."""
    publish = Recorder()
    first = AutoMute(MuteConfig(max_ad_s=MAX), store, publish, clock=clock)
    store.availability("tv1", Availability.ONLINE, T0)
    first.on_event(ingest(store, 1, "ad_start", T0 - 2))
    assert store.is_muted("tv1")
    clock.t = T0 + 60  # a new process, on the same database: nothing heard since its start
    fresh = SegmentStore(store._sessions)
    connected = [False]  # still connecting to the broker (a slow start)
    restarted = AutoMute(MuteConfig(max_ad_s=MAX, silent_s=3.0), fresh, publish, clock=clock,
                         connected=lambda: connected[0])
    assert restarted.check(T0 + 70) == []
    connected[0] = True
    assert restarted.check(T0 + 71) == []  # connected from here on
    assert restarted.check(T0 + 73.5) == []
    assert [f["reason"] for f in restarted.check(T0 + 74.5)] == ["offline"]
