"""Server ingest: events/s from MQTT into SQLite, sustained, with no loss; the broker's raw rate beside it.

Real components: a private Mosquitto and `adbreak server` on a fresh SQLite file (WAL). `--devices` simulated
devices announce themselves (`online`, retained) and then publish valid `ad_start` / `ad_end` events (QoS 1, seq
counting up) at `--rate` events/s in total for `--seconds`. A plain paho subscriber on the same broker counts the
same events (the broker's delivery rate, the ceiling for any consumer). Afterwards every event id must be in the
database exactly once. A second phase floods `--flood` events as fast as one publisher can and measures how fast the
server drains them. The whole is done `--repeats` times, each on a fresh server and database; the rates are the
medians (the run whose sustained ingest rate is the median is kept whole in the result file).

Usage: python bench/bench_ingest.py [--rate 1000] [--seconds 30] [--devices 20] [--flood 20000] [--repeats 3]
       [--profile quick|full]
"""

from __future__ import annotations

import argparse
import sqlite3
import threading
import time

from common import DATA, Mosquitto, Server, log, median, parse_args, write_result

from adbreak.wire import EventPayload, EventType, Topics, new_event_id

QUICK = {"rate": 200.0, "seconds": 5.0, "devices": 5, "flood": 2000, "repeats": 1}


class Fleet:
    def __init__(self, n: int) -> None:
        self.devices = [f"sim{i:03d}" for i in range(n)]
        self.seq = dict.fromkeys(self.devices, 0)
        self.topics = Topics()

    def event(self, i: int) -> tuple[str, bytes, str]:
        dev = self.devices[i % len(self.devices)]
        self.seq[dev] += 1
        seq = self.seq[dev]
        now = time.time()
        ev = EventPayload(
            device=dev,
            event_id=new_event_id(),
            seq=seq,
            type=EventType.AD_START if seq % 2 else EventType.AD_END,
            boundary_ts=now - 0.7,
            decided_ts=now,
            boundary_stream_t=seq * 30.0,
            decided_stream_t=seq * 30.0 + 0.7,
            confidence=0.95,
            model_version="bench",
        )
        return self.topics.event(dev), ev.to_bytes(), ev.event_id


