"""Home Assistant: MQTT device discovery and the per-device auto-mute switch (``docs/homeassistant.md``).

What is published (all retained, QoS 1; device-based discovery as Home Assistant documents it, one config per device):

* ``<ha_prefix>/device/<node_id>/config``: :func:`discovery_payload`, the device (``dev``), the origin (``o``) and four
  components (``cmps``): a ``binary_sensor`` "Ad playing" on the edge's retained state, a ``sensor`` "Ad confidence"
  (the smoothed ad probability of the telemetry, in %), a ``switch`` "Auto-mute" and an ``event`` "Ad break" on the
  edge's (never retained) events. The edge's components are available while the device's ``available`` topic says
  ``online`` (``stopped`` maps to offline); the switch, which the server serves, while the server's own status topic
  (``<prefix>/_server/status``, retained ``online``, ``offline`` as the server's last will) says ``online``.
  Published when a device is first seen (and again when its model version changes), on every (re)connect of the
  server, and whenever Home Assistant announces itself (``online`` on ``<ha_prefix>/status``). An empty retained
  payload removes a device (:meth:`HomeAssistant.remove`).
* ``<prefix>/<device>/automute/state``: ``ON`` / ``OFF``, the switch's state.

What is handled: ``<prefix>/<device>/automute/set`` (``ON`` / ``OFF``, never retained): the command goes through the
single writer (``devices.auto_mute``); turning it off while the device is muted unmutes (``server.rules``); then the
state is published. A *retained* command (someone published one with the retain flag, and the broker replays it on
every subscribe) is ignored, so nothing re-fires after a restart.

The topics and payloads are pure functions; :class:`HomeAssistant` is the small stateful part (what was published
last, per device). No Flask and no paho here: publishing is a callable (``MqttBridge.publish``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adbreak import __version__
from adbreak.wire import DEVICE_RE, Topics

if TYPE_CHECKING:
    from server.rules import AutoMute
    from server.store import WriteBatch

log = logging.getLogger(__name__)

ORIGIN_NAME = "adbreak"
MANUFACTURER = "adbreak"
MODEL = "adbreak edge agent"
PAYLOAD_ON = "ON"
PAYLOAD_OFF = "OFF"
QOS = 1
EVENT_TYPES = ("ad_start", "ad_end")

# the value templates (Home Assistant's Jinja; ``value`` is the payload text, ``value_json`` the parsed JSON)
AD_PLAYING_TEMPLATE = "{{ 'ON' if value_json.label == 'ad' else 'OFF' }}"
CONFIDENCE_TEMPLATE = "{{ (value_json.smoothed * 100) | round | int }}"
EVENT_TEMPLATE = ("{{ {'event_type': value_json.type, 'confidence': value_json.confidence, "
                  "'seq': value_json.seq} | tojson }}")
AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"

Publish = Callable[[str, "str | bytes", int, bool], bool]
Job = Callable[["WriteBatch"], object]


# ---------------------------------------------------------------------------------------------------- topics
@dataclass(frozen=True)
class HaTopics:
    """Every topic of the Home Assistant side, from adbreak's prefix and Home Assistant's discovery prefix."""

    prefix: str = "adbreak"
    ha_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        Topics(self.prefix)  # ValueError on a bad prefix
        Topics(self.ha_prefix)

    @property
    def wire(self) -> Topics:
        return Topics(self.prefix)

    def node_id(self, device: str) -> str:
        """The discovery node id: ``[a-zA-Z0-9_-]`` only, unique per adbreak prefix and device."""
        return f"{self.prefix.replace('/', '_')}_{device}"

    def discovery(self, device: str) -> str:
        return f"{self.ha_prefix}/device/{self.node_id(device)}/config"

    @property
    def ha_status(self) -> str:
        """Where Home Assistant publishes its birth (``online``) and last will (``offline``)."""
        return f"{self.ha_prefix}/status"

    @property
    def server_status(self) -> str:
        """The server's availability. ``_server`` cannot be a device name, so it never clashes with one."""
        return f"{self.prefix}/_server/status"

    def automute_set(self, device: str) -> str:
        return f"{self.prefix}/{device}/automute/set"

    def automute_state(self, device: str) -> str:
        return f"{self.prefix}/{device}/automute/state"

    @property
    def automute_set_filter(self) -> str:
        return f"{self.prefix}/+/automute/set"

    def automute_device(self, topic: str) -> str | None:
        """The device of an ``automute/set`` topic, or ``None`` when it is not one."""
        head, tail = f"{self.prefix}/", "/automute/set"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        device = topic[len(head):-len(tail)]
        return device if DEVICE_RE.match(device) else None


