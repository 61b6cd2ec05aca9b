"""Edge settings: TOML file < environment < command line; every mistake is one readable AdbreakError line."""

from __future__ import annotations

import argparse
import os

import pytest

from adbreak.errors import AdbreakError
from edge.cli import add_parsers, parse_host_port, settings_from_args
from edge.decision import DecisionConfig
from edge.settings import ActuatorKind, EdgeSettings, load_settings

REQUIRED = {"device": "tv1", "source": "in.mp4", "model": "bundle"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("ADBREAK_EDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))


def test_defaults(tmp_path):
    s = load_settings(**REQUIRED)
    assert isinstance(s, EdgeSettings)
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_prefix, s.keepalive_s) == ("127.0.0.1", 1883, "adbreak", 2)
    assert (s.queue_size, s.realtime, s.speed, s.loop, s.telemetry_interval_s) == (8, True, 1.0, False, 1.0)
    assert s.fps is None and s.duration_s is None and s.actuator is ActuatorKind.NONE
    assert s.state_dir == tmp_path / "xdg" / "adbreak"
    assert s.mute_topic_resolved == "adbreak/tv1/mute/set"
    assert (s.mute_payload_on, s.mute_payload_off) == ("ON", "OFF")
    assert s.topics.state("tv1") == "adbreak/tv1/state"


def test_every_field_is_described():
    for name, field in EdgeSettings.model_fields.items():
        assert field.description, name


def test_file_then_environment_then_command_line(tmp_path, monkeypatch):
    cfg = tmp_path / "edge.toml"
    cfg.write_text('device = "from-file"\nsource = "a.mp4"\nmodel = "m"\nmqtt_port = 1000\nspeed = 2.0\n'
                   'mqtt_host = "file-host"\n[decision]\nmin_ad_s = 7\nwindow_s = 2.0\n')
    monkeypatch.setenv("ADBREAK_EDGE_MQTT_PORT", "2000")
    monkeypatch.setenv("ADBREAK_EDGE_SPEED", "3")
    monkeypatch.setenv("ADBREAK_EDGE_DECISION", '{"min_ad_s": 8}')
    s = load_settings(cfg, speed=4.0, device=None, decision={"min_program_s": 12})
    assert s.device == "from-file" and s.mqtt_host == "file-host"  # file only
    assert s.mqtt_port == 2000  # environment over file
    assert s.speed == 4.0  # command line over both; None means "not given"
    assert s.decision == {"min_ad_s": 8, "window_s": 2.0, "min_program_s": 12}  # merged key by key
    d = s.decision_config(DecisionConfig(min_ad_s=99, enter_threshold=0.8))
    assert (d.min_ad_s, d.window_s, d.min_program_s, d.enter_threshold) == (8, 2.0, 12, 0.8)


def test_an_edge_table_in_a_shared_file(tmp_path):
    cfg = tmp_path / "adbreak.toml"
    cfg.write_text('[server]\nport = 8080\n[edge]\ndevice = "tv2"\nsource = "x"\nmodel = "m"\nloop = true\n')
    s = load_settings(cfg)
    assert s.device == "tv2" and s.loop is True


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"device": "Living Room"}, "device"),
        ({"device": "x" * 65}, "device"),
        ({"mqtt_port": 70000}, "mqtt_port"),
        ({"speed": 0}, "speed"),
        ({"fps": -5}, "fps"),
        ({"queue_size": 0}, "queue_size"),
        ({"keepalive_s": 0}, "keepalive_s"),
        ({"mqtt_prefix": "bad prefix/#"}, "mqtt_prefix"),
        ({"actuator": "telekinesis"}, "actuator"),
        ({"actuator": "command", "actuator_command_on": "true"}, "actuator_command_off"),
        ({"actuator": "lirc"}, "lirc_remote"),
        ({"mute_topic": "{prefix}/{room}/mute"}, "mute_topic"),
        ({"mute_topic": "{prefix}/+/mute"}, "wildcards"),
        ({"mute_payload_on": "X", "mute_payload_off": "X"}, "differ"),
        ({"decision": {"min_ad": 3}}, "unknown decision setting"),
        ({"decision": {"enter_threshold": 2}}, "enter_threshold"),
        ({"crop": "1,2,3"}, "crop"),
        ({"crop": "0,0,10,10", "corners": "0,0,10,0,10,10,0,10"}, "not both"),
        ({"bogus": 1}, "unknown setting 'bogus'"),
    ],
)
def test_bad_settings_are_one_readable_line(values, needle):
    with pytest.raises(AdbreakError) as info:
        load_settings(**{**REQUIRED, **values})
    message = str(info.value)
    assert needle in message and "\n" not in message and message.startswith("invalid edge settings")


