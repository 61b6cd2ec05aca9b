"""``MqttBridge``: the server's MQTT client (paho-mqtt 2.x, callback API version 2).

It connects in the background (``connect_async`` + ``loop_start``, reconnecting with a 1-10 s back-off), subscribes
in ``on_connect`` to the ``available`` / ``state`` / ``event`` / ``telemetry`` / ``keyframe`` / ``settings/state``
wildcards of the prefix, parses each
message with ``adbreak.wire`` (a parser table by :class:`~adbreak.wire.Kind`) and hands it, as a :class:`Message`,
to the sink (``server.ingest.Ingest``, which queues it for its worker). Every :class:`~adbreak.wire.WireError` is
counted by reason and logged (rate-limited), and no exception ever leaves a paho callback. The session is persistent
(``clean_session=False`` under a fixed client id): QoS 1 events published while the server is down are queued by the
broker and delivered when it reconnects.

Acknowledgements are manual (``manual_ack=True``): a QoS 1 message is acknowledged to the broker only after the
batch that applied it committed (refused ones in their turn, in the order received), so a message the server had
received but not yet stored when it died is delivered again, and the ingest, idempotent, takes it once. An
acknowledgement left over from a connection that has since dropped is not sent: the broker redelivers the message on
the new connection, under a packet id it may by then have reused.

Beyond the contract: :meth:`MqttBridge.add_route` subscribes other topics and hands their messages to a handler of
their own (Home Assistant's status and the auto-mute switch's commands, ``server.homeassistant``);
:meth:`MqttBridge.on_connected` listeners run after every (re)subscription. ``BrokerConfig.tls`` turns on TLS
(``adbreak.mqtt_security``), ``BrokerConfig.status_topic`` publishes the server's own availability (retained
``online``; ``offline`` as the last will and on a clean stop).

Several servers (``BrokerConfig.share_group``): the bridge speaks MQTT 5 (clean start off, a session expiry
interval, the server's own client id) and subscribes the contract's topics as the shared subscription
``$share/<group>/<filter>``, so the broker gives each live message to ONE server of the group. Retained messages
are no business of shared subscriptions (MQTT 5 says they are not sent there; Mosquitto 2.0 sends them anyway), so
the retained kinds (``available``, ``state``, ``settings/state``) are also subscribed plainly by every server, to
read the devices' retained state at start. Subscription identifiers tell the two apart: from the shared
subscription only live messages are taken, from the plain one only retained ones; the other copies are
acknowledged and dropped. Topics added with :meth:`MqttBridge.add_route` stay plain (every server sees them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from adbreak.mqtt_security import TlsOptions, configure_tls, connect_failure, refusal_hint
from adbreak.wire import (
    Availability,
    EventPayload,
    KeyframePayload,
    Kind,
    SettingsStatePayload,
    StatePayload,
    TelemetryPayload,
    Topics,
    WireError,
    parse_availability,
    parse_event,
    parse_keyframe,
    parse_settings_state,
    parse_state,
    parse_telemetry,
)
from server.counters import Counters, RateLimitedLog

log = logging.getLogger(__name__)

SUBSCRIBED_KINDS = (Kind.AVAILABLE, Kind.STATE, Kind.EVENT, Kind.TELEMETRY, Kind.KEYFRAME, Kind.SETTINGS_STATE)
SUBSCRIBE_QOS = 1
KEEPALIVE_S = 30
RECONNECT_MAX_S = 10
"""Longest wait between reconnection attempts: after a broker restart the server is back within ~10 s, well inside
``late_event_s``, so the events queued meanwhile still count as live (the edge retries as often)."""
RETAINED_KINDS = (Kind.AVAILABLE, Kind.STATE, Kind.SETTINGS_STATE)
"""Kinds devices publish retained: with a share group every server also subscribes them plainly."""
SHARED_SUB_ID = 1
PLAIN_SUB_ID = 2


Parsed = Availability | StatePayload | EventPayload | TelemetryPayload | KeyframePayload | SettingsStatePayload


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as the bridge hands it on. ``kind`` is ``None`` for a message the contract refused (already
    counted): it is handed on only so that its acknowledgement keeps its place in the order. ``retained``: the broker
    kept the message and sent it because the server subscribed, it did not just happen. ``received``: server time on
    arrival. ``ack``: acknowledges it to the broker (``None``: nothing to acknowledge); call it once it is applied."""

    kind: Kind | None
    device: str | None
    payload: Parsed | None
    retained: bool
    received: float
    ack: Callable[[], None] | None = None


