"""The edge agent's MQTT link (paho-mqtt 2.x), done as paho documents it and as the wire contract asks.

* VERSION2 callbacks; every reason code is checked (a refused connection is logged and the callback returns).
* Last will: ``offline``, retained, QoS 1, on ``Topics.available(device)``: the broker publishes it when the agent
  vanishes (no packet for 1.5 x keepalive).
* On every (re)connect: retained ``online``, the current retained state and settings state again (a restarted
  broker without persistence has lost them), and the subscriptions (the mute command, when an actuator listens;
  ``settings/set``).
* ``connect_async`` + ``loop_start``: the agent starts detecting whether or not the broker is up;
  ``reconnect_delay_set(1, 10)``.
* Events: QoS 1, not retained, written to the durable outbox (``edge.outbox``) before anything else and removed
  from it on the broker's PUBACK; the leftovers of an earlier run go first. Events are handed to paho **one at a
  time**, the next only after the PUBACK of the one before (stop-and-wait): paho sends a message published while a
  reconnect is under way straight away, *before* re-sending what was in flight, so with more than one event in
  paho's hands a new event could overtake an old one and the server would refuse the old one as ``out_of_order``.
  Events are a few a minute, so one round trip each costs nothing. paho re-sends the one in flight after a reconnect
  (the server de-duplicates by ``event_id``). State: retained, QoS 1, on change, but never ahead of an event
  decided before it (held back until the events are acknowledged). Telemetry: QoS 0, only while connected.
  Keyframes: QoS 1, not retained, only while connected (dropped and counted otherwise: pictures queued in memory
  through a long outage would break the memory bound). Settings state: retained, QoS 1.
* Clean exit: wait for the pending events, then retained ``stopped`` (or ``offline`` after a failure), wait for it,
  disconnect.

Stale state after a reconnect: paho re-sends messages that were in flight when the connection dropped *after* the
``on_connect`` callback. A state published into a connection that had silently died would then overwrite the fresh
state re-published in ``on_connect``; :meth:`MqttLink.tick` therefore publishes the current state once more shortly
after every reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from adbreak.mqtt_security import TlsOptions, configure_tls, connect_failure, refusal_hint
from adbreak.wire import (
    Availability,
    EventPayload,
    KeyframePayload,
    SettingsStatePayload,
    StatePayload,
    TelemetryPayload,
    Topics,
    now,
)
from edge.outbox import MAX_ENTRIES, Outbox

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], None]
REFRESH_AFTER_RECONNECT_S = 0.5
OUTBOX_REPORT_S = 30.0  # how often a waiting outbox is reported in the log
_EARLY_ACKS_KEPT = 1024


class Publisher(Protocol):
    """Where the agent sends its payloads (an :class:`MqttLink`, or a recorder in tests)."""

    def publish_state(self, payload: StatePayload) -> None: ...

    def publish_event(self, payload: EventPayload) -> None: ...

    def publish_telemetry(self, payload: TelemetryPayload) -> None: ...


class MqttLink:
    """One paho client for one device: availability, state, events, telemetry, and incoming commands."""

    def __init__(
        self,
        *,
        device: str,
        topics: Topics,
        host: str,
        port: int = 1883,
        keepalive_s: int = 5,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        handlers: Mapping[str, MessageHandler] | None = None,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 10,
        tls: TlsOptions | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.device = device
        self.topics = topics
        self.host, self.port, self.keepalive_s = host, int(port), int(keepalive_s)
        self._handlers = dict(handlers or {})
        self._available_topic = topics.available(device)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._state: StatePayload | None = None
        self._settings_state: SettingsStatePayload | None = None
        self.keyframes_sent = 0
        self.keyframes_dropped = 0
        # QoS-1 messages we wait for before a clean exit (events, the final availability), by message id. paho's
        # MQTTMessageInfo cannot confirm a message queued while disconnected (its rc stays "no connection"), so
        # acknowledgements are tracked through on_publish; an ack may even arrive before publish() returns.
        self._acks = threading.Condition()
        self._unacked: dict[int, str] = {}
        self._early: OrderedDict[int, None] = OrderedDict()
        self._refresh_at: float | None = None
        self._state_due = False  # a state held back until the events decided before it are acknowledged
        self._stopping = False
        self.connects = 0
        # Events: waiting in order (leftovers first), and the one paho holds (mid, event); see the module docstring.
        self.outbox = outbox
        self._pending: deque[EventPayload] = deque()
        self._inflight: tuple[int, EventPayload] | None = None
        self._sending = False
        self.events_acked = 0
        self.events_dropped = 0  # dropped to keep the outbox (or, without one, the memory queue) bounded
        self._outbox_reported = 0.0
        self._outbox_peak = 0

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"adbreak-edge-{device}",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if log.isEnabledFor(logging.DEBUG):  # paho logs every failed retry as an error; ours say it once, readably
            client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.will_set(self._available_topic, Availability.OFFLINE.value, qos=1, retain=True)
        if username:
            client.username_pw_set(username, password)
        if tls is not None:
            configure_tls(client, tls)  # AdbreakError (one line) on a missing or bad file
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        self._client = client

    # -- lifecycle
    def start(self) -> None:
        """Queue the outbox's leftovers (before any new event), then connect in the background (the network thread
        keeps retrying until :meth:`stop`)."""
        if self.outbox is not None:
            leftovers = self.outbox.load()
            with self._acks:
                self._pending.extendleft(reversed(leftovers))
        log.info("connecting to MQTT broker %s:%d as %s", self.host, self.port, self.device)
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self._client.loop_start()
        self._pump()  # the first leftover waits in paho's queue for the connection

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, availability: Availability = Availability.STOPPED, timeout: float = 5.0) -> bool:
        """Wait (up to ``timeout`` in all) for every pending event to be acknowledged, publish the retained final
        availability, wait for it, disconnect. Returns True when everything was delivered."""
        self._stopping = True
        deadline = time.monotonic() + timeout
        self._wait_acked(deadline)  # the events first: the final availability must not overtake them
        if self.connected:
            with self._lock:
                if self._state_due and self._state is not None and not self.events_waiting:
                    self._send_state(self._state)
            info = self._client.publish(self._available_topic, availability.value, qos=1, retain=True)
            self._track(info, f"availability {availability.value}")
        else:
            log.warning("not connected: cannot publish availability %r; the broker (if it saw us) will publish the "
                        "'offline' will", availability.value)
        delivered = self._wait_acked(deadline) and self.connected
        with self._acks:
            missing = sorted(self._unacked.values())
            events = ([self._inflight[1]] if self._inflight else []) + list(self._pending)
        if missing:
            log.warning("not acknowledged by the broker before exit: %s", ", ".join(missing))
        if events:
            kept = (f"kept in the outbox {self.outbox.dir}: sent at the next start" if self.outbox is not None
                    else "lost (no outbox)")
            log.warning("%d event(s) not acknowledged by the broker before exit (seq %s); %s", len(events),
                        ", ".join(str(e.seq) for e in events), kept)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        return delivered

    # -- publishing
    def publish_state(self, payload: StatePayload) -> None:
        """Retained, QoS 1. Remembered and re-published on every (re)connect. Held back (and sent by :meth:`tick`)
        while events decided before it wait for the broker: a state overtaking them would make the server open a
        segment from the state and then apply the older events inside it."""
        with self._lock:
            self._state = payload
            if self.connected and not self.events_waiting:
                self._send_state(payload)
            else:
                self._state_due = True

    def publish_event(self, payload: EventPayload) -> None:
        """QoS 1, not retained: on disk in the outbox first (when there is one), then sent after every event before
        it has been acknowledged; kept until the broker acknowledges it."""
        dropped = self.outbox.add(payload) if self.outbox is not None else []
        with self._acks:
            self._pending.append(payload)
            if self.outbox is None and len(self._pending) > MAX_ENTRIES:  # the same bound, in memory
                dropped.append(self._pending.popleft().seq)
                log.error("event queue full (%d): dropped the oldest event seq %d", MAX_ENTRIES, dropped[-1])
            elif dropped:
                gone = set(dropped)
                self._pending = deque(e for e in self._pending if e.seq not in gone)
            self.events_dropped += len(dropped)
        log.info("event %s seq=%d id=%s boundary_stream_t=%.2f", payload.type.value, payload.seq, payload.event_id,
                 payload.boundary_stream_t)
        self._pump()

    def _pump(self) -> None:
        """Hand the next waiting event to paho when none is in its hands. Never called with a lock of ours held:
        paho runs on_publish with its own message lock held, and on_publish takes ``self._acks``."""
        while True:
            with self._acks:
                if self._sending or self._inflight is not None or not self._pending:
                    return
                event = self._pending[0]
                self._sending = True
            try:
                info = self._client.publish(self.topics.event(self.device), event.to_bytes(), qos=1, retain=False)
            except Exception:  # a bug in paho's hands must not stop the queue for good
                log.exception("cannot hand event seq %d to paho", event.seq)
                with self._acks:
                    self._sending = False
                return
            with self._acks:
                self._sending = False
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    log.error("event seq %d not queued for the broker: %s; trying again later", event.seq,
                              mqtt.error_string(info.rc))
                    return
                if self._pending and self._pending[0] is event:
                    self._pending.popleft()
                if self._early.pop(info.mid, 0) is not None:  # not acknowledged yet: paho holds it
                    self._inflight = (info.mid, event)
                    return
            self._acked(event)  # acknowledged before publish() returned; on to the next one

    def _acked(self, event: EventPayload) -> None:
        if self.outbox is not None:
            self.outbox.remove(event.seq)
        with self._acks:
            self.events_acked += 1
            self._acks.notify_all()
        log.debug("event seq %d acknowledged by the broker", event.seq)

    def publish_telemetry(self, payload: TelemetryPayload) -> None:
        """QoS 0, only while connected (a stale reading is worth nothing later)."""
        if self.connected:
            self._client.publish(self.topics.telemetry(self.device), payload.to_bytes(), qos=0, retain=False)

    def publish_keyframe(self, payload: KeyframePayload) -> bool:
        """QoS 1, not retained, only while connected; False (and counted) when dropped."""
        if not self.connected:
            self.keyframes_dropped += 1
            return False
        info = self._client.publish(self.topics.keyframe(self.device), payload.to_bytes(), qos=1, retain=False)
        self._track(info, f"keyframe {payload.kind} {payload.frame_id[:8]}")
        self.keyframes_sent += 1
        return True

    def publish_settings_state(self, payload: SettingsStatePayload) -> None:
        """Retained, QoS 1. Remembered and re-published on every (re)connect."""
        with self._lock:
            self._settings_state = payload
            if self.connected:
                self._send_settings_state(payload)

    def tick(self) -> None:
        """Call now and then from the agent's loop: completes the state refresh after a reconnect, retries a waiting
        event and reports a waiting outbox."""
        self._pump()
        self._report_waiting()
        with self._lock:
            if self.events_waiting or not self.connected:
                return  # the state waits for the events before it
            if self._state_due and self._state is not None:
                self._send_state(self._state)
            due = self._refresh_at is not None and time.monotonic() >= self._refresh_at
            if due:
                self._refresh_at = None
                if self._state is not None and self.connected:
                    self._send_state(self._state)
                if self._settings_state is not None and self.connected:
                    self._send_settings_state(self._settings_state)

    def _track(self, info: mqtt.MQTTMessageInfo, what: str) -> None:
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.error("%s not queued for the broker: %s", what, mqtt.error_string(info.rc))
            return
        with self._acks:
            if self._early.pop(info.mid, 0) is None:
                return  # acknowledged before publish() returned
            self._unacked[info.mid] = what

    def _report_waiting(self) -> None:
        waiting = self.events_waiting
        t = time.monotonic()
        if waiting and t - self._outbox_reported >= OUTBOX_REPORT_S:
            self._outbox_reported = t
            self._outbox_peak = max(self._outbox_peak, waiting)
            where = f"in the outbox {self.outbox.dir}" if self.outbox is not None else "in memory"
            log.warning("%d event(s) waiting for the broker's acknowledgement %s (%s)", waiting, where,
                        "connected" if self.connected else "broker unreachable")
        elif not waiting and self._outbox_peak:
            log.info("event outbox drained (%d event(s) waited at the last report)", self._outbox_peak)
            self._outbox_peak = 0
            self._outbox_reported = 0.0

    @property
    def events_waiting(self) -> int:
        """Events decided but not yet acknowledged by the broker (the outbox depth)."""
        with self._acks:
            return len(self._pending) + (self._inflight is not None)

    def _wait_acked(self, deadline: float) -> bool:
        with self._acks:
            while self._unacked or self._pending or self._inflight is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._acks.wait(remaining)
            return True

    @property
    def unacknowledged(self) -> int:
        """Events (and the final availability, keyframes) not yet acknowledged by the broker."""
        with self._acks:
            return len(self._unacked) + len(self._pending) + (self._inflight is not None)

    def _send_state(self, payload: StatePayload) -> None:  # holds self._lock
        self._state_due = False
        fresh = payload.model_copy(update={"ts": now()})
        self._client.publish(self.topics.state(self.device), fresh.to_bytes(), qos=1, retain=True)

    def _send_settings_state(self, payload: SettingsStatePayload) -> None:  # holds self._lock
        fresh = payload.model_copy(update={"ts": now()})
        self._client.publish(self.topics.settings_state(self.device), fresh.to_bytes(), qos=1, retain=True)

    # -- paho callbacks (network thread); none may raise, or paho's loop thread dies
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%d refused the connection: %s%s", self.host, self.port, reason_code,
                      refusal_hint(reason_code))
            return
        try:
            self.connects += 1
            log.info("connected to MQTT broker %s:%d", self.host, self.port)
            client.publish(self._available_topic, Availability.ONLINE.value, qos=1, retain=True)
            with self._lock:
                self._connected.set()
                if self._state is not None:
                    if self.events_waiting:  # after them (tick), or the server would see the state first
                        self._state_due = True
                    else:
                        self._send_state(self._state)
                if self._settings_state is not None:
                    self._send_settings_state(self._settings_state)
                if self.connects > 1:
                    self._refresh_at = time.monotonic() + REFRESH_AFTER_RECONNECT_S
            for topic in self._handlers:
                result, _mid = client.subscribe(topic, qos=1)
                if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    log.error("cannot subscribe to %s: %s", topic, mqtt.error_string(result))
        except Exception:
            log.exception("error in the MQTT connect handler")

    def _on_connect_fail(self, client, userdata) -> None:
        log.warning("cannot reach MQTT broker %s:%d: %s; retrying", self.host, self.port, connect_failure())

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if self._stopping and not reason_code.is_failure:
            log.info("disconnected from MQTT broker")
        else:
            log.warning("lost the MQTT broker %s:%d (%s); reconnecting", self.host, self.port, reason_code)

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        for rc in reason_code_list:
            if rc.is_failure:
                log.error("the broker refused a subscription: %s", rc)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        event = None
        with self._acks:
            if self._inflight is not None and self._inflight[0] == mid:
                event = self._inflight[1]
                self._inflight = None
            elif self._unacked.pop(mid, None) is None:
                self._early[mid] = None  # a QoS-0 message, or an ack faster than publish() returned
                while len(self._early) > _EARLY_ACKS_KEPT:
                    self._early.popitem(last=False)
            self._acks.notify_all()
        if event is not None:
            try:
                self._acked(event)
                self._pump()
            except Exception:
                log.exception("error after the acknowledgement of event seq %d", event.seq)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        handler = self._handlers.get(message.topic)
        if handler is None:
            log.debug("ignored a message on %s", message.topic)
            return
        try:
            handler(message.payload)
        except Exception:
            log.exception("error handling a message on %s", message.topic)

