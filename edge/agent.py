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

Keyframes (``edge.keyframes``): after each frame the :class:`~edge.keyframes.KeyframeRecorder` keeps a thumbnail now
and then and sends the chosen ones. Settings (``edge.remote_settings``): a ``settings/set`` arrives on paho's thread
and waits in a small inbox; the inference loop applies it between frames (the decision machine is reconfigured in
place, its state kept), persists it and publishes the retained ``settings/state``.
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
from edge.decision import DecisionConfig, Label, Transition
from edge.frames_queue import DropOldestQueue, QueueClosed
from edge.fusion import FusionConfig
from edge.keyframes import KeyframeRecorder, Pick, build_keyframe
from edge.mqtt import MqttLink, Publisher
from edge.outbox import Outbox
from edge.pipeline import FrameResult
from edge.remote_settings import RemoteSettings
from edge.settings import EdgeSettings

log = logging.getLogger(__name__)

CONNECT_WAIT_S = 5.0  # how long the agent waits for the broker before it starts detecting anyway
SETTINGS_INBOX = 16  # settings/set messages waiting for the inference loop; more are refused


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
        self.recorder: KeyframeRecorder | None = None
        self.remote: RemoteSettings | None = None
        self.detector = None
        self.frames = 0
        self._inbox: queue.Queue[bytes] = queue.Queue(maxsize=SETTINGS_INBOX)
        self._link: MqttLink | None = None

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
        bundle = ModelBundle.load(s.model) if s.model is not None else None
        base = s.decision_config(bundle.decision if bundle else DecisionConfig())
        with SequenceCounter(s.state_dir, s.device) as sequence:  # one agent per device and state folder
            self.remote = RemoteSettings(s.state_dir, s.device, base)
            # the learned logo and the ad memory live with the device's other state, inside its lock
            fusion = s.fusion_config(bundle.fusion if bundle else FusionConfig())
            detector = Detector(bundle, self.remote.load(), s.geometry(), fusion=fusion, decider=s.decider,
                                state_dir=s.state_dir / f"{s.device}.cues")
            self.detector = detector
            fps = s.fps or detector.fps
            try:
                source = open_source(s.source, fps)  # a source that cannot be opened fails here, before any MQTT
                return self._serve(detector, source, fps, sequence)
            finally:
                detector.close()

    def _serve(self, detector, source, fps: float, sequence) -> int:
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
            password=s.mqtt_password.get_secret_value() if s.mqtt_password else None, tls=s.mqtt_tls_options,
            outbox=Outbox(s.state_dir, s.device),  # inside the device's lock (SequenceCounter): one agent writes it
            handlers={
                s.topics.settings_set(s.device): self._settings_arrived,
                **({s.mute_topic_resolved: actuator.handle} if actuator else {}),
            },
        )
        self._link = link
        if self.remote is not None:
            link.publish_settings_state(self.remote.state())  # sent on connect
        frames: DropOldestQueue[CapturedFrame] = DropOldestQueue(s.queue_size)
        capture = Capture(
            source, lambda: open_source(s.source, fps), frames,
            realtime=s.realtime, speed=s.speed, loop=s.loop, duration_s=s.duration_s,
        )
        clock = StreamClock(paced=capture.paced, speed=s.speed)
        announcer = Announcer(
            device=s.device, model_version=detector.version, next_seq=sequence.next, publisher=link, clock=clock,
            telemetry_interval_s=s.telemetry_interval_s, dropped=lambda: frames.dropped,
        )
        self.announcer = announcer
        if s.keyframes:
            cfg = detector.decision

            def send(pick: Pick) -> None:
                if clock.ready:
                    link.publish_keyframe(build_keyframe(pick, device=s.device, model_version=detector.version,
                                                         to_wall=clock.wall))

            self.recorder = KeyframeRecorder(send, thresholds=(cfg.enter_threshold, cfg.exit_threshold))
        log.info("edge agent %s: source %s (%s), model %s, %.3g fps%s", s.device, s.source,
                 "live" if capture.live else (f"paced x{s.speed:g}" if capture.paced else "as fast as it decodes"),
                 detector.version, fps, ", looping" if capture.loop else "")

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
            if self.recorder is not None and failure is None:
                self.recorder.finish()  # end and middle of the open segment
            if actuator is not None:
                actuator.stop()
            link.stop(Availability.OFFLINE if failure else Availability.STOPPED)
        log.info("edge agent %s finished: %d frames analysed, %d dropped, %d events (%d acknowledged by the broker, "
                 "%d left in the outbox, %d dropped from it, %d corrupt entries)", s.device, self.frames,
                 frames.dropped, announcer.event_count, link.events_acked, link.outbox.depth if link.outbox else 0,
                 link.events_dropped, link.outbox.corrupt if link.outbox else 0)
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
                if self.recorder is not None:
                    tr = result.transition
                    self.recorder.observe(
                        result.t, item.frame.image, p_ad=result.p_ad, smoothed=result.smoothed,
                        state=None if result.state is None else result.state.value,
                        transition_boundary_t=None if tr is None else tr.boundary_t,
                        from_label=None if tr is None else tr.from_label.value,
                        initial_t=detector.machine.initial_t,
                    )
            announcer.maybe_telemetry()
            self._apply_settings(detector, link)
            link.tick()

    # -- settings from the server
    def _settings_arrived(self, raw: bytes) -> None:
        """paho's thread: hand a ``settings/set`` payload to the inference loop."""
        try:
            self._inbox.put_nowait(bytes(raw))
        except queue.Full:
            log.warning("settings/set arriving faster than they are applied: one refused")
            if self.remote is not None:
                self.remote.rejected += 1

    def _apply_settings(self, detector, link: MqttLink) -> None:
        """Apply waiting ``settings/set`` payloads (the inference loop's thread, between frames)."""
        remote = self.remote
        if remote is None or self._inbox.empty():
            return
        while True:
            try:
                raw = self._inbox.get_nowait()
            except queue.Empty:
                break
            config = remote.handle(raw)
            if config is not None:
                self.reconfigure(detector, config)
        link.publish_settings_state(remote.state())

    def reconfigure(self, detector, config: DecisionConfig) -> None:
        """Run ``config`` from the next frame on, keeping the decided state (``Detector.reconfigure``)."""
        detector.reconfigure(config)
        if self.recorder is not None:
            self.recorder.set_thresholds(config.enter_threshold, config.exit_threshold)
        log.info("decision settings now %s", {k: v for k, v in config.to_dict().items() if k != "max_lookback_s"})