def run(args: argparse.Namespace) -> dict:
    """One sustained phase and one flood on a fresh server and database."""
    import paho.mqtt.client as mqtt

    work = DATA / "ingest"
    fleet = Fleet(args.devices)
    counted = {"n": 0}
    lock = threading.Lock()
    with Mosquitto(work / "broker") as broker, Server(work / "server", broker.port) as server:
        plain = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-plain-subscriber")

        def on_message(client, userdata, msg):
            with lock:
                counted["n"] += 1

        plain.on_message = on_message
        plain.connect("127.0.0.1", broker.port)
        plain.subscribe("adbreak/+/event", 1)
        plain.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-fleet")
        pub.max_inflight_messages_set(1000)
        pub.max_queued_messages_set(0)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for dev in fleet.devices:
            pub.publish(fleet.topics.available(dev), b"online", qos=1, retain=True).wait_for_publish(5)
        time.sleep(1.0)

        def ingested() -> int:
            return int(server.get("/api/v1/health")["counters"]["events_ingested"])

        ids: list[str] = []
        log(f"sustained: {args.rate:g} events/s for {args.seconds:g} s from {args.devices} devices")
        total = int(args.rate * args.seconds)
        t0 = time.perf_counter()
        base = ingested()
        lag_samples = []
        next_poll = t0 + 1.0
        for i in range(total):
            due = t0 + i / args.rate
            while (now := time.perf_counter()) < due:
                time.sleep(min(due - now, 0.002))
            topic, payload, eid = fleet.event(i)
            pub.publish(topic, payload, qos=1)
            ids.append(eid)
            if now >= next_poll:
                lag_samples.append(i + 1 - (ingested() - base))
                next_poll += 1.0
        publish_s = time.perf_counter() - t0
        deadline = time.perf_counter() + 60
        while ingested() - base < total and time.perf_counter() < deadline:
            time.sleep(0.05)
        drain_s = time.perf_counter() - t0
        sustained = {
            "published": total,
            "publish_s": round(publish_s, 2),
            "offered_rate": round(total / publish_s, 1),
            "ingested": ingested() - base,
            "all_ingested_after_s": round(drain_s, 2),
            "ingest_rate": round((ingested() - base) / drain_s, 1),
            "max_backlog_events": max(lag_samples) if lag_samples else 0,
            "broker_delivered_to_plain_subscriber": counted["n"],
        }
        log(f"sustained: {sustained}")

        log(f"flood: {args.flood} events as fast as one publisher can")
        with lock:
            counted["n"] = 0
        base = ingested()
        t0 = time.perf_counter()
        infos = []
        for i in range(args.flood):
            topic, payload, eid = fleet.event(total + i)
            infos.append(pub.publish(topic, payload, qos=1))
            ids.append(eid)
        for info in infos:
            info.wait_for_publish(60)
        pub_s = time.perf_counter() - t0
        plain_done = None
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            if plain_done is None and counted["n"] >= args.flood:
                plain_done = time.perf_counter() - t0
            if ingested() - base >= args.flood:
                break
            time.sleep(0.02)
        server_s = time.perf_counter() - t0
        flood = {
            "events": args.flood,
            "publish_s": round(pub_s, 2),
            "publish_rate": round(args.flood / pub_s, 1),
            "plain_subscriber_s": round(plain_done, 2) if plain_done else None,
            "plain_subscriber_rate": round(args.flood / plain_done, 1) if plain_done else None,
            "server_ingested": ingested() - base,
            "server_s": round(server_s, 2),
            "server_rate": round((ingested() - base) / server_s, 1),
        }
        log(f"flood: {flood}")
        health = server.get("/api/v1/health")
        pub.loop_stop()
        plain.loop_stop()
        db_path = server.workdir / "adbreak.db"

    con = sqlite3.connect(db_path)
    stored = [r[0] for r in con.execute("SELECT event_id FROM events")]
    con.close()
    lost = len(set(ids) - set(stored))
    doubled = len(stored) - len(set(stored))
    return {"sustained": sustained, "flood": flood, "lost": lost, "duplicated_rows": doubled,
            "rejected": health["counters"]["rejected"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--flood", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    args = parse_args(ap, QUICK)
    runs = []
    for i in range(args.repeats):
        log(f"run {i + 1} of {args.repeats}")
        runs.append(run(args))
    rates = [r["sustained"]["ingest_rate"] for r in runs]
    floods = [r["flood"]["server_rate"] for r in runs]
    kept = sorted(runs, key=lambda r: r["sustained"]["ingest_rate"])[len(runs) // 2]
    sustained, flood = kept["sustained"], kept["flood"]
    lost, doubled = sum(r["lost"] for r in runs), sum(r["duplicated_rows"] for r in runs)
    total = sustained["published"]
    data = {
        "repeats": args.repeats,
        "rate": args.rate,
        "seconds": args.seconds,
        "devices": args.devices,
        "sustained_ingest_rate_median": median(rates),
        "sustained_ingest_rate_runs": rates,
        "sustained_max_backlog_runs": [r["sustained"]["max_backlog_events"] for r in runs],
        "flood_server_rate_median": median(floods),
        "flood_server_rate_runs": floods,
        "sustained": sustained,
        "flood": flood,
        "lost": lost,
        "duplicated_rows": doubled,
        "rejected": kept["rejected"],
    }
    md = [
        "# Server ingest: MQTT -> SQLite",
        "",
        f"{args.devices} simulated devices, QoS-1 events; real Mosquitto; `adbreak server` on SQLite (WAL). "
        f"{args.repeats} run(s), each on a fresh server and database: the run with the median sustained rate below "
        f"(sustained ingest rate of each run: {', '.join(map(str, rates))} ev/s; flood: "
        f"{', '.join(map(str, floods))} ev/s, median {median(floods)}); lost and duplicated: all runs together.",
        "",
        "| phase | offered | server ingest rate | broker to a plain subscriber | lost | duplicated |",
        "|---|---|---|---|---|---|",
        f"| sustained {args.seconds:g} s | {sustained['offered_rate']} ev/s | {sustained['ingest_rate']} ev/s "
        f"(max backlog {sustained['max_backlog_events']} events) | {sustained['broker_delivered_to_plain_subscriber']} "
        f"of {total} delivered | {lost} | {doubled} |",
        f"| flood {args.flood} | {flood['publish_rate']} ev/s | {flood['server_rate']} ev/s | "
        f"{flood['plain_subscriber_rate']} ev/s | | |",
        "",
        "Target: >= 1,000 events/s sustained with no loss.",
        "",
        "Reproduce: `.venv/bin/python bench/bench_ingest.py`.",
    ]
    write_result("ingest", data, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
