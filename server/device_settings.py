"""A device's decision settings as the server sees them (``docs/api.md``); no Flask, no paho.

Two JSON columns of ``devices`` hold them: ``settings`` (what the user chose: the overridden fields only; NULL while
the user never chose anything, ``{}`` after a reset to the defaults) and ``settings_reported`` (the device's last
retained ``settings/state``: what it runs, its defaults, its own overrides, its last refusal). From them
:func:`settings_view` derives the API's answer:

* ``defaults``: the device's defaults (the model bundle's with its own configuration), as it reported them; null
  before it reported any;
* ``desired``: the user's overrides (null: none chosen);
* ``reported``: the settings the device reports it runs (null before it reported any);
* ``effective``: what the device should run: ``defaults`` (the built-in ``DecisionConfig`` ones while unknown) with
  ``desired`` on top; without ``desired``, what it reports;
* ``pending``: the user chose settings and the device does not (yet) report running them;
* ``error``: the last ``settings/set`` the device refused, and why.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from adbreak.wire import SETTINGS_FIELDS, SettingsSetPayload, SettingsStatePayload, Topics
from edge.decision import DecisionConfig

log = logging.getLogger(__name__)

BUILTIN_DEFAULTS: dict[str, Any] = {k: v for k, v in DecisionConfig().to_dict().items() if k in SETTINGS_FIELDS}


class SettingsError(ValueError):
    """Settings that do not fit together (one readable line)."""


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def same_settings(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two settings dicts agree on every field of :data:`SETTINGS_FIELDS` (numbers to 1e-9)."""
    if a is None or b is None:
        return False
    for key in SETTINGS_FIELDS:
        x, y = a.get(key), b.get(key)
        if isinstance(x, int | float) and isinstance(y, int | float) and not isinstance(x, bool):
            if not math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9):
                return False
        elif x != y:
            return False
    return True


def _ordered(d: Any) -> dict[str, Any] | None:
    """The settings of ``d`` in the order of :data:`SETTINGS_FIELDS` (other keys dropped)."""
    if not isinstance(d, dict):
        return None
    return {k: d[k] for k in SETTINGS_FIELDS if k in d}


def settings_view(desired_json: str | None, reported_json: str | None) -> dict[str, Any]:
    """The settings part of the API (see the module doc) from the two columns."""
    desired = _json(desired_json)
    if not isinstance(desired, dict):
        desired = None
    reported = _json(reported_json)
    if not isinstance(reported, dict):
        reported = None
    defaults = _ordered(reported.get("defaults")) if reported else None
    running = _ordered(reported.get("settings")) if reported else None
    desired = _ordered(desired)
    if desired is not None:
        effective = _ordered({**(defaults or BUILTIN_DEFAULTS), **desired})
    else:
        effective = dict(running or defaults or BUILTIN_DEFAULTS)
    return {
        "defaults": defaults,
        "desired": desired,
        "reported": running,
        "effective": effective,
        "pending": desired is not None and not same_settings(effective, running),
        "error": reported.get("error") if reported else None,
    }


def merge_desired(current: dict[str, Any] | None, changes: dict[str, Any], defaults: dict[str, Any] | None) -> dict:
    """The user's new overrides: ``current`` with ``changes`` applied (``None`` removes a field), checked as a whole
    against ``DecisionConfig``'s rules on top of ``defaults`` (the built-in ones while the device reported none).
    :class:`SettingsError` when they do not fit together."""
    unknown = sorted(set(changes) - set(SETTINGS_FIELDS))
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS_FIELDS)}")
    out = dict(current or {})
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    try:
        DecisionConfig.from_dict({**BUILTIN_DEFAULTS, **(defaults or {}), **out})
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    return {k: out[k] for k in SETTINGS_FIELDS if k in out}


