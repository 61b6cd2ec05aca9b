"""The edge agent's MQTT link (paho-mqtt 2.x), done as paho documents it and as the wire contract asks.

* VERSION2 callbacks; every reason code is checked (a refused connection is logged and the callback returns).
* Last will: ``offline``, retained, QoS 1, on ``Topics.available(device)``: the broker publishes it when the agent
  vanishes (no packet for 1.5 x keepalive).
* On every (re)connect: retained ``online``, the current retained state and settings state again (a restarted
  broker without persistence has lost them), and the subscriptions (the mute command, when an actuator listens;
  ``settings/set``).
* ``connect_async`` + ``loop_start``: the agent starts detecting whether or not the broker is up;
  ``reconnect_delay_set(1, 30)``.
* Events: QoS 1, not retained. paho keeps unacknowledged QoS-1 messages in memory and sends them again after a
  reconnect, so an event decided while the broker is unreachable is delivered later (it is lost only if the process
  dies first; the server de-duplicates by ``event_id``). State: retained, QoS 1, on change. Telemetry: QoS 0, only
  while connected. Keyframes: QoS 1, not retained, only while connected (dropped and counted otherwise: pictures
  queued in memory through a long outage would break the memory bound). Settings state: retained, QoS 1.
* Clean exit: retained ``stopped`` (or ``offline`` after a failure), wait for it and the pending events, disconnect.

Stale state after a reconnect: paho re-sends messages that were in flight when the connection dropped *after* the
``on_connect`` callback. A state published into a connection that had silently died would then overwrite the fresh
state re-published in ``on_connect``; :meth:`MqttLink.tick` therefore publishes the current state once more shortly
after every reconnect.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
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

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes], None]
REFRESH_AFTER_RECONNECT_S = 0.5
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
        reconnect_max_s: int = 30,
        tls: TlsOptions | None = None,
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
        self._stopping = False
        self.connects = 0

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
        """Connect in the background (the network thread keeps retrying until :meth:`stop`)."""
        log.info("connecting to MQTT broker %s:%d as %s", self.host, self.port, self.device)
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        self._client.loop_start()

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, availability: Availability = Availability.STOPPED, timeout: float = 5.0) -> bool:
        """Publish the retained final availability, wait (up to ``timeout``) for it and every pending event to be
        acknowledged, disconnect. Returns True when everything was delivered."""
        self._stopping = True
        deadline = time.monotonic() + timeout
        if self.connected:
            info = self._client.publish(self._available_topic, availability.value, qos=1, retain=True)
            self._track(info, f"availability {availability.value}")
        else:
            log.warning("not connected: cannot publish availability %r; the broker (if it saw us) will publish the "
                        "'offline' will", availability.value)
        delivered = self._wait_acked(deadline) and self.connected
        with self._acks:
            missing = sorted(self._unacked.values())
        if missing:
            log.warning("not acknowledged by the broker before exit: %s", ", ".join(missing))
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        return delivered

    # -- publishing
    def publish_state(self, payload: StatePayload) -> None:
        """Retained, QoS 1. Remembered and re-published on every (re)connect."""
        with self._lock:
            self._state = payload
            if self.connected:
                self._send_state(payload)

    def publish_event(self, payload: EventPayload) -> None:
        """QoS 1, not retained; queued in memory while the broker is unreachable."""
        info = self._client.publish(self.topics.event(self.device), payload.to_bytes(), qos=1, retain=False)
        self._track(info, f"event seq {payload.seq}")
        log.info("event %s seq=%d boundary_stream_t=%.2f", payload.type.value, payload.seq, payload.boundary_stream_t)

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
        """Call now and then from the agent's loop: completes the state refresh after a reconnect."""
        with self._lock:
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

    def _wait_acked(self, deadline: float) -> bool:
        with self._acks:
            while self._unacked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._acks.wait(remaining)
            return True

    @property
    def unacknowledged(self) -> int:
        """Events (and the final availability) sent but not yet acknowledged by the broker."""
        with self._acks:
            return len(self._unacked)

    def _send_state(self, payload: StatePayload) -> None:  # holds self._lock
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
        with self._acks:
            if self._unacked.pop(mid, None) is None:
                self._early[mid] = None  # a QoS-0 message, or an ack faster than publish() returned
                while len(self._early) > _EARLY_ACKS_KEPT:
                    self._early.popitem(last=False)
            self._acks.notify_all()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        handler = self._handlers.get(message.topic)
        if handler is None:
            log.debug("ignored a message on %s", message.topic)
            return
        try:
            handler(message.payload)
        except Exception:
            log.exception("error handling a message on %s", message.topic)

