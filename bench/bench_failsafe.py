"""How long a TV stays muted after its edge dies during an ad (issue 5: "unmute within 5 s of the death").

A private Mosquitto 2.0, the real `adbreak server` (SQLite, auto-mute on) and the real agent, `adbreak edge`
(``python -m adbreak edge``, no model: the broadcast cues, keepalive 2 s, its default), replaying a built `heldout`
broadcast at ``--speed`` (4x: an ad comes sooner; a live source at a faster pace, as in `bench_pipeline.py`'s RSS
run). Before the trials the agent watches that broadcast once against a broker of its own, with the state folder it
keeps (as `bench_live.py` does): each trial is a restart of a device that knows its channel. Each trial starts the
agent, waits until it has published an ``ad_start`` and the server's mute command (``ON``) is on the broker, waits a
little more (0.30, 0.67 or 1.04 s: another point of the keepalive and telemetry cycles), and then

* kills it with SIGKILL (the process dies, the kernel closes its socket: the broker sends the will at once), or
* freezes it with SIGSTOP (a hung or powerless Pi: the socket stays open, nothing more comes; only the keepalive or
  the server's silence check can tell),

and measures the time until the unmute (``OFF``) reaches a plain subscriber. The frozen case is measured twice:
with the server's silence check (``silent_unmute_s`` = 3 s, the default) and without it (0: the broker's will
alone). A trial whose ad ended (an ``ad_end`` or an ``OFF``) before the signal is void and run again.

    .venv/bin/python bench/bench_failsafe.py [--trials 10] [--speed 4] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    ROOT,
    Mosquitto,
    Server,
    broadcast,
    log,
    median,
    parse_args,
    percentile,
    write_result,
)

QUICK = {"trials": 2}
BROADCAST = {"name": "failsafe-3m", "seed": 5, "duration_s": 180.0, "pool": "heldout"}
"""A 3-minute `heldout` broadcast whose first break starts 47 s in (the builder's seed 5)."""
OFFSETS = (0.30, 0.67, 1.04)
MAX_VOID = 5


class Watcher:
    """A plain subscriber on the device's mute command topic and its events (an event is seen as its type)."""

    def __init__(self, port: int, device: str) -> None:
        self.topics = (f"adbreak/{device}/mute/set", f"adbreak/{device}/event")
        self.seen: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"failsafe-watch-{device}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        for topic in self.topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            text = msg.payload.decode()
            if msg.topic.endswith("/event"):
                text = json.loads(text)["type"]
            self.seen.append((time.time(), text))
            self.cond.notify_all()

    def wait(self, payload: str, after: int, timeout: float, not_before: float = 0.0) -> float | None:
        """Arrival time of the first ``payload`` after the ``after``-th message (and at ``not_before`` or later)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, text in self.seen[after:]:
                    if text == payload and at >= not_before:
                        return at
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def agent(video: Path, device: str, port: int, state: Path, log_to: Path, *extra: str) -> subprocess.Popen:
    """The real agent, ``python -m adbreak edge``, replaying ``video``."""
    with open(log_to, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "adbreak", "edge", "--source", str(video), "--device", device,
                                 "--mqtt", f"127.0.0.1:{port}", "--state-dir", str(state), "-q", *extra],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def trials(port: int, mode: str, n: int, video: Path, state: Path, speed: float, work: Path) -> dict:
    device = f"fs-{mode}"
    watch = Watcher(port, device)
    out: list[float] = []
    ad_to_mute: list[float] = []
    void = 0
    try:
        while len(out) < n:
            i = len(out)
            mark = len(watch.seen)
            proc = agent(video, device, port, state, work / f"edge-{mode}.log", "--speed", f"{speed:g}")
            try:
                started = watch.wait("ad_start", mark, 60 + 180 / speed)
                if started is None:
                    raise SystemExit(f"{mode}: the agent published no ad_start; see {work / f'edge-{mode}.log'}")
                muted = watch.wait("ON", mark, 20, not_before=started)
                if muted is None:
                    raise SystemExit(f"{mode}: the server sent no mute within 20 s of the ad_start")
                time.sleep(OFFSETS[i % len(OFFSETS)])
                if any(text in ("ad_end", "OFF") and at >= started for at, text in watch.seen[mark:]):
                    void += 1  # the ad was over before the death: not the case measured
                    log(f"{mode}: the ad ended before the signal; trial run again")
                    if void > MAX_VOID:
                        raise SystemExit(f"{mode}: {void} trials void (the ads end too soon at {speed:g}x)")
                    continue
                died = time.time()
                proc.send_signal(signal.SIGKILL if mode == "sigkill" else signal.SIGSTOP)
                off = watch.wait("OFF", mark, 30, not_before=died)
                if off is None:
                    raise SystemExit(f"{mode}: no unmute within 30 s")
                out.append(off - died)
                ad_to_mute.append(muted - started)
                log(f"{mode} trial {i + 1}: unmuted {off - died:.2f} s after the death")
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.send_signal(signal.SIGCONT)
                proc.wait(10)
            time.sleep(1.0)  # the will and the interrupted segment settle
    finally:
        watch.close()
    return {"unmute_s": out, "ad_start_to_mute_s": ad_to_mute, "void": void}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="per case")
    parser.add_argument("--speed", type=float, default=4.0, help="the agent's replay speed")
    args = parse_args(parser, QUICK)
    video, _truth, _meta = broadcast(BROADCAST["name"], seed=BROADCAST["seed"], duration_s=BROADCAST["duration_s"],
                                     pool=BROADCAST["pool"])
    measured = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        state = work / "edge-state"
        log("the agent first watches the broadcast once (its own broker): it learns the channel")
        with Mosquitto(work / "broker-before") as first:
            if agent(video, "fs-first", first.port, state, work / "edge-first.log", "--no-realtime").wait() != 0:
                raise SystemExit(f"the agent failed on its first run: {(work / 'edge-first.log').read_text()[-2000:]}")
        with Mosquitto(work / "broker") as broker:
            with Server(work / "server", broker.port):
                measured["sigkill"] = trials(broker.port, "sigkill", args.trials, video, state, args.speed, work)
                measured["sigstop"] = trials(broker.port, "sigstop", args.trials, video, state, args.speed, work)
            os.environ["ADBREAK_SERVER_SILENT_UNMUTE_S"] = "0"
            try:
                with Server(work / "server-nosilence", broker.port):
                    measured["sigstop_will_only"] = trials(broker.port, "sigstop-will", args.trials, video, state,
                                                           args.speed, work)
            finally:
                del os.environ["ADBREAK_SERVER_SILENT_UNMUTE_S"]
        shutil.rmtree(state, ignore_errors=True)
    results = {k: v["unmute_s"] for k, v in measured.items()}
    rows = []
    summary = {}
    names = {"sigkill": "edge killed (SIGKILL)", "sigstop": "edge frozen (SIGSTOP), silence check 3 s",
             "sigstop_will_only": "edge frozen (SIGSTOP), will only (keepalive 2 s)"}
    for key, xs in results.items():
        summary[key] = {"n": len(xs), "median_s": round(median(xs), 3), "p95_s": round(percentile(xs, 95), 3),
                        "max_s": round(max(xs), 3), "within_5_s": sum(x <= 5.0 for x in xs),
                        "all_s": [round(x, 3) for x in xs], "void": measured[key]["void"],
                        "ad_start_to_mute_median_s": round(median(measured[key]["ad_start_to_mute_s"]), 3)}
        s = summary[key]
        rows.append(f"| {names[key]} | {s['n']} | {s['median_s']:.2f} | {s['p95_s']:.2f} | {s['max_s']:.2f} | "
                    f"{s['within_5_s']}/{s['n']} | {s['void']} |")
    md = "\n".join([
        "# Fail-safe: death of an edge during an ad → unmute on the broker",
        "",
        "Mosquitto 2.0, `adbreak server` on SQLite, the real agent (`adbreak edge`, no model, keepalive 2 s) replaying",
        f"a built `heldout` broadcast at {args.speed:g}x, killed or frozen during an ad once the server's mute command",
        "was on the broker. Seconds from the signal to the `OFF` command at a plain subscriber; `void`: trials whose",
        "ad ended before the signal, run again.",
        "",
        "| death | trials | median s | p95 s | max s | within 5 s | void |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])
    md += "\n\nTarget: unmute within 5 s of the death.\n\nReproduce: `.venv/bin/python bench/bench_failsafe.py`."
    write_result("failsafe", {"speed": args.speed, "broadcast": BROADCAST, "trials": summary}, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
