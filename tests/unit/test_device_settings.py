"""Decision settings set from the server: the edge's ``RemoteSettings`` (validate, persist, report), the decision
machine's ``reconfigure`` (state kept), and the server's pure view / merge (``server.device_settings``)."""

from __future__ import annotations

import json

import pytest

from adbreak.wire import SETTINGS_FIELDS, SettingsSetPayload, parse_settings_set, parse_settings_state
from edge.decision import AdStateMachine, DecisionConfig, Label
from edge.remote_settings import RemoteSettings, settings_dict
from server.device_settings import (
    BUILTIN_DEFAULTS,
    SettingsError,
    merge_desired,
    reported_json,
    same_settings,
    set_payload,
    settings_view,
)

BASE = DecisionConfig(min_program_s=12.0)  # a device whose own configuration changed one default


def set_raw(**fields) -> bytes:
    return SettingsSetPayload(device="tv1", **fields).to_bytes()


# ---------------------------------------------------------------------------------------------------- the edge
def test_a_set_changes_the_overrides_persists_them_and_reports(tmp_path):
    rs = RemoteSettings(tmp_path, "tv1", BASE)
    assert rs.load() == BASE  # no file yet
    config = rs.handle(set_raw(min_ad_s=6.0, enter_threshold=0.8))
    assert config is not None and config.min_ad_s == 6.0 and config.enter_threshold == 0.8
    assert config.min_program_s == 12.0 and config.max_lookback_s == BASE.max_lookback_s
    saved = json.loads((tmp_path / "tv1.settings.json").read_text())
    assert saved == {"device": "tv1", "overrides": {"enter_threshold": 0.8, "min_ad_s": 6.0}}

    state = parse_settings_state(rs.state().to_bytes(), "tv1")
    assert state.settings.min_ad_s == 6.0 and state.defaults.min_ad_s == BASE.min_ad_s
    assert state.defaults.min_program_s == 12.0 and state.overrides == {"enter_threshold": 0.8, "min_ad_s": 6.0}
    assert state.error is None and state.rejected == 0

    # a restart: the saved overrides are read back
    again = RemoteSettings(tmp_path, "tv1", BASE)
    assert again.load() == config and again.overrides == rs.overrides


def test_null_returns_a_field_to_the_default_and_absent_fields_stay(tmp_path):
    rs = RemoteSettings(tmp_path, "tv1", BASE)
    rs.handle(set_raw(min_ad_s=6.0, exit_threshold=0.2))
    config = rs.handle(set_raw(min_ad_s=None))
    assert config.min_ad_s == BASE.min_ad_s and config.exit_threshold == 0.2
    assert rs.overrides == {"exit_threshold": 0.2}
    assert rs.handle(set_raw(exit_threshold=0.2)) is None  # nothing changed: nothing to apply


@pytest.mark.parametrize("raw, why", [
    (set_raw(enter_threshold=0.25), "greater than exit_threshold"),  # does not fit with exit 0.3
    (b'{"v": 1, "device": "tv1", "min_ad_s": -3}', "bad_payload"),
    (b'{"v": 1, "device": "tv2", "min_ad_s": 3}', "device_mismatch"),
    (b"not json", "bad_json"),
    (b'{"v": 1, "device": "tv1", "window_s": 40}', "max_lookback_s"),  # the window must fit the look-back
])
def test_a_bad_set_is_refused_counted_reported_and_changes_nothing(tmp_path, raw, why):
    rs = RemoteSettings(tmp_path, "tv1", BASE)
    rs.handle(set_raw(min_ad_s=7.0))
    before = (rs.config, dict(rs.overrides), (tmp_path / "tv1.settings.json").read_text())
    assert rs.handle(raw) is None
    assert (rs.config, rs.overrides, (tmp_path / "tv1.settings.json").read_text()) == before
    assert rs.rejected == 1 and why in rs.error
    state = rs.state()
    assert state.error == rs.error and state.rejected == 1
    rs.handle(set_raw(min_ad_s=8.0))  # the next good one clears the error
    assert rs.error is None and rs.rejected == 1


@pytest.mark.parametrize("content", [
    "{broken",
    '{"device": "tv2", "overrides": {"min_ad_s": 3}}',
    '{"device": "tv1", "overrides": {"enter_threshold": 0.1}}',
    '{"device": "tv1", "overrides": {"bogus": 1}}',
    '{"device": "tv1"}',
])
def test_a_bad_saved_file_is_ignored(tmp_path, content):
    (tmp_path / "tv1.settings.json").write_text(content)
    rs = RemoteSettings(tmp_path, "tv1", BASE)
    assert rs.load() == BASE and rs.overrides == {}


