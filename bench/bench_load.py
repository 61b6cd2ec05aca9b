"""Load: N simulated edge devices at broadcast rates against a real Mosquitto and a real `adbreak server`.

Real components: a private Mosquitto, `adbreak server` on a fresh SQLite file (or `--database-url`, e.g. an empty
PostgreSQL database), the built dashboard in Debian's headless Chromium (Playwright), and a plain paho subscriber.

Traffic, per simulated device, as an edge agent sends it (`edge/mqtt.py`): `available` = `online` (QoS 1, retained)
and a retained `state` at start; telemetry at 1 Hz (QoS 0) with a random phase; an ad break after a program stretch
of `--program-s` seconds (uniform), made of 2-5 ads of `--ad-s` seconds each (uniform), announced by `ad_start` and
closed by `ad_end` (QoS 1, `seq` counting up, fresh `event_id`), each followed by the retained `state`. The schedule
is seeded (`--seed`), per device.

The devices are multiplexed: `--publishers` processes, each with ONE MQTT connection publishing for its slice of the
devices (1,000 connections are not needed to load the server: it has one subscription whatever the number of
publishers). One extra device, `probe`, flips between ad and program every `--probe-interval` s; the browser watches
its badge on the live view, and the observer (a MutationObserver) times every device's badge change. Latencies are
measured from each event's publish time (its `decided_ts`, stamped by the publisher just before `publish`, on this
machine's clock; on localhost the broker has it well under a millisecond later): to the server's receipt (its
`events.received`) and to the badge change in the browser (publish -> broker -> server -> SQLite -> Socket.IO ->
DOM). Server CPU% and RSS are sampled every `--sample-s` s (psutil).

After the sustained phase a flood phase: `--flood` messages of the same mix (telemetry, events, states) published as
fast as the publishers can; the plain subscriber's delivery rate is the broker's raw throughput, the ceiling for any
consumer, and the server's ingest rate (its `received` counter) is compared with it.

Results are merged into `<out>/load.json` (keyed by N) and `<out>/load.md` is rewritten from all runs. The findings
written by hand about these runs live in `bench/results/load-findings.md`, which no run touches; load.md links to it.

Usage: python bench/bench_load.py --devices 100 --seconds 600
       python bench/bench_load.py --profile quick    (a smoke test: 5 devices, 12 s, compressed breaks, into
                                                      bench/results/quick/)
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    BENCH_PASSWORD,
    BENCH_USER,
    DATA,
    RESULTS,
    Mosquitto,
    Server,
    commit,
    log,
    machine,
    parse_args,
    percentile,
)

from adbreak.wire import EventPayload, EventType, StatePayload, TelemetryPayload, Topics, new_event_id

OBSERVER = """() => {
  // every change of any device's state badge: [time, device, text]
  window.__changes = [];
  const last = new Map();
  const sel = '[data-testid^="device-state-"]';
  const see = (el) => {
    const id = el.dataset.testid.slice(13), now = (el.textContent || "").trim();
    if (last.get(id) !== now) { last.set(id, now); window.__changes.push([Date.now(), id, now]); }
  };
  document.querySelectorAll(sel).forEach((el) => last.set(el.dataset.testid.slice(13), (el.textContent || "").trim()));
  new MutationObserver((records) => {
    const seen = new Set();
    for (const r of records) {
      const el = (r.target.nodeType === 1 ? r.target : r.target.parentElement)?.closest(sel);
      if (el && !seen.has(el)) { seen.add(el); see(el); }
      for (const a of r.addedNodes) if (a.nodeType === 1) a.querySelectorAll(sel).forEach((e) => {
        if (!seen.has(e)) { seen.add(e); see(e); } });
    }
  }).observe(document.body, {childList: true, characterData: true, subtree: true});
  return last.size;
}"""

PROBE = "probe"
QUICK = {"devices": 5, "seconds": 12.0, "flood": 2000, "program_s": [2.0, 4.0], "ad_s": [0.3, 0.8],
         "probe_interval": 1.0, "sample_s": 1.0}
FINDINGS = RESULTS.parent / "load-findings.md" if RESULTS.name == "quick" else RESULTS / "load-findings.md"
"""Hand-written findings about the runs (kept apart from load.md, which every run rewrites)."""


# ---------------------------------------------------------------------------------------------------- publishers
class SimDevice:
    """One simulated edge agent's decided state, sequence and seeded break schedule."""

    def __init__(self, name: str, seed: int, program_s: tuple[float, float], ad_s: tuple[float, float]) -> None:
        self.name = name
        self.rng = random.Random(f"{seed}:{name}")
        self.program_s = program_s
        self.ad_s = ad_s
        self.seq = 0
        self.label = "program"
        self.since = time.time()

    def next_break_in(self) -> float:
        return self.rng.uniform(*self.program_s)

    def break_length(self) -> float:
        return sum(self.rng.uniform(*self.ad_s) for _ in range(self.rng.randint(2, 5)))

    def state(self, now: float) -> bytes:
        return StatePayload(device=self.name, label=self.label, since_ts=self.since, since_stream_t=self.since % 1e5,
                            confidence=0.95, model_version="bench", ts=now).to_bytes()

    def flip(self, now: float) -> tuple[bytes, str]:
        """The next event (alternating ad_start / ad_end); returns its payload and id."""
        self.seq += 1
        kind = EventType.AD_START if self.label == "program" else EventType.AD_END
        self.label = "ad" if kind is EventType.AD_START else "program"
        self.since = now - 0.7
        ev = EventPayload(device=self.name, event_id=new_event_id(), seq=self.seq, type=kind, boundary_ts=now - 0.7,
                          decided_ts=now, boundary_stream_t=self.since % 1e5, decided_stream_t=now % 1e5,
                          confidence=0.95, model_version="bench")
        return ev.to_bytes(), ev.event_id

    def telemetry(self, now: float) -> bytes:
        p = 0.9 if self.label == "ad" else 0.05
        return TelemetryPayload(device=self.name, ts=now, stream_t=now % 1e5, p_ad=p, smoothed=p, label=self.label,
                                fps=5.0, latency_ms=8.0).to_bytes()