def set_payload(device: str, desired: dict[str, Any]) -> SettingsSetPayload:
    """The ``settings/set`` that makes the device run ``desired``: every field, ``null`` for the defaults."""
    return SettingsSetPayload(device=device, **{k: desired.get(k) for k in SETTINGS_FIELDS})


def reported_json(payload: SettingsStatePayload) -> str:
    """What ``devices.settings_reported`` keeps of a ``settings/state``."""
    return json.dumps(payload.model_dump(exclude={"v", "device"}))


# ---------------------------------------------------------------------------------------------------- the sync
class UnknownDevice(LookupError):
    """No such device (nothing is created)."""


RESEND_MIN_INTERVAL_S = 30.0
"""A device's desired settings are sent again at most this often on their own (a user's PUT always sends)."""


class SettingsSync:
    """Keeps the devices' decision settings in step: stores what they report (``settings/state``), stores what the
    user chooses and sends it (``settings/set``, QoS 1, not retained), and sends it again when a device reports other
    settings than the user chose (it was offline, or lost them), at most every :data:`RESEND_MIN_INTERVAL_S`.

    Its methods run on the ingest worker inside a write batch (``batch`` is a ``server.store.WriteBatch``); MQTT
    publishing happens after the commit. ``publish(topic, payload, qos, retain) -> bool`` is the bridge's;
    ``push_device(batch, device)`` registers the Socket.IO push of a changed device.
    """

    def __init__(self, topics: Topics, publish: Callable[[str, bytes, int, bool], bool],
                 push_device: Callable[[Any, dict], None], *, counters: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topics = topics
        self._publish = publish
        self._push_device = push_device
        self._counters = counters
        self._clock = clock
        self.resend_interval_s = RESEND_MIN_INTERVAL_S
        self._sent: dict[str, float] = {}  # device -> monotonic time of the last settings/set
        self._lock = threading.Lock()

    # -- ingest: settings/state
    def on_state(self, batch: Any, payload: SettingsStatePayload, *, retained: bool, received: float) -> str | None:
        """Store a device's reported settings; the reject reason, if any."""
        device = payload.device
        if batch.device_id(device) is None and (retained or not batch.touch(device, received)):
            if self._counters is not None:
                batch.after_commit(self._counters.reject, "unknown_device")
            return "unknown_device"
        dev = batch.set_device_settings(device, reported=reported_json(payload))
        self._push_device(batch, dev)
        view = dev["settings"]
        if view["pending"] and self._due(device):
            log.info("%s runs other decision settings than chosen: sending them again", device)
            batch.after_commit(self.send, device, view["desired"])
        return None

    # -- the API: PUT
    def put(self, batch: Any, device: str, changes: dict[str, Any], *, username: str | None = None) -> dict:
        """Apply a user's changes (``None``: back to the default) to a device's desired settings, store them and
        (after the commit) send them; the new ``settings`` view. :class:`UnknownDevice`, :class:`SettingsError`."""
        current = batch.device(device)
        if current is None:
            raise UnknownDevice(device)
        view = current["settings"]
        desired = merge_desired(view["desired"], changes, view["defaults"])
        dev = batch.set_device_settings(device, desired=json.dumps(desired))
        self._push_device(batch, dev)
        batch.after_commit(self.send, device, desired)
        batch.after_commit(log.info, "%s set the decision settings of %s: %s", username or "someone", device,
                           desired or "the defaults")
        return dev["settings"]

    # -- MQTT
    def _due(self, device: str) -> bool:
        with self._lock:
            last = self._sent.get(device)
            return last is None or self._clock() - last >= self.resend_interval_s

    def send(self, device: str, desired: dict[str, Any]) -> bool:
        """Publish ``settings/set`` for ``desired`` (QoS 1, not retained)."""
        with self._lock:
            self._sent[device] = self._clock()
        ok = self._publish(self.topics.settings_set(device), set_payload(device, desired).to_bytes(), 1, False)
        if ok and self._counters is not None:
            self._counters.incr("settings_sent")
        return ok