# ---------------------------------------------------------------------------------------------------- the machine
def test_reconfigure_keeps_the_state_and_applies_new_thresholds():
    m = AdStateMachine(DecisionConfig(min_ad_s=2.0, min_program_s=2.0))
    t = 0.0
    for _ in range(50):  # 10 s of program
        m.update(t, 0.1)
        t += 0.2
    for _ in range(50):  # 10 s of ad
        m.update(t, 0.95)
        t += 0.2
    assert m.state is Label.AD
    boundary = m.boundary_t
    m.reconfigure(DecisionConfig(min_ad_s=2.0, min_program_s=2.0, exit_threshold=0.6, enter_threshold=0.8))
    assert m.state is Label.AD and m.boundary_t == boundary  # nothing reset
    step = None
    for _ in range(10):  # p 0.5: above the old exit (0.3), at or below the new one (0.6)
        step = m.update(t, 0.5)
        t += 0.2
        if step.transition:
            break
    assert step.transition is not None and step.transition.to_label is Label.PROGRAM


def test_reconfigure_to_another_smoothing_restarts_the_smoothing():
    m = AdStateMachine(DecisionConfig(window_s=2.0))
    for i in range(20):
        m.update(i * 0.2, 0.9)
    m.reconfigure(DecisionConfig(smoothing="ema", ema_tau_s=0.5))
    assert m.update(4.0, 0.1).smoothed == pytest.approx(0.1)  # the average starts from the next frame
    m.reconfigure(DecisionConfig(window_s=2.0))
    assert m.update(4.2, 0.3).smoothed == pytest.approx(0.3)  # a new window, not the old frames
    assert m.state is not None


# ---------------------------------------------------------------------------------------------------- the server
def reported(settings: dict, defaults: dict, error: str | None = None) -> str:
    from adbreak.wire import DecisionSettings, SettingsStatePayload

    return reported_json(SettingsStatePayload(device="tv1", settings=DecisionSettings(**settings),
                                              defaults=DecisionSettings(**defaults), error=error, ts=1.0))


def test_view_before_anything_is_known():
    v = settings_view(None, None)
    assert v == {"defaults": None, "desired": None, "reported": None, "effective": BUILTIN_DEFAULTS,
                 "pending": False, "error": None}


def test_view_pending_until_the_device_reports_the_chosen_settings():
    defaults = {**BUILTIN_DEFAULTS, "min_program_s": 12.0}
    desired = {"min_ad_s": 6.0}
    v = settings_view(json.dumps(desired), reported(defaults, defaults))
    assert v["pending"] and v["effective"] == {**defaults, "min_ad_s": 6.0} and v["defaults"] == defaults
    v = settings_view(json.dumps(desired), reported({**defaults, "min_ad_s": 6.0}, defaults))
    assert not v["pending"] and v["reported"]["min_ad_s"] == 6.0
    # a reset ({}) is pending until the device runs its defaults again
    assert settings_view("{}", reported({**defaults, "min_ad_s": 6.0}, defaults))["pending"]
    assert not settings_view("{}", reported(defaults, defaults))["pending"]
    # never chosen: nothing is pending, the effective settings are what the device runs
    v = settings_view(None, reported({**defaults, "min_ad_s": 6.0}, defaults, error="refused"))
    assert not v["pending"] and v["effective"]["min_ad_s"] == 6.0 and v["error"] == "refused"


def test_merge_desired_validates_the_whole():
    assert merge_desired(None, {"min_ad_s": 6, "exit_threshold": None}, None) == {"min_ad_s": 6}
    assert merge_desired({"min_ad_s": 6}, {"min_ad_s": None, "smoothing": "ema"}, None) == {"smoothing": "ema"}
    with pytest.raises(SettingsError, match="greater than exit_threshold"):
        merge_desired({"exit_threshold": 0.5}, {"enter_threshold": 0.4}, None)
    with pytest.raises(SettingsError, match="greater than exit_threshold"):  # against the device's defaults
        merge_desired(None, {"enter_threshold": 0.5}, {**BUILTIN_DEFAULTS, "exit_threshold": 0.6})
    with pytest.raises(SettingsError, match="unknown"):
        merge_desired(None, {"max_lookback_s": 3}, None)


def test_set_payload_sends_every_field():
    p = parse_settings_set(set_payload("tv1", {"min_ad_s": 6.0}).to_bytes(), "tv1")
    assert p.changes() == {**{k: None for k in SETTINGS_FIELDS}, "min_ad_s": 6.0}


def test_same_settings_and_the_edge_dict_agree():
    assert same_settings(settings_dict(DecisionConfig()), BUILTIN_DEFAULTS)
    assert not same_settings({**BUILTIN_DEFAULTS, "min_ad_s": 10.000001}, BUILTIN_DEFAULTS)
    assert not same_settings(None, BUILTIN_DEFAULTS)