def publisher(index: int, port: int, names: list[str], cfg: dict, start: Any, go: Any, flood_go: Any,
              results: Any) -> None:
    """A publisher process: one MQTT connection for ``names``; the sustained schedule until ``start_at +
    seconds``, then (on ``flood_go``) its share of the flood."""
    import paho.mqtt.client as mqtt

    topics = Topics()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-load-pub{index}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    devs = [SimDevice(n, cfg["seed"], tuple(cfg["program_s"]), tuple(cfg["ad_s"])) for n in names]
    infos = []
    for d in devs:
        infos.append(client.publish(topics.available(d.name), b"online", qos=1, retain=True))
        infos.append(client.publish(topics.state(d.name), d.state(time.time()), qos=1, retain=True))
    for info in infos:
        info.wait_for_publish(30)
    results.put(("ready", index, None, None))
    go.wait()
    start_at = start.value
    counts = {"telemetry": 0, "event": 0, "state": 0, "publish_errors": 0}
    event_ids: list[str] = []
    rng = random.Random(f"{cfg['seed']}:phase:{index}")
    heap: list[tuple[float, int, int]] = []  # (due, kind 0 telemetry / 1 flip, device index)
    while time.time() < start_at:
        time.sleep(0.01)
    t0 = time.time()
    for i, d in enumerate(devs):
        heap.append((t0 + rng.random(), 0, i))
        heap.append((t0 + d.next_break_in(), 1, i))
    heapq.heapify(heap)
    end = start_at + cfg["seconds"]
    while heap:
        due, kind, i = heapq.heappop(heap)
        if due >= end:
            break
        now = time.time()
        if due > now:
            time.sleep(due - now)
            now = time.time()
        d = devs[i]
        if kind == 0:
            if client.publish(topics.telemetry(d.name), d.telemetry(now), qos=0).rc != mqtt.MQTT_ERR_SUCCESS:
                counts["publish_errors"] += 1
            counts["telemetry"] += 1
            heapq.heappush(heap, (due + 1.0, 0, i))
        else:
            payload, eid = d.flip(now)
            client.publish(topics.event(d.name), payload, qos=1)
            client.publish(topics.state(d.name), d.state(now), qos=1, retain=True)
            event_ids.append(eid)
            counts["event"] += 1
            counts["state"] += 1
            wait = d.break_length() if d.label == "ad" else d.next_break_in()
            heapq.heappush(heap, (due + wait, 1, i))
    results.put(("sustained", index, counts, event_ids))
    flood_go.wait()
    share = cfg["flood"] // cfg["publishers"]
    every = max(2, int(cfg["flood_event_every"]))
    fcounts = {"telemetry": 0, "event": 0, "state": 0}
    fids: list[str] = []
    last = None
    k = 0
    sent = 0
    while sent < share:
        d = devs[k % len(devs)]
        k += 1
        now = time.time()
        if k % every == 0 and sent + 2 <= share:
            payload, eid = d.flip(now)
            client.publish(topics.event(d.name), payload, qos=1)
            last = client.publish(topics.state(d.name), d.state(now), qos=1, retain=True)
            fids.append(eid)
            fcounts["event"] += 1
            fcounts["state"] += 1
            sent += 2
        else:
            last = client.publish(topics.telemetry(d.name), d.telemetry(now), qos=0)
            fcounts["telemetry"] += 1
            sent += 1
    if last is not None:
        last.wait_for_publish(120)
    results.put(("flood", index, fcounts, fids))
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()


