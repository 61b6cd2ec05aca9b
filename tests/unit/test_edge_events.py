"""From decisions to wire payloads: events from transitions, the initial state, retained state and telemetry."""

from __future__ import annotations

import numpy as np
import pytest

from adbreak.wire import EventType, parse_event, parse_state, parse_telemetry
from edge.agent import Announcer, event_from_transition
from edge.capture import StreamClock
from edge.decision import AdStateMachine, DecisionConfig, Label, Transition
from edge.pipeline import FrameResult


class RecordingPublisher:
    def __init__(self):
        self.sent: list[tuple[str, object]] = []

    def publish_state(self, payload):
        self.sent.append(("state", payload))

    def publish_event(self, payload):
        self.sent.append(("event", payload))

    def publish_telemetry(self, payload):
        self.sent.append(("telemetry", payload))

    def of(self, kind):
        return [p for k, p in self.sent if k == kind]


def paced_clock(t0_wall=1_700_000_000.0, speed=4.0) -> StreamClock:
    clock = StreamClock(paced=True, speed=speed)
    clock.observe(0.0, t0_wall)
    return clock


def test_a_transition_becomes_an_event_with_wall_and_stream_times():
    clock = paced_clock()
    tr = Transition(Label.PROGRAM, Label.AD, decided_t=25.8, boundary_t=25.1, confidence=0.97)
    ev = event_from_transition(tr, device="tv1", seq=7, model_version="m-1", to_wall=clock.wall)
    assert ev.type is EventType.AD_START and ev.label == "ad" and ev.seq == 7
    assert ev.boundary_stream_t == 25.1 and ev.decided_stream_t == 25.8
    assert ev.boundary_ts == pytest.approx(1_700_000_000.0 + 25.1 / 4)
    assert ev.decided_ts - ev.boundary_ts == pytest.approx(0.7 / 4)
    assert len(ev.event_id) == 32 and ev.confidence == 0.97 and ev.model_version == "m-1"
    assert parse_event(ev.to_bytes(), "tv1") == ev  # what the server will read back
    back = Transition(Label.AD, Label.PROGRAM, decided_t=40.0, boundary_t=36.7, confidence=1.0000001)
    end = event_from_transition(back, device="tv1", seq=8, model_version="m-1", to_wall=clock.wall)
    assert end.type is EventType.AD_END and end.confidence == 1.0 and end.event_id != ev.event_id


def result(t, p_ad, smoothed, state, transition=None, latency=0.01) -> FrameResult:
    return FrameResult(t=t, probs=np.array([1 - p_ad, p_ad]), p_ad=p_ad, smoothed=smoothed, state=state,
                       transition=transition, latency_s=latency)


def make_announcer(pub, *, clock=None, mono=None, interval=1.0):
    seq = iter(range(41, 1000))
    kw = {"monotonic": mono} if mono is not None else {}
    return Announcer(device="tv1", model_version="m-1", next_seq=lambda: next(seq), publisher=pub,
                     clock=clock or paced_clock(), telemetry_interval_s=interval, dropped=lambda: 5, **kw)


def test_initial_program_publishes_only_the_state():
    pub = RecordingPublisher()
    ann = make_announcer(pub)
    ann.on_result(result(0.0, 0.1, 0.1, None), None)
    assert pub.sent == []  # no decision yet
    ann.on_result(result(1.0, 0.1, 0.08, Label.PROGRAM), 0.0)
    assert pub.of("event") == []
    (state,) = pub.of("state")
    assert state.label == "program" and state.since_stream_t == 0.0 and state.confidence == pytest.approx(0.92)
    assert parse_state(state.to_bytes(), "tv1") == state
    ann.on_result(result(1.2, 0.1, 0.08, Label.PROGRAM), 0.0)
    assert len(pub.of("state")) == 1  # state only on change


def test_initial_ad_publishes_an_ad_start_at_the_first_frame_so_a_mute_happens():
    pub = RecordingPublisher()
    clock = paced_clock(t0_wall=1000.0, speed=1.0)
    ann = make_announcer(pub, clock=clock)
    ann.on_result(result(3.0, 0.95, 0.93, Label.AD), 2.0)
    (ev,) = pub.of("event")
    assert ev.type is EventType.AD_START and ev.seq == 41
    assert ev.boundary_stream_t == 2.0 and ev.decided_stream_t == 3.0
    assert ev.boundary_ts == pytest.approx(1002.0) and ev.confidence == pytest.approx(0.93)
    (state,) = pub.of("state")
    assert state.label == "ad" and state.since_stream_t == 2.0 and state.since_ts == pytest.approx(1002.0)
    assert [k for k, _ in pub.sent] == ["event", "state"]


def test_events_follow_the_state_machine_with_increasing_seq():
    """Drive the real decision machine; every Transition gives one event and one state, nothing else."""
    cfg = DecisionConfig(min_ad_s=5.0, min_program_s=5.0)
    machine = AdStateMachine(cfg)
    pub = RecordingPublisher()
    ann = make_announcer(pub)
    truth = [(0.0, 20.0, 0.05), (20.0, 35.0, 0.95), (35.0, 60.0, 0.05)]
    transitions = []
    for k in range(int(60 / 0.2)):
        t = k * 0.2
        p = next(p for a, b, p in truth if a <= t < b)
        step = machine.update(t, p)
        if step.transition:
            transitions.append(step.transition)
        ann.on_result(result(t, p, step.smoothed, step.state, step.transition), machine.initial_t)
    events = pub.of("event")
    assert [e.type for e in events] == [EventType.AD_START, EventType.AD_END]
    assert [e.seq for e in events] == [41, 42]
    assert [e.boundary_stream_t for e in events] == [tr.boundary_t for tr in transitions]
    assert events[0].boundary_stream_t == pytest.approx(20.0, abs=0.15)
    assert events[1].boundary_stream_t == pytest.approx(35.0, abs=0.15)
    assert [s.label for s in pub.of("state")] == ["program", "ad", "program"]
    assert ann.event_count == 2 and ann.last_event == events[-1]


def test_telemetry_about_once_an_interval_with_rate_latency_and_drops():
    now = [100.0]
    pub = RecordingPublisher()
    ann = make_announcer(pub, mono=lambda: now[0], interval=1.0)
    assert not ann.maybe_telemetry()
    for k in range(5):
        now[0] += 0.19
        ann.on_result(result(k * 0.2, 0.3, 0.2, Label.PROGRAM, latency=(k + 1) / 100), 0.0)
    assert ann.seconds_to_telemetry() == pytest.approx(0.05)
    assert not ann.maybe_telemetry()
    now[0] = 101.0
    assert ann.maybe_telemetry()
    (tel,) = pub.of("telemetry")
    assert tel.fps == pytest.approx(5.0) and tel.latency_ms == pytest.approx(30.0)
    assert tel.stream_t == pytest.approx(0.8) and tel.p_ad == 0.3 and tel.smoothed == 0.2 and tel.label == "program"
    assert tel.dropped == 5
    assert parse_telemetry(tel.to_bytes(), "tv1") == tel
    now[0] = 102.0  # an interval without frames: the rate drops to 0, the last reading is repeated
    assert ann.maybe_telemetry()
    assert pub.of("telemetry")[-1].fps == 0.0


def test_no_telemetry_before_the_first_frame():
    now = [0.0]
    pub = RecordingPublisher()
    ann = make_announcer(pub, mono=lambda: now[0])
    now[0] = 5.0
    assert not ann.maybe_telemetry() and pub.sent == []
