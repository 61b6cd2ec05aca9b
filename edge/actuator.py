"""Optional mute actuators: act on the mute command topic (``<prefix>/<device>/mute/set``, ``ON`` / ``OFF``).

Three kinds, each a list of external commands per wanted state, run off the MQTT thread with a timeout; a failing,
missing or hanging command is logged and never takes the agent down.

* ``cec``: HDMI-CEC through ``cec-client`` (Debian package ``cec-utils``) in single-command mode:
  ``cec-client -s -d 1`` reads one command from stdin, sends it and exits (``-d 1``: log errors only).
  ``explicit`` (default) sends the CEC user-control codes *Mute Function* (0x65) and *Restore Volume Function*
  (0x66) as ``tx <src><dst>:44:<code>`` followed by the key release ``tx <src><dst>:45``: these set a state rather
  than toggle it, but not every TV or amplifier implements them. ``toggle`` sends cec-client's ``mute`` command
  (a mute toggle addressed to the audio system) and only when the wanted state changes. ``<src>`` is 1:
  cec-client registers as a recording device, logical address 1, unless told otherwise.
* ``lirc``: ``irsend SEND_ONCE <remote> <key>`` (default ``KEY_MUTE``). An IR mute key is a toggle on almost every
  TV, so it is sent only when the wanted state changes, assuming the TV was unmuted when the agent started.
* ``command``: a shell command of your own for ON and one for OFF.

MQTT QoS 1 may deliver a command twice: a command for the state already applied is ignored, which keeps toggles
in step. A failed command leaves the applied state unchanged, so the next command retries it.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from edge.settings import ActuatorKind, EdgeSettings

log = logging.getLogger(__name__)

CEC_SOURCE_ADDRESS = 1  # cec-client's default logical address (recording device 1)
CEC_USER_CONTROL_PRESSED = 0x44
CEC_USER_CONTROL_RELEASED = 0x45
CEC_MUTE_FUNCTION = 0x65
CEC_RESTORE_VOLUME_FUNCTION = 0x66
_STOP = object()


@dataclass(frozen=True)
class Step:
    """One external command: its argv and what to write to its stdin."""

    argv: tuple[str, ...]
    stdin: str | None = None

    def __str__(self) -> str:
        text = " ".join(self.argv)
        return f"{self.stdin.strip()!r} | {text}" if self.stdin else text


@dataclass(frozen=True)
class MutePlan:
    """The commands that mute and unmute, and whether they toggle (then sent only on a change of state)."""

    kind: str
    on: tuple[Step, ...]
    off: tuple[Step, ...]
    toggle: bool = False


def cec_plan(cec_client: str = "cec-client", address: int = 0, mode: str = "explicit") -> MutePlan:
    """HDMI-CEC commands for cec-client in single-command mode (one command per run)."""
    if not 0 <= address <= 14:
        raise ValueError(f"CEC logical address must be 0..14, got {address}")
    base = (cec_client, "-s", "-d", "1")
    if mode == "toggle":
        step = Step(base, "mute\n")
        return MutePlan("cec", (step,), (step,), toggle=True)
    if mode != "explicit":
        raise ValueError(f"CEC mode must be 'explicit' or 'toggle', got {mode!r}")
    header = f"{CEC_SOURCE_ADDRESS:X}{address:X}"
    release = Step(base, f"tx {header}:{CEC_USER_CONTROL_RELEASED:02X}\n")

    def press(code: int) -> Step:
        return Step(base, f"tx {header}:{CEC_USER_CONTROL_PRESSED:02X}:{code:02X}\n")

    return MutePlan("cec", (press(CEC_MUTE_FUNCTION), release), (press(CEC_RESTORE_VOLUME_FUNCTION), release))


def lirc_plan(remote: str, key: str = "KEY_MUTE", irsend: str = "irsend") -> MutePlan:
    step = Step((irsend, "SEND_ONCE", remote, key))
    return MutePlan("lirc", (step,), (step,), toggle=True)


def command_plan(on: str, off: str, shell: str = "/bin/sh") -> MutePlan:
    return MutePlan("command", (Step((shell, "-c", on)),), (Step((shell, "-c", off)),))


def plan_from_settings(settings: EdgeSettings) -> MutePlan | None:
    kind = settings.actuator
    if kind is ActuatorKind.NONE:
        return None
    if kind is ActuatorKind.CEC:
        return cec_plan(settings.cec_client, settings.cec_address, settings.cec_mode)
    if kind is ActuatorKind.LIRC:
        assert settings.lirc_remote  # checked by the settings
        return lirc_plan(settings.lirc_remote, settings.lirc_key)
    assert settings.actuator_command_on and settings.actuator_command_off  # checked by the settings
    return command_plan(settings.actuator_command_on, settings.actuator_command_off)


def run_steps(steps: Sequence[Step], timeout_s: float) -> bool:
    """Run each step in turn; log and stop at the first failure. True when all succeeded. Never raises."""
    for step in steps:
        try:
            proc = subprocess.run(
                list(step.argv), input=step.stdin, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            log.error("actuator command timed out after %.1f s: %s", timeout_s, step)
            return False
        except OSError as exc:
            log.error("cannot run actuator command %s: %s", step, exc)
            return False
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout or "").strip().splitlines()
            log.error("actuator command failed with exit code %d: %s%s", proc.returncode, step,
                      f" ({detail[-1]})" if detail else "")
            return False
        log.debug("actuator command ok: %s", step)
    return True


class MuteActuator:
    """Turns mute commands (MQTT payloads) into the plan's commands, on a worker thread of its own."""

    def __init__(self, plan: MutePlan, *, payload_on: str = "ON", payload_off: str = "OFF",
                 timeout_s: float = 10.0) -> None:
        self.plan = plan
        self.payload_on, self.payload_off = payload_on, payload_off
        self.timeout_s = timeout_s
        self.muted: bool | None = False if plan.toggle else None  # a toggle assumes the TV starts unmuted
        self.failures = 0
        self.applied = 0
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="mute-actuator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(self.timeout_s * 2 + 1 if timeout is None else timeout)
            self._thread = None

    def handle(self, payload: bytes) -> None:
        """The MQTT message handler: parse the payload and queue the wanted state (never blocks, never raises)."""
        text = payload.decode("utf-8", errors="replace").strip()
        if text == self.payload_on:
            wanted = True
        elif text == self.payload_off:
            wanted = False
        else:
            log.warning("ignored mute command %r (expected %r or %r)", text[:40], self.payload_on, self.payload_off)
            return
        if self._thread is None:
            self.apply(wanted)
        else:
            self._queue.put(wanted)

    def apply(self, wanted: bool) -> bool:
        """Run the plan's commands for ``wanted`` unless it is the state already applied."""
        if self.muted is wanted:
            log.debug("mute already %s: command ignored", "on" if wanted else "off")
            return True
        steps = self.plan.on if wanted else self.plan.off
        log.info("%s: %s", self.plan.kind, "mute" if wanted else "unmute")
        if run_steps(steps, self.timeout_s):
            self.muted = wanted
            self.applied += 1
            return True
        self.failures += 1
        return False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self.apply(bool(item))
            except Exception:  # run_steps never raises; this guards the thread against the unforeseen
                log.exception("mute actuator error")
