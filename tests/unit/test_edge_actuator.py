"""Mute actuators: the commands they build, and that a failing command is logged, never raised."""

from __future__ import annotations

import logging
import time

import pytest

from edge.actuator import MuteActuator, MutePlan, Step, cec_plan, command_plan, lirc_plan, plan_from_settings, run_steps
from edge.settings import load_settings

REQUIRED = {"device": "tv1", "source": "in.mp4", "model": "bundle"}


def test_cec_explicit_sends_mute_function_and_restore_volume_with_a_key_release():
    plan = cec_plan()
    base = ("cec-client", "-s", "-d", "1")
    assert plan.on == (Step(base, "tx 10:44:65\n"), Step(base, "tx 10:45\n"))
    assert plan.off == (Step(base, "tx 10:44:66\n"), Step(base, "tx 10:45\n"))
    assert not plan.toggle
    to_amp = cec_plan("/usr/bin/cec-client", address=5)
    assert to_amp.on[0] == Step(("/usr/bin/cec-client", "-s", "-d", "1"), "tx 15:44:65\n")


def test_cec_toggle_uses_cec_clients_mute_command():
    plan = cec_plan(mode="toggle")
    assert plan.on == plan.off == (Step(("cec-client", "-s", "-d", "1"), "mute\n"),) and plan.toggle


@pytest.mark.parametrize("bad", [{"address": 15}, {"address": -1}, {"mode": "loud"}])
def test_cec_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        cec_plan(**bad)


def test_lirc_and_command_plans():
    lirc = lirc_plan("samsung", "KEY_MUTE")
    assert lirc.on == lirc.off == (Step(("irsend", "SEND_ONCE", "samsung", "KEY_MUTE")),) and lirc.toggle
    cmd = command_plan("amixer set Master mute", "amixer set Master unmute")
    assert cmd.on == (Step(("/bin/sh", "-c", "amixer set Master mute")),) and not cmd.toggle
    assert cmd.off == (Step(("/bin/sh", "-c", "amixer set Master unmute")),)


def test_plans_from_settings():
    assert plan_from_settings(load_settings(**REQUIRED)) is None
    cec = plan_from_settings(load_settings(**REQUIRED, actuator="cec", cec_address=5, cec_mode="toggle"))
    assert cec == cec_plan(address=5, mode="toggle")
    lirc = plan_from_settings(load_settings(**REQUIRED, actuator="lirc", lirc_remote="lg"))
    assert lirc == lirc_plan("lg")
    cmd = plan_from_settings(load_settings(**REQUIRED, actuator="command", actuator_command_on="a",
                                           actuator_command_off="b"))
    assert cmd == command_plan("a", "b")


def test_a_failing_command_is_logged_not_raised(caplog):
    with caplog.at_level(logging.ERROR, logger="edge.actuator"):
        ok = run_steps([Step(("/bin/sh", "-c", "echo no adapter >&2; exit 3"))], timeout_s=5)
    assert ok is False
    assert "exit code 3" in caplog.text and "no adapter" in caplog.text


def test_a_missing_program_is_logged_not_raised(caplog):
    with caplog.at_level(logging.ERROR, logger="edge.actuator"):
        assert run_steps([Step(("/nonexistent/cec-client", "-s"), "mute\n")], timeout_s=5) is False
    assert "cannot run actuator command" in caplog.text


def test_a_hanging_command_is_killed_after_the_timeout(caplog):
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="edge.actuator"):
        assert run_steps([Step(("sleep", "10"))], timeout_s=0.3) is False
    assert time.monotonic() - started < 5 and "timed out" in caplog.text


def test_steps_run_in_order_with_their_stdin_and_stop_at_the_first_failure(tmp_path):
    out = tmp_path / "out"
    steps = [Step(("/bin/sh", "-c", f"cat >> {out}"), "first\n"), Step(("/bin/sh", "-c", "exit 1")),
             Step(("/bin/sh", "-c", f"echo never >> {out}"))]
    assert run_steps(steps, timeout_s=5) is False
    assert out.read_text() == "first\n"


def test_actuator_applies_on_and_off_and_ignores_repeats(tmp_path):
    log_file = tmp_path / "tv"
    act = MuteActuator(command_plan(f"echo on >> {log_file}", f"echo off >> {log_file}"))
    for payload in (b"ON", b"ON", b" OFF\n", b"OFF", b"ON"):  # QoS 1 may deliver a command twice
        act.handle(payload)
    assert log_file.read_text().split() == ["on", "off", "on"]
    assert act.muted is True and act.applied == 3 and act.failures == 0


def test_actuator_ignores_unknown_payloads(caplog, tmp_path):
    act = MuteActuator(command_plan(f"touch {tmp_path}/on", f"touch {tmp_path}/off"), payload_on="mute",
                       payload_off="unmute")
    with caplog.at_level(logging.WARNING, logger="edge.actuator"):
        act.handle(b"ON")
        act.handle(b"\xff\xfe")
    assert "ignored mute command" in caplog.text and list(tmp_path.iterdir()) == []
    act.handle(b"mute")
    assert (tmp_path / "on").exists()


def test_a_failed_toggle_keeps_the_state_so_the_next_command_retries(tmp_path, caplog):
    flag = tmp_path / "ok"
    plan = MutePlan("lirc", (Step(("/bin/sh", "-c", f"test -e {flag}")),),
                    (Step(("/bin/sh", "-c", f"test -e {flag}")),), toggle=True)
    act = MuteActuator(plan)
    with caplog.at_level(logging.ERROR, logger="edge.actuator"):
        act.handle(b"ON")
    assert act.muted is False and act.failures == 1
    flag.touch()
    act.handle(b"ON")
    assert act.muted is True and act.applied == 1
    act.handle(b"ON")  # a toggle is sent only on a change
    assert act.applied == 1


def test_the_worker_thread_runs_commands_off_the_callers_thread(tmp_path):
    out = tmp_path / "out"
    act = MuteActuator(command_plan(f"sleep 0.3; echo on >> {out}", f"echo off >> {out}"), timeout_s=5)
    act.start()
    started = time.monotonic()
    act.handle(b"ON")
    act.handle(b"OFF")
    assert time.monotonic() - started < 0.2  # the MQTT thread is not held up
    act.stop()
    assert out.read_text().split() == ["on", "off"]