# ---------------------------------------------------------------------------------------------------- payloads
def discovery_payload(device: dict[str, Any], topics: HaTopics, *, sw_version: str = __version__) -> dict[str, Any]:
    """The device-based discovery config of one device (a ``Device`` dict of docs/api.md: ``name`` and
    ``model_version`` are used)."""
    name = device["name"]
    node = topics.node_id(name)
    wire = topics.wire
    edge_availability = [{"topic": wire.available(name), "value_template": AVAILABILITY_TEMPLATE,
                          "payload_available": "online", "payload_not_available": "offline"}]
    dev: dict[str, Any] = {"ids": [node], "name": name, "mf": MANUFACTURER, "mdl": MODEL}
    if device.get("model_version"):
        dev["sw"] = device["model_version"]
    return {
        "dev": dev,
        "o": {"name": ORIGIN_NAME, "sw": sw_version},
        "cmps": {
            "ad_playing": {
                "p": "binary_sensor",
                "name": "Ad playing",
                "unique_id": f"{node}_ad_playing",
                "icon": "mdi:advertisements",
                "state_topic": wire.state(name),
                "value_template": AD_PLAYING_TEMPLATE,
                "payload_on": PAYLOAD_ON,
                "payload_off": PAYLOAD_OFF,
                "availability": edge_availability,
            },
            "ad_confidence": {
                "p": "sensor",
                "name": "Ad confidence",
                "unique_id": f"{node}_ad_confidence",
                "icon": "mdi:percent",
                "state_topic": wire.telemetry(name),
                "value_template": CONFIDENCE_TEMPLATE,
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "suggested_display_precision": 0,
                "availability": edge_availability,
            },
            "auto_mute": {
                "p": "switch",
                "name": "Auto-mute",
                "unique_id": f"{node}_auto_mute",
                "icon": "mdi:volume-off",
                "command_topic": topics.automute_set(name),
                "state_topic": topics.automute_state(name),
                "payload_on": PAYLOAD_ON,
                "payload_off": PAYLOAD_OFF,
                "state_on": PAYLOAD_ON,
                "state_off": PAYLOAD_OFF,
                "retain": False,
                "optimistic": False,
                "availability": [{"topic": topics.server_status, "payload_available": "online",
                                  "payload_not_available": "offline"}],
            },
            "ad_break": {
                "p": "event",
                "name": "Ad break",
                "unique_id": f"{node}_ad_break",
                "icon": "mdi:television-classic",
                "state_topic": wire.event(name),
                "event_types": list(EVENT_TYPES),
                "value_template": EVENT_TEMPLATE,
                "availability": edge_availability,
            },
        },
        "qos": QOS,
    }


def switch_payload(enabled: bool) -> str:
    return PAYLOAD_ON if enabled else PAYLOAD_OFF


def parse_switch_command(payload: bytes) -> bool | None:
    """``ON`` -> True, ``OFF`` -> False, anything else -> None."""
    text = payload[:16].decode("utf-8", "replace").strip()
    return {PAYLOAD_ON: True, PAYLOAD_OFF: False}.get(text)