# ---------------------------------------------------------------------------------------------------- measuring
def sio_watcher(base: str, token: str, ready: Any, stop: Any, out: Any) -> None:
    """A python-socketio client in its own process (signed in with the API token): the time each device's state
    label changes in the ``device`` pushes, the server's side of the browser's latency."""
    import socketio

    records: list[tuple[float, str, str | None]] = []
    last: dict[str, str | None] = {}

    def on_device(data: dict) -> None:
        label = (data.get("state") or {}).get("label")
        if last.get(data["name"], "?") != label:
            last[data["name"]] = label
            records.append((time.time(), data["name"], label))

    client = socketio.Client(reconnection=True)
    client.on("device", on_device)
    client.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=60)
    ready.set()
    stop.wait()
    client.disconnect()
    out.put(records)


class PlainSubscriber:
    """A plain paho subscriber to everything under the prefix: the broker's delivery, and arrival times."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.lock = threading.Lock()
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.event_arrival: dict[str, float] = {}
        self.event_sent: dict[str, float] = {}  # event_id -> publish time (the publisher's clock, in the payload)
        self.event_info: dict[str, tuple[str, str]] = {}  # event_id -> (device, badge text it leads to)
        self.probe_arrival: dict[int, float] = {}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-load-plain")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        # what edge agents publish (not the server's own mute commands and discovery)
        self.client.subscribe([(f"adbreak/+/{t}", 1) for t in ("available", "state", "event", "telemetry")])
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        now = time.time()
        with self.lock:
            self.count += 1
            if self.first is None:
                self.first = now
            self.last = now
        if msg.topic.endswith("/event"):
            body = json.loads(msg.payload)
            with self.lock:
                self.event_arrival[body["event_id"]] = now
                self.event_sent[body["event_id"]] = body["decided_ts"]
                self.event_info[body["event_id"]] = (body["device"], "AD" if body["type"] == "ad_start" else "PROGRAM")
                if body["device"] == PROBE:
                    self.probe_arrival[body["seq"]] = now

    def reset(self) -> None:
        with self.lock:
            self.count = 0
            self.first = self.last = None

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Sampler(threading.Thread):
    """Server CPU% (of one core) and RSS every ``every`` s."""

    def __init__(self, pid: int, every: float) -> None:
        import psutil

        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, float, float]] = []  # (t since start, cpu %, rss MB)
        self.halt = threading.Event()

    def run(self) -> None:
        t0 = time.time()
        self.proc.cpu_percent(None)
        while not self.halt.wait(self.every):
            try:
                with self.proc.oneshot():
                    self.samples.append((round(time.time() - t0, 1), self.proc.cpu_percent(None),
                                         round(self.proc.memory_info().rss / 2**20, 1)))
            except Exception:
                return


def growth(samples: list[tuple[float, float, float]], warmup_frac: float = 0.2) -> dict[str, Any]:
    """Mean RSS and CPU of the first and last quarter after the warm-up, and the RSS growth between them."""
    after = samples[int(len(samples) * warmup_frac):]
    if len(after) < 4:
        return {"samples": len(samples), "rss_growth_pct": None}
    q = max(1, len(after) // 4)
    first, last = after[:q], after[-q:]

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs)

    r1, r2 = mean([s[2] for s in first]), mean([s[2] for s in last])
    return {
        "samples": len(samples),
        "warmup_s": after[0][0],
        "rss_first_quarter_mb": round(r1, 1),
        "rss_last_quarter_mb": round(r2, 1),
        "rss_growth_pct": round(100 * (r2 - r1) / r1, 1),
        "rss_max_mb": max(s[2] for s in samples),
        "cpu_first_quarter_pct": round(mean([s[1] for s in first]), 1),
        "cpu_last_quarter_pct": round(mean([s[1] for s in last]), 1),
        "cpu_mean_pct": round(mean([s[1] for s in after]), 1),
    }


def pcts(xs: list[float]) -> dict[str, float] | None:
    if not xs:
        return None
    return {"n": len(xs), "p50": round(percentile(xs, 50), 1), "p95": round(percentile(xs, 95), 1),
            "p99": round(percentile(xs, 99), 1), "max": round(max(xs), 1)}


def db_bytes(url: str, workdir: Path, *, wal: bool = True) -> int:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal") if wal else path) if p.exists())
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    engine.dispose()
    return n


def stored_events(url: str) -> dict[str, float]:
    """event_id -> server receive time."""
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split("///", 1)[1])
        rows = con.execute("SELECT event_id, received FROM events").fetchall()
        con.close()
        return dict(rows)
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT event_id, received FROM events")).all()
    engine.dispose()
    return {r[0]: r[1] for r in rows}


# ---------------------------------------------------------------------------------------------------- browser
class Browser:
    def __init__(self, base: str) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        self.browser = self._pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        self.page = self.browser.new_page()
        self.page.goto(f"{base}/#/live")
        self.page.get_by_test_id("login-username").fill(BENCH_USER)
        self.page.get_by_test_id("login-password").fill(BENCH_PASSWORD)
        self.page.get_by_test_id("login-submit").click()
        self.page.wait_for_selector(f'[data-testid="device-state-{PROBE}"]', timeout=60000)
        self.page.wait_for_function(
            "() => document.querySelector('[data-testid=conn-status]')?.textContent.trim() === 'connected'",
            timeout=60000)
        self.page.wait_for_timeout(1000)
        self.badges = self.page.evaluate(OBSERVER)

    def changes(self) -> list[list]:
        return self.page.evaluate("() => window.__changes")

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()


# ---------------------------------------------------------------------------------------------------- the run
def run(args: argparse.Namespace) -> dict[str, Any]:
    import paho.mqtt.client as mqtt

    n = args.devices
    pubs = max(1, min(args.publishers, n))
    names = [f"load{i:04d}" for i in range(n)]
    work = DATA / f"load-{n}"
    shutil.rmtree(work, ignore_errors=True)
    cfg = {"seed": args.seed, "program_s": args.program_s, "ad_s": args.ad_s, "seconds": args.seconds,
           "flood": args.flood, "publishers": pubs, "flood_event_every": 0}
    topics = Topics()
    with Mosquitto(work / "broker") as broker:
        server = Server(work / "server", broker.port)
        if args.database_url:
            server.db = args.database_url
        with server:
            empty_bytes = db_bytes(server.db, work)
            plain = PlainSubscriber(broker.port)
            sampler = Sampler(server.proc.pid, args.sample_s)
            probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-load-probe")
            probe.connect("127.0.0.1", broker.port)
            probe.loop_start()
            probe_dev = SimDevice(PROBE, args.seed, (1, 1), (1, 1))
            probe.publish(topics.available(PROBE), b"online", qos=1, retain=True).wait_for_publish(10)
            probe.publish(topics.state(PROBE), probe_dev.state(time.time()), qos=1, retain=True).wait_for_publish(10)

            browser = Browser(server.base) if args.browser else None
            base = server.get("/api/v1/health")["counters"]  # makes the API token now, not during the run
            ctx = mp.get_context("spawn")
            results = ctx.Queue()
            flood_go, go = ctx.Event(), ctx.Event()
            start = ctx.Value("d", 0.0)
            # mix of the flood: as in the sustained phase (events + states vs telemetry), at least 1 in 200
            per_dev_s = (sum(args.program_s) / 2 + 3.5 * sum(args.ad_s) / 2) / 2  # mean time between flips
            cfg["flood_event_every"] = max(2, min(200, round(per_dev_s)))
            procs = [ctx.Process(target=publisher, args=(k, broker.port, names[k::pubs], cfg, start, go, flood_go,
                                                         results), daemon=True) for k in range(pubs)]
            for p in procs:
                p.start()
            sio_ready, sio_stop, sio_out = ctx.Event(), ctx.Event(), ctx.Queue()
            sio = ctx.Process(target=sio_watcher, args=(server.base, server._token, sio_ready, sio_stop, sio_out),
                              daemon=True)
            sio.start()
            if not sio_ready.wait(120):
                raise SystemExit("the Socket.IO watcher did not connect")
            for _ in procs:  # every publisher connected and its devices announced
                assert results.get(timeout=300)[0] == "ready"
            time.sleep(2.0)  # the announcements applied
            base = server.get("/api/v1/health")["counters"]
            plain.reset()
            start_at = start.value = time.time() + 0.5
            go.set()
            log(f"{n} devices through {pubs} publisher connection(s), {args.seconds:g} s; probe every "
                f"{args.probe_interval:g} s; browser {'on' if browser else 'off'}")
            sampler.start()
            while time.time() < start_at:
                time.sleep(0.01)
            t0 = start_at
            backlog: list[int] = []
            next_probe = t0 + args.probe_interval / 2
            next_poll = t0 + 5.0
            probe_sent: list[tuple[int, str]] = []
            end = t0 + args.seconds
            while (now := time.time()) < end:
                if now >= next_probe:
                    payload, eid = probe_dev.flip(now)
                    probe.publish(topics.event(PROBE), payload, qos=1)
                    probe.publish(topics.state(PROBE), probe_dev.state(now), qos=1, retain=True)
                    probe_sent.append((probe_dev.seq, eid))
                    next_probe += args.probe_interval
                if now >= next_poll:
                    c = server.get("/api/v1/health")["counters"]
                    with plain.lock:
                        backlog.append(plain.count - (c["received"] - base["received"]))
                    next_poll += 5.0
                time.sleep(0.02)
            sustained_counts = {"telemetry": 0, "event": 0, "state": 0, "publish_errors": 0}
            event_ids: list[str] = []
            for _ in procs:
                _phase, _k, counts, ids = results.get(timeout=120)
                for key in sustained_counts:
                    sustained_counts[key] += counts[key]
                event_ids += ids
            # drain: wait until the server has every event
            drain_deadline = time.time() + 120
            want_events = len(event_ids) + len(probe_sent)
            while time.time() < drain_deadline:
                c = server.get("/api/v1/health")["counters"]
                if c["events_ingested"] - base["events_ingested"] >= want_events:
                    break
                time.sleep(0.25)
            drained_s = time.time() - t0
            sampler.halt.set()
            sampler.join(10)
            time.sleep(1.0)
            c = server.get("/api/v1/health")["counters"]
            with plain.lock:
                plain_count = plain.count
            sustained_s = args.seconds
            if server.db.startswith("sqlite"):  # measure the file, not pages still waiting in the WAL
                con = sqlite3.connect(server.db.split("///", 1)[1], timeout=30)
                con.execute("PRAGMA wal_checkpoint(PASSIVE)")
                con.close()
            size_after = db_bytes(server.db, work, wal=False)
            sio_stop.set()
            sio_changes = sio_out.get(timeout=120)
            sio.join(10)
            changes = browser.changes() if browser else []
            browser_badges = browser.badges if browser else None
            if browser:
                browser.close()
            sustained = {
                "seconds": sustained_s,
                "published": sustained_counts,
                "published_messages": sum(v for k, v in sustained_counts.items() if k != "publish_errors"),
                "probe_messages": 2 * len(probe_sent),
                "offered_msgs_per_s": round((sum(v for k, v in sustained_counts.items() if k != "publish_errors")
                                             + 2 * len(probe_sent)) / sustained_s, 1),
                "offered_events_per_s": round(sustained_counts["event"] / sustained_s, 2),
                "plain_subscriber_messages": plain_count,
                "server_received": c["received"] - base["received"],
                "server_events_ingested": c["events_ingested"] - base["events_ingested"],
                "server_msgs_per_s": round((c["received"] - base["received"]) / sustained_s, 1),
                "server_events_per_s": round((c["events_ingested"] - base["events_ingested"]) / sustained_s, 2),
                "all_events_in_after_s": round(drained_s, 1),
                "max_backlog_msgs": max(backlog) if backlog else 0,
                "rejected": {k: v - base["rejected"].get(k, 0) for k, v in c["rejected"].items()
                             if v - base["rejected"].get(k, 0)},
            }
            log(f"sustained: {sustained}")

            # ---------------- flood: the same mix as fast as the publishers can
            plain.reset()
            fbase = server.get("/api/v1/health")["counters"]
            tf = time.time()
            flood_go.set()
            flood_counts = {"telemetry": 0, "event": 0, "state": 0}
            flood_ids: list[str] = []
            for _ in procs:
                _phase, _k, counts, ids = results.get(timeout=300)
                for key in flood_counts:
                    flood_counts[key] += counts[key]
                flood_ids += ids
            pub_s = time.time() - tf
            total = sum(flood_counts.values())
            deadline = time.time() + 180
            server_done = None
            stalled_since = time.time()
            last_seen = -1
            while time.time() < deadline:
                c = server.get("/api/v1/health")["counters"]
                got = c["received"] - fbase["received"] + c["events_ingested"] - fbase["events_ingested"]
                if got >= total + flood_counts["event"]:  # every message received and every event stored
                    server_done = time.time()
                    break
                if got != last_seen:
                    last_seen, stalled_since = got, time.time()
                elif time.time() - stalled_since > 10:  # QoS-0 telemetry the broker dropped never comes
                    break
                time.sleep(0.1)
            c = server.get("/api/v1/health")["counters"]
            with plain.lock:
                p_count, p_last = plain.count, plain.last
            server_got = c["received"] - fbase["received"]
            server_end = server_done or stalled_since
            plain_rate = p_count / (p_last - tf) if p_last else None
            server_rate = server_got / (server_end - tf)
            flood = {
                "published": flood_counts,
                "published_messages": total,
                "publish_s": round(pub_s, 2),
                "publish_msgs_per_s": round(total / pub_s, 1),
                "plain_subscriber_messages": p_count,
                "plain_subscriber_msgs_per_s": round(plain_rate, 1) if plain_rate else None,
                "server_received": server_got,
                "server_msgs_per_s": round(server_rate, 1),
                "server_events_ingested": c["events_ingested"] - fbase["events_ingested"],
                "server_to_broker_ratio": round(server_rate / plain_rate, 3) if plain_rate else None,
            }
            log(f"flood: {flood}")
            for p in procs:
                p.join(10)
            probe.loop_stop()
            plain.stop()
            stored = stored_events(server.db)

    # ---------------- latencies, loss
    # latency from the publish (decided_ts, stamped just before publish on this machine's clock): the broker's
    # arrival, without depending on a plain subscriber keeping up (at 1,000 devices it lags itself)
    arrival = plain.event_sent
    all_ids = event_ids + flood_ids
    lost = [e for e in all_ids if e not in stored]
    sustained_set = set(event_ids)
    ingest_ms = [1000 * (stored[e] - arrival[e]) for e in stored if e in sustained_set and e in arrival]
    by_dev: dict[str, list[tuple[float, str]]] = {}
    for t, dev, text in changes:
        by_dev.setdefault(dev, []).append((t / 1000.0, text))
    watched = [e for e in [*event_ids, *(eid for _seq, eid in probe_sent)] if e in arrival]
    watched.sort(key=lambda e: arrival[e])
    next_arrival: dict[str, float] = {}
    browser_ms, probe_ms, missing = [], [], 0
    for e in reversed(watched):  # each event's window ends where the device's next event arrives
        dev, text = plain.event_info[e]
        a = arrival[e]
        until = next_arrival.get(dev, a + 120.0)
        next_arrival[dev] = a
        hit = next((t for t, v in by_dev.get(dev, ()) if v == text and a - 0.001 <= t < until), None)
        if hit is None:
            missing += 1
        else:
            (probe_ms if dev == PROBE else browser_ms).append(1000 * (hit - a))
    sio_by_dev: dict[str, list[tuple[float, str | None]]] = {}
    for t, dev, label in sio_changes:
        sio_by_dev.setdefault(dev, []).append((t, label))
    sio_ms, sio_missing = [], 0
    next_arrival = {}
    for e in reversed(watched):
        dev, text = plain.event_info[e]
        a = arrival[e]
        until = next_arrival.get(dev, a + 120.0)
        next_arrival[dev] = a
        want = "ad" if text == "AD" else "program"
        hit = next((t for t, v in sio_by_dev.get(dev, ()) if v == want and a - 0.001 <= t < until), None)
        if hit is None:
            sio_missing += 1
        else:
            sio_ms.append(1000 * (hit - a))
    device_days = n * args.seconds / 86400
    # growth per stored event (its row, the segment it opens, the mute firing, indexes; the probe's included),
    # times the events a simulated device makes in a day
    per_event = (size_after - empty_bytes) / max(1, sustained["server_events_ingested"])
    res = {
        "devices": n,
        "publisher_connections": pubs,
        "database": "sqlite" if server.db.startswith("sqlite") else server.db.split(":", 1)[0],
        "schedule": {"seed": args.seed, "program_s": args.program_s, "ad_s": args.ad_s, "ads_per_break": [2, 5],
                     "telemetry_hz": 1.0, "probe_interval_s": args.probe_interval},
        "sustained": sustained,
        "latency_publish_to_server_receipt_ms": pcts(ingest_ms),
        "latency_publish_to_socketio_ms": pcts(sio_ms),
        "socketio_missing": sio_missing,
        "latency_publish_to_browser_ms": pcts(browser_ms + probe_ms) if args.browser else None,
        "latency_publish_to_browser_probe_ms": pcts(probe_ms) if args.browser else None,
        "latency_publish_to_browser_fleet_ms": pcts(browser_ms) if args.browser else None,
        "browser_badges": browser_badges,
        "browser_missing": missing if args.browser else None,
        "probe_events": len(probe_sent),
        "events_lost": len(lost),
        "server_resources": growth(sampler.samples),
        "server_samples": sampler.samples,
        "db": {
            "empty_bytes": empty_bytes,
            "after_sustained_bytes": size_after,
            "events_stored": sustained["server_events_ingested"],
            "bytes_per_event": round(per_event),
            "device_days": round(device_days, 4),
            "events_per_device_day": round(sustained_counts["event"] / device_days, 1),
            "bytes_per_device_day": round(per_event * sustained_counts["event"] / device_days),
        },
        "flood": flood,
    }
    return res


def markdown(runs: dict[str, Any], out: Path) -> str:
    rows = []
    for key in sorted(runs, key=lambda k: (runs[k].get("quick", False), int(runs[k]["devices"]))):
        r = runs[key]
        s, f, g = r["sustained"], r["flood"], r["server_resources"]
        ing, br = r["latency_publish_to_server_receipt_ms"] or {}, r["latency_publish_to_browser_ms"] or {}
        sio = r.get("latency_publish_to_socketio_ms") or {}
        rows.append(
            f"| {r['devices']}{' (quick)' if r.get('quick') else ''} | {s['seconds']:g} s | "
            f"{s['server_msgs_per_s']} / {s['offered_msgs_per_s']} | {s['server_events_per_s']} | "
            f"{ing.get('p50', '-')} / {ing.get('p95', '-')} / {ing.get('p99', '-')} | "
            f"{sio.get('p50', '-')} / {sio.get('p95', '-')} / {sio.get('p99', '-')} (n={sio.get('n', 0)}) | "
            f"{br.get('p50', '-')} / {br.get('p95', '-')} / {br.get('p99', '-')} (n={br.get('n', 0)}) | "
            f"{g.get('cpu_mean_pct', '-')} % | {g.get('rss_first_quarter_mb', '-')} -> "
            f"{g.get('rss_last_quarter_mb', '-')} MB ({g.get('rss_growth_pct', '-')} %) | "
            f"{round(r['db']['bytes_per_device_day'] / 1e3, 1) if r['db']['bytes_per_device_day'] else '-'} kB | "
            f"{f['plain_subscriber_msgs_per_s']} | {f['server_msgs_per_s']} | {f['server_to_broker_ratio']} | "
            f"{r['events_lost']} |")
    cmds = sorted({r["command"] for r in runs.values()})
    return "\n".join([
        "# Load: N simulated edge devices -> Mosquitto -> `adbreak server` (SQLite) -> browser",
        "",
        "Each device: telemetry 1 Hz (QoS 0), an ad break every 2-7 min (seeded) of 2-5 ads of 10-45 s, "
        "`ad_start`/`ad_end` events (QoS 1) each followed by the retained state. Devices are multiplexed over a few "
        "publisher processes/connections (not one connection per device). A `probe` device flips every few seconds; "
        "headless Chromium on the live view times every device's badge change. Latencies start at each event's "
        "publish (its `decided_ts`; the broker has it <1 ms later on localhost): `receipt` = the server's "
        "`events.received`, `Socket.IO` = the device's new state in a `device` push to a python-socketio client (in "
        "its own process), `browser` = the badge change in the DOM (through SQLite and Socket.IO). "
        "CPU is % of one core; RSS growth compares the "
        "first and last quarter after a 20 % warm-up. Flood: the same message mix published as fast as possible; "
        "the plain subscriber's rate is the broker's raw throughput, `ratio` = server ingest / broker.",
        "",
        "| N | sustained | msgs/s server / offered | events/s | receipt ms p50/p95/p99 | Socket.IO ms p50/p95/p99 | "
        "browser ms p50/p95/p99 | "
        "server CPU | server RSS (growth) | DB / device-day | flood: broker msgs/s | flood: server msgs/s | ratio | "
        "events lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "The machine has 2 cores shared by the broker, the server, the publishers, Chromium and (during these runs) "
        "other work; the figures are a floor, not a ceiling. DB / device-day is extrapolated "
        "as (file growth / events stored) x (events a device makes per day) - events, segments, mute firings, "
        "indexes; telemetry is not stored; `bench/results/soak.md` measures a full simulated day with the retention "
        "job.",
        "",
        "Reproduce: " + "; ".join(f"`{c}`" for c in cmds),
        "",
        f"Findings about these runs, written by hand (no run rewrites them): "
        f"[{FINDINGS.name}]({os.path.relpath(FINDINGS, out)}).",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes (one MQTT connection each)")
    ap.add_argument("--program-s", type=float, nargs=2, default=[120.0, 420.0], metavar=("MIN", "MAX"))
    ap.add_argument("--ad-s", type=float, nargs=2, default=[10.0, 45.0], metavar=("MIN", "MAX"))
    ap.add_argument("--probe-interval", type=float, default=3.0)
    ap.add_argument("--sample-s", type=float, default=3.0)
    ap.add_argument("--flood", type=int, default=30000, help="messages in the flood phase")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--database-url", default=None, help="an EMPTY database (default: a fresh SQLite file)")
    ap.add_argument("--no-browser", dest="browser", action="store_false")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of load.json / load.md")
    args = parse_args(ap, QUICK)
    if args.devices < 1 or args.seconds <= 0 or args.flood < args.publishers * 2:
        raise SystemExit("bench_load: --devices >= 1, --seconds > 0 and --flood >= 2 per publisher")
    res = run(args)
    res["quick"] = args.profile == "quick"
    argv = " ".join(os.sys.argv[1:])
    res["command"] = f".venv/bin/python bench/bench_load.py {argv}".strip()
    res["machine"] = machine()
    res["commit"] = commit()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "load.json"
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    runs[str(args.devices)] = res
    from adbreak.atomic import write_text

    write_text(path, json.dumps({"runs": runs}, indent=1) + "\n")
    md = markdown(runs, args.out)
    write_text(args.out / "load.md", md + "\n")
    log(f"wrote {path} and load.md")
    print(md)


if __name__ == "__main__":
    main()
