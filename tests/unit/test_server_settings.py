"""Server settings: sources in order, and every mistake as one readable AdbreakError line."""

from __future__ import annotations

from pathlib import Path

import pytest

from adbreak.errors import AdbreakError
from server.settings import DEFAULT_WEB_DIR, ServerSettings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("ADBREAK_SERVER_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def test_defaults():
    s = load_settings()
    assert s.database_url == "sqlite:///adbreak.db"
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_prefix, s.mqtt_client_id) == ("127.0.0.1", 1883, "adbreak",
                                                                            "adbreak-server")
    assert (s.host, s.port) == ("0.0.0.0", 8080)
    assert s.mute_enabled and s.mute_topic_for("tv1") == "adbreak/tv1/mute/set"
    assert (s.mute_payload_on, s.mute_payload_off, s.max_ad_s) == ("ON", "OFF", 360.0)
    assert s.web_dir == DEFAULT_WEB_DIR and s.web_dir.parts[-2:] == ("web", "dist")
    assert s.devices is None and s.mqtt_username is None and s.mqtt_password is None


def test_every_field_is_described():
    for name, field in ServerSettings.model_fields.items():
        assert field.description, name


def test_file_then_env_then_overrides(tmp_path, monkeypatch):
    cfg = write(tmp_path, 'mqtt_host = "file-host"\nmqtt_port = 1999\nport = 9000\ndevices = ["tv2", "tv1"]\n'
                          'mqtt_password = "hunter2"\n')
    s = load_settings(cfg)
    assert (s.mqtt_host, s.mqtt_port, s.port, s.devices) == ("file-host", 1999, 9000, ["tv1", "tv2"])
    assert s.mqtt_password.get_secret_value() == "hunter2" and "hunter2" not in repr(s)
    monkeypatch.setenv("ADBREAK_SERVER_MQTT_HOST", "env-host")
    monkeypatch.setenv("ADBREAK_SERVER_DEVICES", "tv3, tv4")
    s = load_settings(cfg)
    assert (s.mqtt_host, s.mqtt_port, s.devices) == ("env-host", 1999, ["tv3", "tv4"])
    s = load_settings(cfg, mqtt_host="cli-host", port=None)  # None: an option not given
    assert (s.mqtt_host, s.port) == ("cli-host", 9000)


def test_mute_topic_template(tmp_path):
    s = load_settings(mute_topic="home/{device}/mute", mqtt_prefix="a/b")
    assert s.mute_topic_for("tv1") == "home/tv1/mute"
    assert load_settings(mqtt_prefix="a/b").mute_topic_for("tv1") == "a/b/tv1/mute/set"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"mqtt_port": 70000}, "mqtt_port: Input should be less than or equal to 65535 (got 70000)"),
        ({"port": 0}, "port: Input should be greater than or equal to 1"),
        ({"max_ad_s": 0}, "max_ad_s: Input should be greater than 0"),
        ({"mute_topic": "{prefix}/mute"}, "mute_topic: must contain {device}"),
        ({"mute_topic": "{prefix}/{dev}/mute"}, "unknown placeholder(s) ['dev']"),
        ({"mute_topic": "{prefix}/{device}/#"}, "must not contain the MQTT wildcards"),
        ({"mute_topic": "{prefix/{device}"}, "mute_topic: bad template"),
        ({"mqtt_prefix": "bad prefix"}, "mqtt_prefix: MQTT prefix 'bad prefix' must be topic levels"),
        ({"devices": ["TV 1"]}, "devices: device name(s) ['TV 1'] must match"),
        ({"devices": []}, "an empty allowlist would refuse every device"),
        ({"mute_payload_on": ""}, "mute_payload_on: String should have at least 1 character"),
        ({"bogus": 1}, "unknown setting 'bogus'"),
        ({"mqtt_share_group": "a/b"}, "mqtt_share_group: String should match pattern"),
    ],
)
def test_bad_settings_are_one_readable_line(overrides, expected):
    with pytest.raises(AdbreakError) as err:
        load_settings(**overrides)
    message = str(err.value)
    assert message.startswith("invalid server settings")
    assert expected in message
    assert "\n" not in message


def test_bad_env_value(monkeypatch):
    monkeypatch.setenv("ADBREAK_SERVER_MQTT_PORT", "abc")
    with pytest.raises(AdbreakError, match=r"mqtt_port: Input should be a valid integer.*\(got 'abc'\)"):
        load_settings()


def test_unknown_key_in_the_file(tmp_path):
    cfg = write(tmp_path, 'mqtt_hots = "typo"\n')
    with pytest.raises(AdbreakError, match=r"unknown setting 'mqtt_hots'"):
        load_settings(cfg)


def test_password_is_never_echoed(tmp_path):
    cfg = write(tmp_path, "mqtt_password = 12345\n")
    with pytest.raises(AdbreakError) as err:
        load_settings(cfg)
    assert "mqtt_password" in str(err.value) and "12345" not in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(AdbreakError, match="config file .*nope.toml not found"):
        load_settings(tmp_path / "nope.toml")
    cfg = write(tmp_path, "mqtt_port = = 3\n")
    with pytest.raises(AdbreakError, match="is not valid TOML"):
        load_settings(cfg)


def test_admin_password_empty_is_unset_and_short_is_refused(monkeypatch):
    monkeypatch.setenv("ADBREAK_SERVER_ADMIN_PASSWORD", "")  # `VAR=` in a compose file: a password is generated
    assert load_settings().admin_password is None
    monkeypatch.setenv("ADBREAK_SERVER_ADMIN_PASSWORD", "tiny")
    with pytest.raises(AdbreakError, match="admin_password: must have at least 8 characters") as err:
        load_settings()
    assert "tiny" not in str(err.value)
    monkeypatch.setenv("ADBREAK_SERVER_ADMIN_PASSWORD", "long enough")
    assert load_settings().admin_password.get_secret_value() == "long enough"
