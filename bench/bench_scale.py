"""Scale-out: events/s ingested by one server process against two sharing the work, on PostgreSQL.

Real components: a private Mosquitto (no in-flight window, no queue limit, as docs/scaling.md asks), a fresh
PostgreSQL database per run on 127.0.0.1:5432, Redis at 127.0.0.1:6379, and `adbreak server` processes. Configurations:

* ``1-plain``: one server, MQTT 3.1.1, no share group (today's single-server set-up, on PostgreSQL);
* ``1-shared-no-redis``: one server in a share group (MQTT 5, reorder hold on), Socket.IO in-process;
* ``1-shared``: the same with Socket.IO through Redis;
* ``2-shared``: two servers in one share group, one database, one Redis.

Each run announces ``--devices`` devices (retained ``online`` and ``state``), then publishes ``--events`` events per
device (ad_start / ad_end alternating, seq counting up, fresh event ids), device after device round-robin so that a
device's next event comes after one of every other device's, as fast as one QoS 1 publisher can. The time is taken
from the first publish to the last event committed (polled in the database); the result is that many events over
that time. Each run also checks that every event was stored exactly once.

With ``--repeat`` > 1 the configurations run in turn that many times; ``medians`` holds each configuration's median
events/s over its runs.

Writes bench/results/scale.json and .md (atomically). Usage: python bench/bench_scale.py [--devices 100] [--events 10]
[--repeat 3] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import paho.mqtt.client as mqtt  # noqa: E402
from common import RESULTS, median, parse_args, write_result  # noqa: E402

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id  # noqa: E402
from server import db  # noqa: E402
from tests.edge_mqtt_support import Mosquitto  # noqa: E402
from tests.server_support import ServerProcess  # noqa: E402

TOPICS = Topics()
REDIS_URL = os.environ.get("ADBREAK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
PG_SERVER = os.environ.get("ADBREAK_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
CONFIGS = {"1-plain": (1, False, False), "1-shared-no-redis": (1, True, False), "1-shared": (1, True, True),
           "2-shared": (2, True, True)}
QUICK = {"devices": 20, "events": 5}


def _admin():
    from sqlalchemy import create_engine

    return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


def create_pg_database() -> str:
    """A new empty database on the PostgreSQL server at ``ADBREAK_BENCH_PG`` (trust authentication); its URL."""
    import uuid

    from sqlalchemy import text

    name = f"adbreak_bench_{uuid.uuid4().hex[:16]}"
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return f"{PG_SERVER}/{name}"


def drop_pg_database(url: str) -> None:
    from sqlalchemy import text

    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    finally:
        admin.dispose()


def query(url: str, sql: str) -> list[tuple]:
    from sqlalchemy import text

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def counters(srv: ServerProcess) -> dict:
    import requests

    return requests.get(f"{srv.base}/api/v1/health", timeout=10).json()["counters"]


def run(name: str, n_servers: int, shared: bool, use_redis: bool, devices: int, events: int, workdir: Path) -> dict:
    broker = Mosquitto(workdir)
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                           "max_inflight_messages 0\nmax_queued_messages 0\n")
    broker.start()
    url = create_pg_database()
    db.upgrade(url)
    names = [f"tv{i:04d}" for i in range(devices)]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    servers: list[ServerProcess] = []
    try:
        t0 = time.time()
        for d in names:
            pub.publish(TOPICS.available(d), "online", qos=1, retain=True)
            pub.publish(TOPICS.state(d), StatePayload(device=d, label="program", since_ts=t0, since_stream_t=0.0,
                                                      confidence=0.9, model_version="m1", ts=t0).to_bytes(),
                        qos=1, retain=True).wait_for_publish(30)
        for i in range(n_servers):
            (workdir / f"s{i}").mkdir()
            env = {"ADBREAK_SERVER_HA_DISCOVERY": "false", "ADBREAK_SERVER_MQTT_CLIENT_ID": f"bench-{name}-{i}"}
            if shared:
                env["ADBREAK_SERVER_MQTT_SHARE_GROUP"] = "bench"
            if use_redis:
                env["ADBREAK_SERVER_REDIS_URL"] = REDIS_URL
            servers.append(ServerProcess(workdir / f"s{i}", (broker.host, broker.port), env=env, db=url).__enter__())
        deadline = time.monotonic() + 120
        while query(url, "SELECT count(*) FROM devices")[0][0] < devices:
            assert time.monotonic() < deadline, "devices not announced"
            time.sleep(0.2)
        payloads = []
        base = time.time()
        for seq in range(1, events + 1):
            for d in names:
                boundary = base + seq * 20.0
                payloads.append((TOPICS.event(d), EventPayload(
                    device=d, event_id=new_event_id(), seq=seq,
                    type=EventType.AD_START if seq % 2 else EventType.AD_END, boundary_ts=boundary,
                    decided_ts=boundary + 1.0, boundary_stream_t=seq * 20.0, decided_stream_t=seq * 20.0 + 1.0,
                    confidence=0.9, model_version="m1").to_bytes()))
        total = len(payloads)
        start = time.monotonic()
        infos = [pub.publish(topic, body, qos=1) for topic, body in payloads]
        for info in infos:
            info.wait_for_publish(120)
        published_s = time.monotonic() - start
        deadline = time.monotonic() + 600
        while (stored := query(url, "SELECT count(*) FROM events")[0][0]) < total:
            assert time.monotonic() < deadline, f"only {stored} of {total} events stored"
            time.sleep(0.05)
        elapsed = time.monotonic() - start
        distinct = query(url, "SELECT count(DISTINCT event_id), count(*) FROM events")[0]
        deadline = time.monotonic() + 60  # the counters move after each commit's effects (pushes, commands)
        while sum((per_server := [counters(s) for s in servers])[i].get("events_ingested", 0)
                  for i in range(len(servers))) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        result = {
            "load_average_1min": round(os.getloadavg()[0], 1),  # this machine is shared: read the rates with it
            "servers": n_servers, "shared_subscription": shared, "redis": use_redis, "devices": devices, "events": total,
            "published_s": round(published_s, 2), "stored_s": round(elapsed, 2),
            "events_per_s": round(total / elapsed, 1),
            "stored_once": distinct[0] == distinct[1] == total,
            "ingested_per_server": [c.get("events_ingested", 0) for c in per_server],
            "held_per_server": [c.get("events_held", 0) for c in per_server],
            "out_of_order": sum(c["rejected"].get("out_of_order", 0) for c in per_server),
        }
        print(f"{name}: {total} events in {elapsed:.1f} s = {result['events_per_s']} events/s "
              f"(per server {result['ingested_per_server']}, held {result['held_per_server']})", flush=True)
        return result
    finally:
        for srv in reversed(servers):
            srv.__exit__(None, None, None)
        pub.disconnect()
        pub.loop_stop()
        broker.stop()
        drop_pg_database(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--events", type=int, default=10, help="events per device")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    ap.add_argument("--repeat", type=int, default=3, help="run the configurations in turn this many times (this "
                    "machine's load varies: interleaved runs compare like with like)")
    args = parse_args(ap, QUICK)
    if args.devices < 1 or args.events < 1:
        ap.error("--devices and --events must be at least 1")
    chosen = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CONFIGS]
    if unknown:
        ap.error(f"unknown config(s) {unknown}: use {', '.join(CONFIGS)}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    runs = {}
    for k in range(1, args.repeat + 1):
        for name in chosen:
            key = name if args.repeat == 1 else f"{name}#{k}"
            with tempfile.TemporaryDirectory(prefix=f"bench-scale-{name}-") as tmp:
                runs[key] = run(key, *CONFIGS[name], args.devices, args.events, Path(tmp))
    medians = {name: median([r["events_per_s"] for k, r in runs.items() if k.split("#")[0] == name])
               for name in chosen}
    rows = [f"| {k} | {r['servers']} | {r['shared_subscription']} | {r['redis']} | {r['events']} | {r['stored_s']} s | "
            f"{r['events_per_s']} | {r['stored_once']} | {r['load_average_1min']} |" for k, r in runs.items()]
    md = "\n".join([
        "# Scale-out: one server against two sharing the work (PostgreSQL)",
        "",
        f"{args.devices} devices x {args.events} events each, published as fast as one QoS 1 publisher can; the time "
        "from the first publish to the last event committed. Configurations: see the docstring of "
        "`bench/bench_scale.py`. This machine is shared: read the rates with the load average beside them.",
        "",
        "| run | servers | shared subscription | Redis | events | stored in | events/s | stored once | load |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Median events/s per configuration: " + ", ".join(f"{k} {v}" for k, v in medians.items()) + ".",
    ])
    write_result("scale", {"devices": args.devices, "events_per_device": args.events, "repeat": args.repeat,
                           "medians": medians, "runs": runs}, md)
    print(f"wrote {RESULTS / 'scale.json'}")


if __name__ == "__main__":
    main()
