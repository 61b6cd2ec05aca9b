"""A state change reaching a connected browser: from the event's arrival at the broker to the dashboard's DOM.

Real components: a private Mosquitto, `adbreak server` on SQLite, the built dashboard in Debian's headless Chromium
(Playwright). One simulated device alternates `ad_start` / `ad_end` events every `--interval` seconds, each followed
by its retained state, as an edge agent publishes them. A plain paho
subscriber timestamps each event's arrival from the broker; inside the page a MutationObserver timestamps each change
of the device's state badge (`data-testid=device-state-<device>`). Both clocks are this machine's wall clock.

Usage: python bench/bench_browser.py [--events 100] [--interval 0.5] [--profile quick|full]
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time

from common import (
    BENCH_PASSWORD,
    BENCH_USER,
    DATA,
    Mosquitto,
    Server,
    log,
    median,
    parse_args,
    percentile,
    write_result,
)

from adbreak.wire import EventPayload, EventType, StatePayload, Topics, new_event_id

QUICK = {"events": 10}

OBSERVER = """(id) => {
  window.__changes = [];
  const text = () => (document.querySelector(`[data-testid="device-state-${id}"]`)?.textContent || "").trim();
  let last = text();
  new MutationObserver(() => {
    const now = text();
    if (now !== last) { last = now; window.__changes.push([Date.now(), now]); }
  }).observe(document.body, {childList: true, characterData: true, subtree: true});
  return last;
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--interval", type=float, default=0.5)
    args = parse_args(ap, QUICK)

    import paho.mqtt.client as mqtt
    from playwright.sync_api import sync_playwright

    dev, topics = "browserbench", Topics()
    arrivals: dict[int, float] = {}
    lock = threading.Lock()
    work = DATA / "browser"
    with Mosquitto(work / "broker") as broker, Server(work / "server", broker.port) as server:
        obs = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-browser-observer")

        def on_message(client, userdata, msg):
            now = time.time()
            seq = json.loads(msg.payload)["seq"]
            with lock:
                arrivals[seq] = now

        obs.on_message = on_message
        obs.connect("127.0.0.1", broker.port)
        obs.subscribe(topics.event(dev), 1)
        obs.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-browser-device")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        pub.publish(topics.available(dev), b"online", qos=1, retain=True).wait_for_publish(5)
        now = time.time()
        pub.publish(
            topics.state(dev),
            StatePayload(
                device=dev,
                label="program",
                since_ts=now,
                since_stream_t=0.0,
                confidence=0.9,
                model_version="bench",
                ts=now,
            ).to_bytes(),
            qos=1,
            retain=True,
        ).wait_for_publish(5)
        time.sleep(1.0)
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page()
            page.goto(f"{server.base}/#/live")
            page.get_by_test_id("login-username").fill(BENCH_USER)
            page.get_by_test_id("login-password").fill(BENCH_PASSWORD)
            page.get_by_test_id("login-submit").click()
            page.wait_for_selector(f'[data-testid="device-state-{dev}"]', timeout=15000)
            page.wait_for_function(
                "() => document.querySelector('[data-testid=conn-status]')?.textContent.trim() === 'connected'",
                timeout=15000,
            )
            log(f"initial state in the page: {page.evaluate(OBSERVER, dev)}")
            sent = []
            for seq in range(1, args.events + 1):
                now = time.time()
                kind = EventType.AD_START if seq % 2 else EventType.AD_END
                ev = EventPayload(
                    device=dev,
                    event_id=new_event_id(),
                    seq=seq,
                    type=kind,
                    boundary_ts=now - 0.7,
                    decided_ts=now,
                    boundary_stream_t=seq * 20.0,
                    decided_stream_t=seq * 20.0 + 0.7,
                    confidence=0.95,
                    model_version="bench",
                )
                pub.publish(topics.event(dev), ev.to_bytes(), qos=1)
                # what an edge agent publishes next: the retained state (the dashboard's badge follows it)
                pub.publish(
                    topics.state(dev),
                    StatePayload(
                        device=dev,
                        label="ad" if kind is EventType.AD_START else "program",
                        since_ts=now - 0.7,
                        since_stream_t=seq * 20.0,
                        confidence=0.95,
                        model_version="bench",
                        ts=now,
                    ).to_bytes(),
                    qos=1,
                    retain=True,
                )
                sent.append((seq, "AD" if kind is EventType.AD_START else "PROGRAM"))
                time.sleep(args.interval)
            time.sleep(1.0)
            changes = page.evaluate("() => window.__changes")
            page.screenshot(path=str(work / "browser-bench.png"))
            browser.close()
        obs.loop_stop()
        pub.loop_stop()

    # an event's update is the first change to its expected text after it arrived and before the event after next
    # arrived (that one expects the same text again, so a change after it cannot be told apart): an update slower
    # than the interval between events still counts, as latency; only one never shown in that time is missing
    lat, missing = [], 0
    arrival_list = [arrivals.get(seq) for seq, _ in sent]
    for i, (_seq, text) in enumerate(sent):
        arrived = arrival_list[i]
        later = [a for a in arrival_list[i + 2 : i + 3] if a is not None]
        until = later[0] if later else float("inf")
        hit = next(
            (t / 1000.0 for t, v in changes
             if v == text and arrived is not None and arrived - 0.001 <= t / 1000.0 < until),
            None,
        )
        if hit is None:
            missing += 1
        else:
            lat.append(hit - arrived)
    late = sum(1 for x in lat if x >= args.interval)
    data = {
        "events": args.events,
        "interval_s": args.interval,
        "missing": missing,
        "slower_than_interval": late,
        "latency_ms": {
            "median": round(1000 * median(lat), 1),
            "p95": round(1000 * percentile(lat, 95), 1),
            "max": round(1000 * max(lat), 1),
        }
        if lat
        else None,
    }
    md = [
        "# State change: broker -> connected browser (DOM)",
        "",
        f"{args.events} events, one every {args.interval:g} s; Debian Chromium headless via Playwright.",
        "",
        "| n | median | p95 | max | slower than the interval (counted above) | missing (never shown) |",
        "|---|---|---|---|---|---|",
        f"| {len(lat)} | {data['latency_ms']['median'] if lat else '-'} ms | "
        f"{data['latency_ms']['p95'] if lat else '-'} ms | {data['latency_ms']['max'] if lat else '-'} ms | {late} | "
        f"{missing} |",
        "",
        "Target: p95 <= 250 ms.",
        "",
        "Reproduce: `.venv/bin/python bench/bench_browser.py`.",
    ]
    write_result("browser", data, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