def test_missing_required_settings_say_where_to_give_them():
    with pytest.raises(AdbreakError, match=r"device is required .*ADBREAK_EDGE_DEVICE"):
        load_settings(source="x", model="m")


def test_env_values_are_validated_too(monkeypatch):
    monkeypatch.setenv("ADBREAK_EDGE_QUEUE_SIZE", "many")
    with pytest.raises(AdbreakError, match="queue_size"):
        load_settings(**REQUIRED)


def test_the_password_is_never_echoed(monkeypatch):
    monkeypatch.setenv("ADBREAK_EDGE_MQTT_PASSWORD", "hunter2")
    s = load_settings(**REQUIRED)
    assert s.mqtt_password.get_secret_value() == "hunter2" and "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("device = ", "not valid TOML"), ('mqtt_port = 1\nunknown_key = 2\ndevice="a"\nsource="b"\nmodel="c"\n',
                                        "unknown setting 'unknown_key'"), ('edge = 3\n', "must be a table")],
)
def test_bad_config_files(tmp_path, text, problem):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(AdbreakError, match=problem):
        load_settings(cfg)
    with pytest.raises(AdbreakError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")


def test_actuator_settings():
    s = load_settings(**REQUIRED, actuator="command", actuator_command_on="amixer set Master mute",
                      actuator_command_off="amixer set Master unmute", mute_topic="home/{device}/mute")
    assert s.actuator is ActuatorKind.COMMAND and s.mute_topic_resolved == "home/tv1/mute"


# -- the command line ----------------------------------------------------------------------------------------------
def edge_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="adbreak")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true")
    add_parsers(sub, common)
    return parser.parse_args(["edge", *argv])


def test_cli_options_map_onto_settings(tmp_path):
    args = edge_args("--source", "in.mp4", "--device", "tv3", "--model", "b", "--mqtt", "broker.lan:1884",
                     "--prefix", "home/ads", "--fps", "4", "--speed", "4", "--loop", "--no-realtime",
                     "--duration", "30", "--state-dir", str(tmp_path), "--keepalive", "2", "--min-program", "10",
                     "--enter", "0.8")
    assert args.func.__name__ == "cmd_edge"
    s = settings_from_args(args)
    assert (s.device, s.source, str(s.model)) == ("tv3", "in.mp4", "b")
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_prefix, s.keepalive_s) == ("broker.lan", 1884, "home/ads", 2)
    assert (s.fps, s.speed, s.loop, s.realtime, s.duration_s, s.state_dir) == (4, 4, True, False, 30, tmp_path)
    assert s.decision == {"min_program_s": 10, "enter_threshold": 0.8}


def test_cli_leaves_unset_options_to_file_and_environment(monkeypatch):
    monkeypatch.setenv("ADBREAK_EDGE_LOOP", "true")
    monkeypatch.setenv("ADBREAK_EDGE_REALTIME", "false")
    s = settings_from_args(edge_args("--source", "x", "--device", "tv1", "--model", "m"))
    assert s.loop is True and s.realtime is False and s.mqtt_port == 1883


@pytest.mark.parametrize(
    ("text", "expected"),
    [("broker", ("broker", None)), ("broker:1884", ("broker", 1884)), ("[::1]:1885", ("::1", 1885)),
     ("[fe80::1]", ("fe80::1", None))],
)
def test_host_port(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["broker:", "broker:0", "broker:99999", ":1883", "[::1", "broker:x"])
def test_bad_host_port(text):
    with pytest.raises(AdbreakError, match="--mqtt"):
        parse_host_port(text)
