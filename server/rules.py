"""The auto-mute rule: mute a device's TV when an ad starts, unmute when it ends, with fail-safes.

The decision is pure (:func:`decide`: the device's mute state and one trigger in, an action or nothing out) so it
is tested without a broker or a database; :class:`AutoMute` applies it: it publishes the command (QoS 1, never
retained), stores the firing and tells the realtime layer.

* ``ad_start`` opened an ad segment and the device is not muted: **mute** (not for an ad already longer than
  ``max_ad_s``: the fail-safe would undo it at once), unless the device's auto-mute switch (``devices.auto_mute``,
  Home Assistant's "Auto-mute" switch) is off.
* ``ad_end`` opened a program segment and the device is muted: **unmute**.
* Fail-safe: the device went ``offline`` / ``stopped`` while muted: **unmute**.
* Fail-safe: an ad segment has been open longer than ``max_ad_s`` while muted (a watchdog looks every second):
  **unmute**.
* Fail-safe: a muted device in an ad has sent nothing (its telemetry comes every second) for ``silent_s`` while
  the server is connected to the broker: **unmute** (reason ``offline``). The broker's ``offline`` will comes at
  once when the edge process dies, but for a Pi that froze or lost power or network it waits for the keepalive, and
  Mosquitto 2.0 may take several seconds more than 1.5 x keepalive to notice; this keeps the promise of an unmute
  within 5 s of an edge's death. Silence is counted at the earliest from when this process (re)connected to the
  broker, so a restarted or reconnected server never unmutes before the device had the chance to be heard.
* The device's auto-mute switch was turned off while muted: **unmute**. The unmutes (``ad_end`` and the fail-safes)
  apply whatever the switch says: it only stops new mutes.
* Nothing fires from retained messages (a server restart replays the broker's retained availability and state):
  only messages that happen while the server runs fire.
* A late event never mutes: one the server receives more than ``late_event_s`` after the edge decided it (the
  broker's backlog after a server restart, an edge's outbox drained after an outage) is old news, and a mute sent
  for it would come at a random later time (often after the ad, or with its ``ad_end`` right behind it). It may
  still unmute (the safe direction), so a restart never leaves a TV muted.

A firing is recorded in the write batch that decided it; the command goes to the broker only after that batch
commits (so a command is never sent for a firing that was rolled back), in the order of the firings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from adbreak.wire import Availability
from server.store import IngestResult, SegmentStore, WriteBatch

log = logging.getLogger(__name__)

RULE = "auto_mute"
COMMAND_QOS = 1


class Action(StrEnum):
    MUTE = "mute"
    UNMUTE = "unmute"


class Reason(StrEnum):
    AD_START = "ad_start"
    AD_END = "ad_end"
    OFFLINE = "offline"
    MAX_AD_LENGTH = "max_ad_length"
    AUTO_MUTE_OFF = "auto_mute_off"


# ---------------------------------------------------------------------------------------------------- triggers
@dataclass(frozen=True)
class SegmentOpened:
    """An event opened a segment of ``label``; the ad began ``age_s`` seconds ago (now minus its boundary)."""

    label: str
    age_s: float = 0.0
    retained: bool = False
    late: bool = False
    """The event reached the server long after the edge decided it (see the module's notes)."""


@dataclass(frozen=True)
class AvailabilityChanged:
    availability: Availability
    retained: bool = False


@dataclass(frozen=True)
class AdRunning:
    """The watchdog's look at a device whose ad segment has been open ``open_s`` seconds and which has not been
    heard from for ``silent_s`` seconds."""

    open_s: float
    silent_s: float = 0.0


@dataclass(frozen=True)
class AutoMuteSwitched:
    """The device's auto-mute switch was set (Home Assistant, the API)."""

    enabled: bool


Trigger = SegmentOpened | AvailabilityChanged | AdRunning | AutoMuteSwitched


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason


def decide(muted: bool, trigger: Trigger, *, max_ad_s: float, auto_mute: bool = True,
           silent_s: float = 0.0) -> Decision | None:
    """Whether to send a command, given the device's mute state (the last command sent was a mute), its auto-mute
    switch (``auto_mute``: off stops new mutes, never an unmute) and a trigger. ``silent_s``: the silence after
    which a muted device counts as gone (0: never)."""
    if getattr(trigger, "retained", False):
        return None
    match trigger:
        case SegmentOpened(label="ad", age_s=age, late=False) if auto_mute and not muted and age < max_ad_s:
            return Decision(Action.MUTE, Reason.AD_START)
        case SegmentOpened(label="program") if muted:
            return Decision(Action.UNMUTE, Reason.AD_END)
        case AvailabilityChanged(availability=a) if muted and a is not Availability.ONLINE:
            return Decision(Action.UNMUTE, Reason.OFFLINE)
        case AdRunning(open_s=open_s) if muted and open_s > max_ad_s:
            return Decision(Action.UNMUTE, Reason.MAX_AD_LENGTH)
        case AdRunning(silent_s=silent) if muted and 0 < silent_s < silent:
            return Decision(Action.UNMUTE, Reason.OFFLINE)
        case AutoMuteSwitched(enabled=False) if muted:
            return Decision(Action.UNMUTE, Reason.AUTO_MUTE_OFF)
    return None


# ---------------------------------------------------------------------------------------------------- the rule
class Publish(Protocol):
    def __call__(self, topic: str, payload: str | bytes, qos: int, retain: bool) -> bool: ...


@dataclass(frozen=True)
class MuteConfig:
    enabled: bool = True
    topic_template: str = "{prefix}/{device}/mute/set"
    prefix: str = "adbreak"
    payload_on: str = "ON"
    payload_off: str = "OFF"
    max_ad_s: float = 360.0
    silent_s: float = 0.0
    """Unmute a muted device not heard from for this long (0: off; see the module's notes)."""

    def topic(self, device: str) -> str:
        return self.topic_template.format(prefix=self.prefix, device=device)


FiringListener = Callable[[dict, dict], None]
"""Called with ``(Firing, Device)`` dicts after each firing is stored (after the commit, with the command sent)."""
BatchJob = Callable[[WriteBatch], object]
Submit = Callable[[BatchJob], object]
"""Runs a job in a write batch on the ingest worker (``Ingest.call``): the single writer."""


class AutoMute:
    """Applies :func:`decide` to ingest results, availability changes and the watchdog's ticks.

    A decision reads the mute state and records the firing in one write batch (``batch``: the ingest worker's, so
    it sees that batch's own writes; without one, a batch of its own); the command is published and the listener
    told only after that batch commits. Decisions are serialised by the store's single writer.
    """

    def __init__(self, config: MuteConfig, store: SegmentStore, publish: Publish, *,
                 on_firing: FiringListener | None = None, clock: Callable[[], float] = time.time,
                 connected: Callable[[], bool] | None = None) -> None:
        self.config = config
        self._connected = connected
        """Whether the server is connected to the broker now (the silence check needs it; None: always)."""
        self._started = clock()
        self._up_since: float | None = self._started if connected is None else None
        """Since when the server has been connected to the broker (as the watchdog saw it): silence counts from
        then at the earliest."""
        self._store = store
        self._publish = publish
        self._on_firing = on_firing
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._check_pending = threading.Event()

    # ------------------------------------------------------------------ triggers
    def on_event(self, result: IngestResult, *, retained: bool = False, late: bool = False,
                 batch: WriteBatch | None = None) -> dict | None:
        """After an event was ingested: mute on a new ad segment (not for a ``late`` one), unmute on a new program
        segment."""
        if not self.config.enabled or not result.ingested or result.opened is None:
            return None
        opened = result.opened
        trigger = SegmentOpened(label=opened["label"], age_s=self._clock() - opened["start"], retained=retained,
                                late=late)
        event_id = result.event["event_id"] if result.event else None
        return self._apply(batch, opened["device"], trigger, event_id=event_id)

    def on_availability(self, device: str, availability: Availability, *, retained: bool = False,
                        batch: WriteBatch | None = None) -> dict | None:
        if not self.config.enabled:
            return None
        return self._apply(batch, device, AvailabilityChanged(availability, retained=retained))

    def on_auto_mute(self, device: str, enabled: bool, *, batch: WriteBatch | None = None) -> dict | None:
        """After the device's auto-mute switch was set (in the same batch): turned off while muted, unmute."""
        if not self.config.enabled:
            return None
        return self._apply(batch, device, AutoMuteSwitched(enabled))

    def check(self, now: float | None = None, *, batch: WriteBatch | None = None) -> list[dict]:
        """The watchdog's look: unmute devices whose ad has been open longer than ``max_ad_s``."""
        if not self.config.enabled:
            return []
        if batch is None:
            with self._store.batch() as b:
                return self.check(now, batch=b)
        now = self._clock() if now is None else now
        if self._connected is not None:
            if not self._connected():
                self._up_since = None
            elif self._up_since is None:
                self._up_since = now
        fired = []
        for seg in batch.open_segments(label="ad"):
            if seg.muted:
                f = self._apply(batch, seg.device, AdRunning(open_s=now - seg.start,
                                                             silent_s=self._silence(seg.device, now)))
                if f is not None:
                    fired.append(f)
        return fired

    def _silence(self, device: str, now: float) -> float:
        """Seconds since ``device`` was last heard from, counted at the earliest from when this process last got
        connected to the broker; 0 while it is not (then silence says nothing about the device)."""
        if self.config.silent_s <= 0 or self._up_since is None:
            return 0.0
        heard = self._store.heard_from(device)
        return max(0.0, now - max(heard if heard is not None else self._up_since, self._up_since))

    # ------------------------------------------------------------------ firing
    def _apply(self, batch: WriteBatch | None, device: str, trigger: Trigger, *,
               event_id: str | None = None) -> dict | None:
        if batch is None:
            with self._store.batch() as b:
                return self._apply(b, device, trigger, event_id=event_id)
        decision = decide(batch.is_muted(device), trigger, max_ad_s=self.config.max_ad_s,
                          auto_mute=batch.auto_mute_enabled(device), silent_s=self.config.silent_s)
        if decision is None:
            return None
        topic = self.config.topic(device)
        payload = self.config.payload_on if decision.action is Action.MUTE else self.config.payload_off
        firing, dev = batch.record_firing(device, rule=RULE, action=decision.action.value,
                                          reason=decision.reason.value, topic=topic, payload=payload,
                                          ts=self._clock(), event_id=event_id)
        batch.after_commit(self._send, device, decision, topic, payload, firing, dev)
        return firing

    def _send(self, device: str, decision: Decision, topic: str, payload: str, firing: dict, dev: dict) -> None:
        """After the firing is stored: publish the command, tell the listener."""
        sent = self._publish(topic, payload, COMMAND_QOS, False)
        if not sent:
            log.warning("%s %s: command %s on %s not handed to the broker now (see the MQTT log)", device,
                        decision.action.value, payload, topic)
        log.info("%s: %s (%s)", device, decision.action.value, decision.reason.value)
        if self._on_firing is not None:
            try:
                self._on_firing(firing, dev)
            except Exception:  # a listener's failure must not undo a command already sent
                log.exception("firing listener failed")

    # ------------------------------------------------------------------ watchdog
    def start_watchdog(self, interval_s: float = 1.0, *, submit: Submit | None = None) -> None:
        """Look every ``interval_s``. With ``submit`` (the ingest worker's ``call``) each look runs as a job on the
        single writer, in order with the messages; at most one look waits there at a time."""
        if not self.config.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._check_pending.clear()
        self._thread = threading.Thread(target=self._watch, args=(interval_s, submit), name="adbreak-mute-watchdog",
                                        daemon=True)
        self._thread.start()

    def stop_watchdog(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _queued_check(self, batch: WriteBatch) -> None:
        try:
            self.check(batch=batch)
        finally:
            self._check_pending.clear()

    def _watch(self, interval_s: float, submit: Submit | None) -> None:
        while not self._stop.wait(interval_s):
            try:
                if submit is None:
                    self.check()
                elif not self._check_pending.is_set():
                    self._check_pending.set()
                    submit(self._queued_check)
            except Exception:  # keep watching: this is the fail-safe
                self._check_pending.clear()
                log.exception("mute watchdog check failed")
