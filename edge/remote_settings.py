"""Decision settings set from the server (``settings/set``), validated, persisted and reported (``settings/state``).

The device runs ``base`` (the model bundle's decision with the device's own configuration applied: its defaults)
with the server's ``overrides`` on top. A ``settings/set`` changes the overrides (a value sets a field, ``null``
returns it to the default, a field left out stays); the result must be a valid ``DecisionConfig`` or the message is
refused (logged, counted, reported in ``settings/state`` as ``error``) and nothing changes. Accepted overrides are
written atomically to ``<state_dir>/<device>.settings.json`` before they are applied, so they survive a restart.
No Flask, no paho: the agent feeds it raw payloads and publishes what it returns.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from adbreak.atomic import write_text
from adbreak.wire import (
    SETTINGS_FIELDS,
    DecisionSettings,
    SettingsStatePayload,
    WireError,
    check_device,
    now,
    parse_settings_set,
)
from edge.decision import DecisionConfig

log = logging.getLogger(__name__)


def settings_dict(config: DecisionConfig) -> dict[str, Any]:
    """The :data:`SETTINGS_FIELDS` of a config."""
    data = config.to_dict()
    return {k: data[k] for k in SETTINGS_FIELDS}


class RemoteSettings:
    """The device's settings from the server, on top of ``base``."""

    def __init__(self, state_dir: str | os.PathLike[str], device: str, base: DecisionConfig) -> None:
        self.device = check_device(device)
        self.path = Path(state_dir) / f"{device}.settings.json"
        self.base = base
        self.overrides: dict[str, Any] = {}
        self.config = base
        self.error: str | None = None
        self.rejected = 0

    # -- start-up
    def load(self) -> DecisionConfig:
        """Read the persisted overrides (if any) and return the config to run. A missing file is no overrides; an
        unreadable or invalid one is logged and ignored (the defaults run until the server sends settings)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return self.config
        except OSError as exc:
            log.warning("cannot read %s (%s); running the default decision settings", self.path, exc)
            return self.config
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("device") != self.device:
                raise ValueError("not this device's settings")
            overrides = data.get("overrides")
            if not isinstance(overrides, dict):
                raise ValueError("no overrides object")
            config = self._merge(overrides)
        except (ValueError, TypeError) as exc:
            log.warning("ignoring the saved settings %s (%s); running the default decision settings", self.path, exc)
            return self.config
        self.overrides, self.config = dict(overrides), config
        if overrides:
            log.info("decision settings from the server (saved): %s", overrides)
        return config

    def _merge(self, overrides: dict[str, Any]) -> DecisionConfig:
        unknown = sorted(set(overrides) - set(SETTINGS_FIELDS))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}")
        return DecisionConfig.from_dict({**self.base.to_dict(), **overrides})

    # -- settings/set
    def handle(self, raw: bytes) -> DecisionConfig | None:
        """Apply one ``settings/set`` payload: the new config to run, or ``None`` when it was refused (then
        :attr:`error` says why) or changed nothing."""
        try:
            payload = parse_settings_set(raw, self.device)
        except WireError as exc:
            return self._refuse(f"{exc.reason}: {exc.message}")
        overrides = dict(self.overrides)
        for key, value in payload.changes().items():
            if value is None:
                overrides.pop(key, None)
            else:
                overrides[key] = value
        try:
            config = self._merge(overrides)
        except (ValueError, TypeError) as exc:
            return self._refuse(str(exc))
        self.error = None
        if overrides == self.overrides:
            return None
        write_text(self.path, json.dumps({"device": self.device, "overrides": overrides}, sort_keys=True) + "\n")
        self.overrides, self.config = overrides, config
        log.info("decision settings from the server: %s", overrides or "the defaults")
        return config

    def _refuse(self, why: str) -> None:
        self.rejected += 1
        self.error = " ".join(why.split())[:500]
        log.warning("refused decision settings from the server: %s", self.error)
        return None

    # -- settings/state
    def state(self) -> SettingsStatePayload:
        return SettingsStatePayload(
            device=self.device,
            settings=DecisionSettings(**settings_dict(self.config)),
            defaults=DecisionSettings(**settings_dict(self.base)),
            overrides=dict(self.overrides),
            error=self.error,
            rejected=self.rejected,
            ts=now(),
        )
