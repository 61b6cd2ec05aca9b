"""The ``adbreak edge`` command: run the live edge agent.

``adbreak/cli.py`` adds it with ``edge.cli.add_parsers(sub, common)``; ``python -m edge [-v] --source ...`` runs the
same command on its own.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from adbreak.errors import AdbreakError
from adbreak.mqtt_security import add_mqtt_security_options, mqtt_security_overrides
from edge.cli_options import add_decider_option, add_decision_options, add_geometry_options, decision_changes
from edge.cli_options import positive as _positive

log = logging.getLogger(__name__)

ACTUATORS = ("none", "cec", "lirc", "command")


def parse_host_port(text: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> ``(host, port or None)``; :class:`AdbreakError` when malformed."""
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise AdbreakError(f"--mqtt {text!r}: expected HOST:PORT or [IPv6]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    if not host:
        raise AdbreakError(f"--mqtt {text!r}: the host is missing")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise AdbreakError(f"--mqtt {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The edge command's options (without -v / -q, which the caller's parsers own)."""
    p.add_argument("--source", metavar="SRC",
                   help="picamera2, /dev/videoN, a video file, an RTSP/HTTP URL, or an image folder")
    p.add_argument("--device", metavar="NAME", help="this device's name in the MQTT topics (e.g. living-room)")
    p.add_argument("--model", metavar="BUNDLE", help="model bundle directory or archive (optional: without it the "
                   "agent decides on the broadcast cues alone; the learned logo and ad memory are kept in --state-dir)")
    p.add_argument("--config", metavar="FILE", help="TOML settings file (see docs/edge.md); the environment "
                   "(ADBREAK_EDGE_*) overrides it and these options override both")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT broker (127.0.0.1:1883)")
    p.add_argument("--prefix", metavar="PREFIX", help="MQTT topic prefix (adbreak)")
    p.add_argument("--keepalive", type=int, metavar="S", help="MQTT keepalive seconds; the 'offline' will follows "
                   "1.5 x this after the agent vanishes (2)")
    p.add_argument("--fps", type=_positive, help="analysis rate (default: the bundle's)")
    p.add_argument("--speed", type=_positive, metavar="X", help="replay speed of a video file (1)")
    p.add_argument("--loop", action="store_true", default=None, help="replay a video file forever")
    p.add_argument("--no-realtime", dest="realtime", action="store_false", default=None,
                   help="read a file as fast as it decodes instead of at its own pace")
    p.add_argument("--duration", type=_positive, metavar="S", help="stop after S seconds of stream time")
    p.add_argument("--state-dir", metavar="DIR", help="where the event sequence counter is kept "
                   "(~/.local/state/adbreak)")
    p.add_argument("--actuator", choices=ACTUATORS, help="act on the mute command topic: HDMI-CEC, LIRC, or "
                   "actuator_command_on/off from the config (none)")
    add_mqtt_security_options(p)
    add_geometry_options(p)
    add_decider_option(p)
    add_decision_options(p)


def add_parsers(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add the ``edge`` command to ``adbreak``'s sub-command parsers."""
    p = subparsers.add_parser(
        "edge", parents=[common_parent], help="the live edge agent: detect on a source, publish over MQTT",
        description="Run the detector live on a camera, capture device, stream, video file or image folder and "
        "publish availability, state, ad_start/ad_end events and telemetry over MQTT. Stops at the end of a file, "
        "after --duration, or on SIGTERM / Ctrl-C (exit 0 after publishing 'stopped').",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_edge)


def settings_from_args(args: argparse.Namespace):
    from edge.settings import load_settings

    overrides: dict[str, Any] = {
        "source": args.source,
        "device": args.device,
        "model": args.model,
        "mqtt_prefix": args.prefix,
        "keepalive_s": args.keepalive,
        "fps": args.fps,
        "speed": args.speed,
        "loop": args.loop,
        "realtime": args.realtime,
        "duration_s": args.duration,
        "state_dir": args.state_dir,
        "actuator": args.actuator,
        "crop": args.crop,
        "corners": args.corners,
        "decider": args.decider,
        **mqtt_security_overrides(args),
    }
    if args.mqtt:
        host, port = parse_host_port(args.mqtt)
        overrides["mqtt_host"] = host
        overrides["mqtt_port"] = port
    decision = decision_changes(args)
    if decision:
        overrides["decision"] = decision
    return load_settings(args.config, **overrides)


def cmd_edge(args: argparse.Namespace) -> int:
    from edge.agent import EdgeAgent

    agent = EdgeAgent(settings_from_args(args))
    with _stop_on_signals(agent.stop):
        return agent.run()


class _stop_on_signals:
    """SIGTERM / SIGINT call ``stop`` once (graceful); a second signal aborts with KeyboardInterrupt."""

    def __init__(self, stop) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}
        self._count = 0

    def _handle(self, signum, frame) -> None:
        self._count += 1
        if self._count > 1:
            raise KeyboardInterrupt
        log.warning("%s: stopping (again to abort)", signal.Signals(signum).name)
        self._stop()

    def __enter__(self) -> _stop_on_signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
