"""``Ingest``: what happens to each parsed MQTT message. The bridge hands messages here; this applies them to the
store, lets the auto-mute rule decide, and pushes what changed to the browsers. The plain orchestrator between
``MqttBridge`` (transport), ``SegmentStore`` (data), ``AutoMute`` (rules) and ``Realtime`` (Socket.IO)."""

from __future__ import annotations

import logging

from adbreak.wire import Availability, EventPayload, StatePayload, TelemetryPayload
from server.counters import RateLimitedLog
from server.realtime import Realtime
from server.rules import AutoMute
from server.store import Change, SegmentStore

log = logging.getLogger(__name__)


class Ingest:
    def __init__(self, store: SegmentStore, rules: AutoMute | None, realtime: Realtime | None) -> None:
        self.store = store
        self.rules = rules
        self.realtime = realtime
        self._rejects = RateLimitedLog(log)

    def _rejected(self, device: str, reason: str, what: str) -> None:
        level = logging.DEBUG if reason == "duplicate" else logging.WARNING
        self._rejects.log(level, reason, "%s from %s rejected: %s", what, device, reason)

    def _push(self, change: Change) -> None:
        if self.realtime is None:
            return
        for seg in change.segments:
            self.realtime.segment(seg)
        if change.device is not None:
            self.realtime.device(change.device)

    # ------------------------------------------------------------------ MessageSink
    def availability(self, device: str, value: Availability, *, retained: bool, received: float) -> None:
        change = self.store.availability(device, value, received, retained=retained)
        if change.rejected:
            self._rejected(device, change.rejected, f"availability {value.value}")
            return
        log.info("%s is %s%s", device, value.value, " (retained)" if retained else "")
        self._push(change)
        if self.rules is not None:
            self.rules.on_availability(device, value, retained=retained)

    def state(self, payload: StatePayload, *, retained: bool, received: float) -> None:
        change = self.store.state(payload, received, retained=retained)
        if change.rejected:
            self._rejected(payload.device, change.rejected, "state")
            return
        self._push(change)

    def event(self, payload: EventPayload, *, retained: bool, received: float) -> None:
        result = self.store.ingest_event(payload, received)
        if not result.ingested:
            self._rejected(payload.device, result.status, f"event {payload.event_id} (seq {payload.seq})")
            return
        log.debug("%s: %s seq %d at %.3f", payload.device, payload.type.value, payload.seq, payload.boundary_ts)
        self._push(result)
        if self.rules is not None:
            self.rules.on_event(result, retained=retained)

    def telemetry(self, payload: TelemetryPayload, *, retained: bool, received: float) -> None:
        if retained:  # a stale sample a misbehaving publisher retained: no sign of life, nothing to show
            return
        if not self.store.touch(payload.device, received):
            self.store.counters.reject("unknown_device")
            self._rejected(payload.device, "unknown_device", "telemetry")
            return
        if self.realtime is not None:
            self.realtime.telemetry(payload.model_dump(exclude={"v"}))
