"""The live edge agent: source -> bounded queue -> detector -> MQTT (``adbreak edge``).

Threads: the capture thread (``edge.capture.Capture``) reads the source into a drop-oldest queue; the calling thread
runs the inference loop (``Detector.process`` per frame) and turns results into wire payloads (:class:`Announcer`);
paho's network thread runs the MQTT link; an optional actuator thread runs mute commands. ``stop()`` (or SIGTERM /
SIGINT through the CLI) stops the capture, drains the queue, publishes ``stopped`` and returns 0.

Payloads (``adbreak.wire``): every :class:`~edge.decision.Transition` becomes an ``ad_start`` / ``ad_end``
:class:`EventPayload` with a fresh ``event_id``, the next persisted ``seq`` and wall times mapped from stream time
by the capture clock (:class:`~edge.capture.StreamClock`). The *initial* decided state is not a transition: it only
sets the retained state, except when it is ``ad``, which also publishes an ``ad_start`` with its boundary at the
first frame, so that a mute happens when the agent starts in the middle of a break.
"""

from __future__ import annotations

import logging
import queue
import statistics
import threading
import time
from collections.abc import Callable

from adbreak.errors import AdbreakError
from adbreak.wire import Availability, EventPayload, EventType, StatePayload, TelemetryPayload, new_event_id, now
from edge.capture import Capture, CapturedFrame, StreamClock
from edge.decision import Label, Transition
from edge.frames_queue import DropOldestQueue, QueueClosed
from edge.mqtt import MqttLink, Publisher
from edge.pipeline import FrameResult
from edge.settings import EdgeSettings

log = logging.getLogger(__name__)

CONNECT_WAIT_S = 5.0  # how long the agent waits for the broker before it starts detecting anyway


def _prob(x: float) -> float:
    return min(max(float(x), 0.0), 1.0)


def build_event(
    *,
    device: str,
    seq: int,
    event_type: EventType,
    boundary_t: float,
    decided_t: float,
    confidence: float,
    model_version: str,
    to_wall: Callable[[float], float],
    event_id: str | None = None,
) -> EventPayload:
    """One event payload; stream times are mapped to wall times with ``to_wall``."""
    return EventPayload(
        device=device,
        event_id=event_id or new_event_id(),
        seq=seq,
        type=event_type,
        boundary_ts=to_wall(boundary_t),
        decided_ts=to_wall(decided_t),
        boundary_stream_t=boundary_t,
        decided_stream_t=decided_t,
        confidence=_prob(confidence),
        model_version=model_version,
    )


def event_from_transition(
    transition: Transition, *, device: str, seq: int, model_version: str, to_wall: Callable[[float], float]
) -> EventPayload:
    """The :class:`EventPayload` of a decided change: ``ad_start`` into ``ad``, ``ad_end`` out of it."""
    kind = EventType.AD_START if transition.to_label is Label.AD else EventType.AD_END
    return build_event(
        device=device,
        seq=seq,
        event_type=kind,
        boundary_t=transition.boundary_t,
        decided_t=transition.decided_t,
        confidence=transition.confidence,
        model_version=model_version,
        to_wall=to_wall,
    )