class MessageSink(Protocol):
    """What the bridge hands messages to (``server.ingest.Ingest``), in the order they arrived, from paho's thread.
    ``submit`` may block (back-pressure on the broker) but must not drop."""

    def submit(self, message: Message) -> None: ...


@dataclass(frozen=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "adbreak-server"
    prefix: str = "adbreak"
    tls: TlsOptions | None = None
    """TLS towards the broker (``None``: plain TCP)."""
    status_topic: str | None = None
    """The server's own availability: retained ``online`` on every connect, ``offline`` as the last will and on a
    clean stop (``None``: none published)."""
    share_group: str | None = None
    """MQTT 5 shared subscriptions under this group name, for several servers (``None``: MQTT 3.1.1, one server)."""
    session_expiry_s: int = 86400
    """With a share group: how long the broker keeps this server's session (and queues its messages) while it is
    away."""


Route = Callable[[str, bytes, bool, Callable[[], None] | None], None]
"""A handler of topics outside the wire contract (:meth:`MqttBridge.add_route`): ``(topic, payload, retained, ack)``
from paho's thread; it must call ``ack`` (when not ``None``) once the message is dealt with."""


class MqttBridge:
    def __init__(self, config: BrokerConfig, sink: MessageSink, *, counters: Counters | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.topics = Topics(config.prefix)
        self.counters = counters if counters is not None else Counters()
        self._sink = sink
        self._clock = clock
        self._rejects = RateLimitedLog(log)
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._pending_subs: set[int] = set()  # SUBSCRIBE packets of this connection not yet acknowledged
        self._started = False
        self._generation = 0  # counts connections: an acknowledgement belongs to the one its message came on
        # the parser table: what each kind of topic carries
        self._parsers: dict[Kind, Callable[[str, bytes], Parsed]] = {
            Kind.AVAILABLE: lambda dev, raw: parse_availability(raw),
            Kind.STATE: lambda dev, raw: parse_state(raw, dev),
            Kind.EVENT: lambda dev, raw: parse_event(raw, dev),
            Kind.TELEMETRY: lambda dev, raw: parse_telemetry(raw, dev),
            Kind.KEYFRAME: lambda dev, raw: parse_keyframe(raw, dev),
            Kind.SETTINGS_STATE: lambda dev, raw: parse_settings_state(raw, dev),
        }
        if config.share_group is None:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id, clean_session=False,
                                      protocol=mqtt.MQTTv311, manual_ack=True)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id,
                                      protocol=mqtt.MQTTv5, manual_ack=True)
        if config.username is not None:
            self.client.username_pw_set(config.username, config.password)
        if config.tls is not None:
            configure_tls(self.client, config.tls)  # AdbreakError (one line) on a missing or bad file
        if config.status_topic is not None:
            self.client.will_set(config.status_topic, "offline", qos=1, retain=True)
        self._routes: list[tuple[str, int, Route]] = []
        self._connect_listeners: list[Callable[[], None]] = []
        self.client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # ------------------------------------------------------------------ lifecycle
    @property
    def broker(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def add_route(self, topic_filter: str, handler: Route, qos: int = SUBSCRIBE_QOS) -> None:
        """Also subscribe to ``topic_filter`` (a topic outside the wire contract, e.g. Home Assistant's status) and
        hand its messages to ``handler`` instead of the ingest. Call before :meth:`start`."""
        self._routes.append((topic_filter, qos, handler))

    def on_connected(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from paho's thread) each time the bridge is connected and subscribed."""
        self._connect_listeners.append(listener)

    @property
    def connected(self) -> bool:
        """Connected and subscribed: messages published from now on reach the server."""
        return self._connected.is_set() and self._subscribed.is_set()

    def wait_connected(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected:
                return True
            time.sleep(0.02)
        return self.connected

    def start(self) -> None:
        """Connect in the background; paho's thread keeps reconnecting until :meth:`stop`."""
        if self._started:
            return
        self._started = True
        log.info("connecting to MQTT broker %s as %s", self.broker, self.config.client_id)
        if self.config.share_group is None:
            self.client.connect_async(self.config.host, self.config.port, keepalive=KEEPALIVE_S)
        else:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.config.session_expiry_s
            self.client.connect_async(self.config.host, self.config.port, keepalive=KEEPALIVE_S, clean_start=False,
                                      properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect cleanly and stop paho's thread."""
        if not self._started:
            return
        self._started = False
        if self.config.status_topic is not None and self._connected.is_set():
            info = self.client.publish(self.config.status_topic, "offline", qos=1, retain=True)
            with suppress(RuntimeError, ValueError):  # not connected any more: the broker publishes the will instead
                info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()
        self._subscribed.clear()
        log.info("disconnected from MQTT broker %s", self.broker)

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> bool:
        """Publish (the rules' commands). False if paho could not hand it over now; QoS 1/2 messages stay queued in
        paho and go out after a reconnect."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("publish to %s: %s", topic, mqtt.error_string(info.rc))
            return False
        return True

    # ------------------------------------------------------------------ paho callbacks (paho's thread)
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s refused the connection: %s%s", self.broker, reason_code,
                      refusal_hint(reason_code))
            return
        self._generation += 1
        self._connected.set()
        log.info("connected to MQTT broker %s (session present: %s)", self.broker, flags.session_present)
        if self.config.status_topic is not None:
            client.publish(self.config.status_topic, "online", qos=1, retain=True)
        if self.config.share_group is None:
            filters = [(self.topics.wildcard(kind), SUBSCRIBE_QOS) for kind in SUBSCRIBED_KINDS]
            filters += [(topic_filter, qos) for topic_filter, qos, _handler in self._routes]
            rc, mid = client.subscribe(filters)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.error("subscribe to %s failed: %s", [f for f, _ in filters], mqtt.error_string(rc))
                return
            self._pending_subs = {mid}
            return
        # MQTT 5 allows one subscription identifier per SUBSCRIBE packet: three packets, subscribed once all are
        # granted (SUBACKs are handled on this thread, after this callback returns)
        self._pending_subs = set()
        group = self.config.share_group
        plan = [
            ([(f"$share/{group}/{self.topics.wildcard(k)}", SUBSCRIBE_QOS) for k in SUBSCRIBED_KINDS], SHARED_SUB_ID),
            ([(self.topics.wildcard(k), SUBSCRIBE_QOS) for k in RETAINED_KINDS], PLAIN_SUB_ID),
            ([(f, qos) for f, qos, _handler in self._routes], None),
        ]
        for filters, sub_id in plan:
            if not filters:
                continue
            props = None
            if sub_id is not None:
                props = Properties(PacketTypes.SUBSCRIBE)
                props.SubscriptionIdentifier = sub_id
            rc, mid = client.subscribe([(f, SubscribeOptions(qos=qos)) for f, qos in filters], properties=props)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.error("subscribe to %s failed: %s", [f for f, _ in filters], mqtt.error_string(rc))
                self._pending_subs = set()
                return
            self._pending_subs.add(mid)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.warning("cannot reach MQTT broker %s: %s; retrying", self.broker, connect_failure())

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list, properties: Any) -> None:
        if mid not in self._pending_subs:
            return
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("MQTT broker %s refused subscriptions: %s%s", self.broker, ", ".join(failed),
                      " (does it support MQTT 5 shared subscriptions?)" if self.config.share_group else "")
            self._pending_subs = set()  # never counted as subscribed on this connection
            return
        self._pending_subs.discard(mid)
        if self._pending_subs:
            return
        self._subscribed.set()
        shared = f"$share/{self.config.share_group}/" if self.config.share_group is not None else ""
        log.info("subscribed to %s", ", ".join([shared + self.topics.wildcard(k) for k in SUBSCRIBED_KINDS]
                                               + [f for f, _qos, _handler in self._routes]))
        for listener in self._connect_listeners:
            try:
                listener()
            except Exception:  # never out of a paho callback
                log.exception("connect listener %s failed", getattr(listener, "__qualname__", listener))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._connected.clear()
        self._subscribed.clear()
        if self._started:
            log.warning("disconnected from MQTT broker %s (%s); reconnecting", self.broker, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        ack = partial(self._ack, msg.mid, msg.qos, self._generation) if msg.qos > 0 else None
        if self.config.share_group is not None and not self._wanted_copy(msg):
            self.counters.incr("shared_copies_skipped")
            if ack is not None:
                ack()
            return
        for topic_filter, _qos, handler in self._routes:
            if mqtt.topic_matches_sub(topic_filter, msg.topic):
                try:
                    handler(msg.topic, msg.payload, bool(msg.retain), ack)
                except Exception:
                    log.exception("handling a message on %s failed", msg.topic)
                    if ack is not None:
                        ack()
                return
        self.handle(msg.topic, msg.payload, retained=bool(msg.retain), ack=ack)

    @staticmethod
    def _wanted_copy(msg: mqtt.MQTTMessage) -> bool:
        """With a share group: a live message from the shared subscription, a retained one from the plain one
        (routes, which have no identifier, always)."""
        ids = getattr(msg.properties, "SubscriptionIdentifier", None) or []
        if not ids:
            return True
        return (PLAIN_SUB_ID in ids) if msg.retain else (SHARED_SUB_ID in ids)

    def _ack(self, mid: int, qos: int, generation: int) -> None:
        """Acknowledge a message to the broker (any thread); not on a later connection than the one it came on."""
        if generation != self._generation or not self._connected.is_set():
            return
        rc = self.client.ack(mid, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.debug("acknowledging message %d: %s", mid, mqtt.error_string(rc))

    # ------------------------------------------------------------------ routing
    def handle(self, topic: str, payload: bytes, *, retained: bool = False,
               ack: Callable[[], None] | None = None) -> str | None:
        """Parse one message and hand it to the sink; returns the reject reason, if any. Never raises."""
        self.counters.incr("received")
        received = self._clock()
        try:
            device, kind = self.topics.parse(topic)
            parse = self._parsers.get(kind)
            if parse is None:
                raise WireError("bad_topic", f"topic {topic!r}: {kind.value} is not for the server")
            message = Message(kind, device, parse(device, payload), retained, received, ack)
        except WireError as exc:
            self.counters.reject(exc.reason)
            self._rejects.log(logging.WARNING, exc.reason, "rejected message on %s: %s", topic, exc)
            self._hand_on(Message(None, None, None, retained, received, ack), topic)
            return exc.reason
        except Exception:
            log.exception("handling a message on %s failed", topic)
            self._hand_on(Message(None, None, None, retained, received, ack), topic)
            return "error"
        return None if self._hand_on(message, topic) else "error"

    def _hand_on(self, message: Message, topic: str) -> bool:
        if message.kind is None and message.ack is None:
            return True  # refused, and nothing to acknowledge
        try:
            self._sink.submit(message)
        except Exception:
            log.exception("handing on a message on %s failed", topic)
            return False
        return True