# ---------------------------------------------------------------------------------------------------- the publisher
class HomeAssistant:
    """Publishes the discovery configs and switch states, and handles the switch's commands.

    ``publish``: the bridge's publish; ``devices``: reads every ``Device`` dict (the store); ``submit``: runs a job on
    the single writer (``Ingest.call``); ``rules``: the auto-mute rule (unmutes when the switch goes off);
    ``on_device``: told the ``Device`` dict after a switch change (the Socket.IO push); ``connected``: whether the
    bridge is connected (while it is not, nothing is published: the reconnect republishes everything).
    ``discovery=False`` publishes no configs (the switch's topics still work).

    Thread-safety: :meth:`device_changed` runs on the ingest worker after each commit, :meth:`republish` and the
    message handlers on paho's thread; what was published last is kept under a lock, and publishing happens under
    it too, so a stale read can never overwrite a newer retained state.
    """

    def __init__(self, topics: HaTopics, publish: Publish, *, devices: Callable[[], list[dict]],
                 submit: Callable[[Job], object], rules: AutoMute | None = None,
                 on_device: Callable[[dict], object] | None = None, connected: Callable[[], bool] | None = None,
                 discovery: bool = True, sw_version: str = __version__) -> None:
        self.topics = topics
        self.discovery = discovery
        self._publish = publish
        self._devices = devices
        self._submit = submit
        self._rules = rules
        self._on_device = on_device
        self._connected = connected
        self._sw_version = sw_version
        self._lock = threading.Lock()
        self._latest: dict[str, dict] = {}  # name -> the newest Device dict committed (in commit order)
        self._configs: dict[str, str] = {}  # name -> the config JSON last published
        self._switches: dict[str, bool] = {}  # name -> the switch state last published

    # ------------------------------------------------------------------ MQTT wiring
    def routes(self) -> list[tuple[str, Callable[[str, bytes, bool, Callable[[], None] | None], None]]]:
        """``(topic filter, handler)`` pairs for ``MqttBridge.add_route``."""
        routes = [(self.topics.automute_set_filter, self.on_command)]
        if self.discovery:
            routes.append((self.topics.ha_status, self.on_ha_status))
        return routes

    def on_ha_status(self, topic: str, payload: bytes, retained: bool, ack: Callable[[], None] | None) -> None:
        """Home Assistant's birth (``online``): it has (re)started and forgot its MQTT devices; tell it again."""
        if ack is not None:
            ack()
        if payload.strip() == b"online":
            log.info("Home Assistant is online%s: publishing discovery", " (retained)" if retained else "")
            self.republish()

    def on_command(self, topic: str, payload: bytes, retained: bool, ack: Callable[[], None] | None) -> None:
        """A switch command from Home Assistant (or anyone): applied through the single writer, then acknowledged."""
        device = self.topics.automute_device(topic)
        enabled = parse_switch_command(payload)
        if retained or device is None or enabled is None:
            if retained:
                log.warning("ignored a retained auto-mute command on %s (commands must not be retained; clear it "
                            "with: mosquitto_pub -r -n -t %s)", topic, topic)
            else:
                log.warning("ignored auto-mute command %r on %s: expected %s or %s", payload[:32], topic,
                            PAYLOAD_ON, PAYLOAD_OFF)
            if ack is not None:
                ack()
            return
        job = self.switch_job(device, enabled, by="MQTT")

        def run(batch: WriteBatch) -> None:
            try:
                dev = job(batch)
            except BaseException:
                if ack is not None:
                    ack()  # a redelivery would fail the same way
                raise
            if dev is None:
                batch.after_commit(log.warning, "ignored auto-mute command for unknown device %s", device)
            if ack is not None:
                batch.after_commit(ack)

        self._submit(run)

    # ------------------------------------------------------------------ the switch
    def switch_job(self, device: str, enabled: bool, *, by: str) -> Job:
        """A job for the single writer that sets the device's auto-mute switch; it returns the ``Device`` dict, or
        ``None`` for an unknown device. After the commit the state is published and the device pushed."""

        def job(batch: WriteBatch) -> dict | None:
            if batch.set_auto_mute(device, enabled) is None:
                return None
            if self._rules is not None:
                self._rules.on_auto_mute(device, enabled, batch=batch)  # off while muted: unmute
            dev = batch.device(device)
            assert dev is not None
            batch.after_commit(self._switched, dev, by)
            return dev

        return job

    def _switched(self, dev: dict, by: str) -> None:
        log.info("auto-mute of %s turned %s (%s)", dev["name"], "on" if dev["auto_mute"] else "off", by)
        self.device_changed(dev, force_switch=True)
        if self._on_device is not None:
            self._on_device(dev)

    # ------------------------------------------------------------------ publishing
    def device_changed(self, device: dict, *, force_switch: bool = False) -> None:
        """After a commit that changed ``device``: publish its config if new or changed, its switch state if
        changed (or ``force_switch``: a command wants its answer)."""
        with self._lock:
            self._latest[device["name"]] = device
            self._publish_device(device, force_switch=force_switch)

    def republish(self) -> None:
        """Publish every device's config and switch state again (the server (re)connected, or Home Assistant
        restarted)."""
        try:
            devices = self._devices()
        except Exception:
            log.exception("reading the devices for Home Assistant failed")
            return
        with self._lock:
            self._configs.clear()
            self._switches.clear()
            for dev in devices:
                # a change committed since the read is newer than the read: keep it
                latest = self._latest.setdefault(dev["name"], dev)
                self._publish_device(latest, force_switch=True)

    def remove(self, name: str) -> None:
        """Remove a device from Home Assistant: empty retained config and switch state."""
        with self._lock:
            self._latest.pop(name, None)
            self._configs.pop(name, None)
            self._switches.pop(name, None)
            if self.discovery:
                self._publish(self.topics.discovery(name), b"", QOS, True)
            self._publish(self.topics.automute_state(name), b"", QOS, True)

    def _publish_device(self, device: dict, *, force_switch: bool) -> None:  # holds self._lock
        if self._connected is not None and not self._connected():
            return  # the next connect republishes everything
        name = device["name"]
        if self.discovery:
            config = json.dumps(discovery_payload(device, self.topics, sw_version=self._sw_version),
                                separators=(",", ":"))
            if self._configs.get(name) != config and self._publish(self.topics.discovery(name), config, QOS, True):
                self._configs[name] = config
                log.info("Home Assistant discovery for %s published on %s", name, self.topics.discovery(name))
        enabled = bool(device.get("auto_mute", True))
        if (force_switch or self._switches.get(name) != enabled) \
                and self._publish(self.topics.automute_state(name), switch_payload(enabled), QOS, True):
            self._switches[name] = enabled