class Announcer:
    """Detector results in, wire payloads out: retained state on change, events, telemetry about once a second."""

    def __init__(
        self,
        *,
        device: str,
        model_version: str,
        next_seq: Callable[[], int],
        publisher: Publisher,
        clock: StreamClock,
        telemetry_interval_s: float = 1.0,
        dropped: Callable[[], int] = lambda: 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = device
        self.model_version = model_version
        self._next_seq = next_seq
        self._publisher = publisher
        self._clock = clock
        self._interval = telemetry_interval_s
        self._dropped = dropped
        self._mono = monotonic
        self.label: Label | None = None
        self.event_count = 0
        self.last_event: EventPayload | None = None
        self._last: FrameResult | None = None
        self._frames = 0
        self._latencies: list[float] = []
        self._window_start = monotonic()
        self._next_telemetry = self._window_start + telemetry_interval_s

    # -- per frame
    def on_result(self, result: FrameResult, initial_t: float | None) -> None:
        """Feed one detector result; ``initial_t`` is the decision machine's ``initial_t`` (first frame's time)."""
        self._last = result
        self._frames += 1
        self._latencies.append(result.latency_s)
        if result.state is None:
            return
        if self.label is None:  # the initial decided state: not a Transition
            assert initial_t is not None
            p_label = result.smoothed if result.state is Label.AD else 1.0 - result.smoothed
            if result.state is Label.AD:  # start muted: an ad_start at the first frame
                self._event(EventType.AD_START, initial_t, result.t, p_label)
            self._set_state(result.state, initial_t, p_label)
            return
        tr = result.transition
        if tr is not None:
            self._event(
                EventType.AD_START if tr.to_label is Label.AD else EventType.AD_END,
                tr.boundary_t, tr.decided_t, tr.confidence,
            )
            self._set_state(tr.to_label, tr.boundary_t, tr.confidence)

    def _event(self, kind: EventType, boundary_t: float, decided_t: float, confidence: float) -> None:
        seq = self._next_seq()  # persisted before the event leaves
        event = build_event(
            device=self.device, seq=seq, event_type=kind, boundary_t=boundary_t, decided_t=decided_t,
            confidence=confidence, model_version=self.model_version, to_wall=self._clock.wall,
        )
        self.event_count += 1
        self.last_event = event
        self._publisher.publish_event(event)

    def _set_state(self, label: Label, since_t: float, confidence: float) -> None:
        self.label = label
        self._publisher.publish_state(StatePayload(
            device=self.device, label=label.value, since_ts=self._clock.wall(since_t), since_stream_t=since_t,
            confidence=_prob(confidence), model_version=self.model_version, ts=now(),
        ))

    # -- telemetry
    def seconds_to_telemetry(self) -> float:
        return max(self._next_telemetry - self._mono(), 0.0)

    def maybe_telemetry(self) -> bool:
        """Publish telemetry if it is due; True if it was published."""
        t = self._mono()
        if t < self._next_telemetry:
            return False
        elapsed = max(t - self._window_start, 1e-9)
        fps = self._frames / elapsed
        latency_ms = statistics.median(self._latencies) * 1000.0 if self._latencies else 0.0
        self._window_start = t
        self._next_telemetry = max(self._next_telemetry + self._interval, t + self._interval / 2)
        self._frames = 0
        self._latencies = []
        last = self._last
        if last is None:
            return False  # nothing analysed yet: nothing to report
        self._publisher.publish_telemetry(TelemetryPayload(
            device=self.device, ts=now(), stream_t=last.t, p_ad=_prob(last.p_ad), smoothed=_prob(last.smoothed),
            label=None if last.state is None else last.state.value, fps=fps, latency_ms=latency_ms,
            dropped=self._dropped(),
        ))
        return True


class EdgeAgent:
    """``EdgeAgent(settings).run()`` until the source ends, ``--duration`` is reached or :meth:`stop` is called."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._capture: Capture | None = None
        self.announcer: Announcer | None = None
        self.frames = 0

    def stop(self) -> None:
        """Ask the agent to finish (thread- and signal-safe): capture stops, the queue drains, ``stopped`` is sent."""
        self._stop.set()
        capture = self._capture
        if capture is not None:
            capture.stop()

    def run(self) -> int:
        """Detect and publish until the source ends, ``duration_s`` is reached or :meth:`stop` is called. Returns 0;
        raises :class:`AdbreakError` (one line) on bad input or a failed source."""
        from edge.bundle import ModelBundle
        from edge.pipeline import Detector
        from edge.sequence import SequenceCounter
        from edge.sources import open_source

        s = self.settings
        bundle = ModelBundle.load(s.model)
        detector = Detector(bundle, s.decision_config(bundle.decision), s.geometry())
        fps = s.fps or bundle.preprocessing.fps
        with SequenceCounter(s.state_dir, s.device) as sequence:  # one agent per device and state folder
            source = open_source(s.source, fps)  # a source that cannot be opened fails here, before any MQTT
            return self._serve(bundle, detector, source, fps, sequence)

    def _serve(self, bundle, detector, source, fps: float, sequence) -> int:
        from edge.actuator import MuteActuator, plan_from_settings
        from edge.sources import open_source

        s = self.settings
        plan = plan_from_settings(s)
        actuator = None
        if plan is not None:
            actuator = MuteActuator(plan, payload_on=s.mute_payload_on, payload_off=s.mute_payload_off,
                                    timeout_s=s.actuator_timeout_s)
        link = MqttLink(
            device=s.device, topics=s.topics, host=s.mqtt_host, port=s.mqtt_port, keepalive_s=s.keepalive_s,
            username=s.mqtt_username,
            password=s.mqtt_password.get_secret_value() if s.mqtt_password else None,
            handlers={s.mute_topic_resolved: actuator.handle} if actuator else None,
        )
        frames: DropOldestQueue[CapturedFrame] = DropOldestQueue(s.queue_size)
        capture = Capture(
            source, lambda: open_source(s.source, fps), frames,
            realtime=s.realtime, speed=s.speed, loop=s.loop, duration_s=s.duration_s,
        )
        clock = StreamClock(paced=capture.paced, speed=s.speed)
        announcer = Announcer(
            device=s.device, model_version=bundle.version, next_seq=sequence.next, publisher=link, clock=clock,
            telemetry_interval_s=s.telemetry_interval_s, dropped=lambda: frames.dropped,
        )
        self.announcer = announcer
        log.info("edge agent %s: source %s (%s), model %s, %.3g fps%s", s.device, s.source,
                 "live" if capture.live else (f"paced x{s.speed:g}" if capture.paced else "as fast as it decodes"),
                 bundle.version, fps, ", looping" if capture.loop else "")

        failure: BaseException | None = None
        link.start()
        try:
            if actuator is not None:
                actuator.start()
            self._wait_for_broker(link)
            self._capture = capture
            if self._stop.is_set():
                capture.stop()
            capture.start()
            self._loop(frames, detector, clock, announcer, link)
        except BaseException as exc:
            failure = exc
        finally:
            capture.stop()
            if capture.join(timeout=5.0) is False:
                log.warning("the capture thread did not stop within 5 s")
            failure = failure or capture.error
            if actuator is not None:
                actuator.stop()
            link.stop(Availability.OFFLINE if failure else Availability.STOPPED)
        log.info("edge agent %s finished: %d frames analysed, %d dropped, %d events", s.device, self.frames,
                 frames.dropped, announcer.event_count)
        if failure is not None:
            if isinstance(failure, AdbreakError | KeyboardInterrupt):
                raise failure
            log.error("edge agent failed", exc_info=failure)  # the traceback, for a bug report
            raise AdbreakError(f"edge agent failed: {failure.__class__.__name__}: {failure}") from failure
        return 0

    def _wait_for_broker(self, link: MqttLink) -> None:
        deadline = time.monotonic() + CONNECT_WAIT_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            if link.wait_connected(0.1):
                return
        if not link.connected:
            log.warning("MQTT broker %s:%d not reachable yet; detecting anyway (events are queued)", link.host,
                        link.port)

    def _loop(self, frames: DropOldestQueue[CapturedFrame], detector, clock: StreamClock, announcer: Announcer,
              link: MqttLink) -> None:
        while True:
            try:
                item = frames.get(timeout=max(announcer.seconds_to_telemetry(), 0.01))
            except queue.Empty:
                pass
            except QueueClosed:
                return
            else:
                clock.observe(item.frame.t, item.wall)
                result = detector.process(item.frame)
                self.frames += 1
                announcer.on_result(result, detector.machine.initial_t)
            announcer.maybe_telemetry()
            link.tick()
