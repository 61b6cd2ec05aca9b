"""How long a TV stays muted after its edge dies during an ad (issue 5: "unmute within 5 s of the death").

A private Mosquitto 2.0 and the real `adbreak server` (SQLite). Each trial starts a small edge process that uses the
edge agent's own MQTT link (``edge.mqtt.MqttLink``: its last will, its keepalive, retained state, QoS 1 events) and
publishes what the agent publishes during an ad: ``online``, the state, an ``ad_start`` event, telemetry every
second. Once the server's mute command (``ON``) is seen on the broker, the process is

* killed with SIGKILL (the process dies, the kernel closes its socket: the broker sends the will at once), or
* frozen with SIGSTOP (a hung or powerless Pi: the socket stays open, nothing more comes; only the keepalive or the
  server's silence check can tell),

and the time until the unmute (``OFF``) reaches a plain subscriber is measured. The frozen case is measured twice:
with the server's silence check (``silent_unmute_s`` = 3 s, the default) and without it (0: the broker's will
alone, keepalive 2 s).

    .venv/bin/python bench/bench_failsafe.py [--trials 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, Mosquitto, Server, log, median, percentile, write_result  # noqa: E402

EDGE = textwrap.dedent("""
    import sys, time
    from adbreak.wire import (Availability, EventPayload, EventType, StatePayload, TelemetryPayload, Topics,
                              new_event_id)
    from edge.mqtt import MqttLink

    device, port, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    link = MqttLink(device=device, topics=Topics("adbreak"), host="127.0.0.1", port=port, keepalive_s=2)
    link.start()
    link.wait_connected(10)
    now = time.time()
    # what the agent sends: its first state (program), then the ad_start event and the new state
    link.publish_state(StatePayload(device=device, label="program", since_ts=now - 30, since_stream_t=0.0,
                                    confidence=0.9, model_version="bench", ts=now))
    time.sleep(0.5)
    now = time.time()
    link.publish_event(EventPayload(device=device, event_id=new_event_id(), seq=seq, type=EventType.AD_START,
                                    boundary_ts=now - 1, decided_ts=now, boundary_stream_t=29.0,
                                    decided_stream_t=30.0, confidence=0.9, model_version="bench"))
    link.publish_state(StatePayload(device=device, label="ad", since_ts=now - 1, since_stream_t=29.0, confidence=0.9,
                                    model_version="bench", ts=now))
    print("ready", flush=True)
    while True:
        link.publish_telemetry(TelemetryPayload(device=device, ts=time.time(), stream_t=0.0, p_ad=0.9, smoothed=0.9,
                                                label="ad", fps=5.0, latency_ms=10.0))
        link.tick()
        time.sleep(1.0)
""")


class Watcher:
    """A plain subscriber on the device's mute command topic."""

    def __init__(self, port: int, device: str) -> None:
        self.topic = f"adbreak/{device}/mute/set"
        self.seen: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"failsafe-watch-{device}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(self.topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.seen.append((time.time(), msg.payload.decode()))
            self.cond.notify_all()

    def wait(self, payload: str, after: int, timeout: float) -> float | None:
        """Arrival time of the first ``payload`` after the ``after``-th message."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, text in self.seen[after:]:
                    if text == payload:
                        return at
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def trials(port: int, mode: str, n: int, work: Path) -> list[float]:
    device = f"fs-{mode}"
    watch = Watcher(port, device)
    script = work / "edge_link.py"
    script.write_text(EDGE)
    out: list[float] = []
    try:
        for i in range(n):
            mark = len(watch.seen)
            proc = subprocess.Popen([sys.executable, str(script), device, str(port), str(i + 1)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
                if watch.wait("ON", mark, 20) is None:
                    raise SystemExit(f"{mode}: no mute within 20 s")
                time.sleep(0.3 + 0.37 * (i % 3))  # at another point of the keepalive / telemetry cycle
                died = time.time()
                proc.send_signal(signal.SIGKILL if mode == "sigkill" else signal.SIGSTOP)
                off = watch.wait("OFF", mark, 30)
                if off is None:
                    raise SystemExit(f"{mode}: no unmute within 30 s")
                out.append(off - died)
                log(f"{mode} trial {i + 1}: unmuted {off - died:.2f} s after the death")
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.send_signal(signal.SIGCONT)
                proc.wait(10)
            time.sleep(1.0)  # the will and the interrupted segment settle
    finally:
        watch.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker:
            with Server(work / "server", broker.port):
                results["sigkill"] = trials(broker.port, "sigkill", args.trials, work)
                results["sigstop"] = trials(broker.port, "sigstop", args.trials, work)
            os.environ["ADBREAK_SERVER_SILENT_UNMUTE_S"] = "0"
            try:
                with Server(work / "server-nosilence", broker.port):
                    results["sigstop_will_only"] = trials(broker.port, "sigstop-will", args.trials, work)
            finally:
                del os.environ["ADBREAK_SERVER_SILENT_UNMUTE_S"]
    rows = []
    summary = {}
    names = {"sigkill": "edge killed (SIGKILL)", "sigstop": "edge frozen (SIGSTOP), silence check 3 s",
             "sigstop_will_only": "edge frozen (SIGSTOP), will only (keepalive 2 s)"}
    for key, xs in results.items():
        summary[key] = {"n": len(xs), "median_s": round(median(xs), 3), "p95_s": round(percentile(xs, 95), 3),
                        "max_s": round(max(xs), 3), "within_5_s": sum(x <= 5.0 for x in xs), "all_s": [round(x, 3)
                                                                                                   for x in xs]}
        s = summary[key]
        rows.append(f"| {names[key]} | {s['n']} | {s['median_s']:.2f} | {s['p95_s']:.2f} | {s['max_s']:.2f} | "
                    f"{s['within_5_s']}/{s['n']} |")
    md = "\n".join([
        "# Fail-safe: death of an edge during an ad → unmute on the broker",
        "",
        "`.venv/bin/python bench/bench_failsafe.py` — Mosquitto 2.0.11, `adbreak server` on SQLite, the edge's own",
        "MQTT link (`edge.mqtt.MqttLink`, keepalive 2 s). Seconds from the signal to the `OFF` command at a plain",
        "subscriber.",
        "",
        "| death | trials | median s | p95 s | max s | within 5 s |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    write_result("failsafe", {"trials": summary}, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
