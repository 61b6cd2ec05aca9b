"""Bad MQTT input at volume (issue 5, item 4): more than 10,000 hostile messages against a real Mosquitto and a real
``adbreak server`` process, while an edge-like publisher sends genuine events for three devices.

The hostile messages come from a seeded generator (reproducible: ``FUZZ_SEED``), one category after another at
random: malformed and truncated JSON, non-objects, deep nesting, NaN/Infinity, wrong types, out-of-range values,
unknown fields, unicode and NUL junk, the wrong schema version, payloads over the contract's limits and over the
broker's own limit, a payload whose device differs from its topic's, bad device names in the topic, topics under the
prefix that are not part of the contract, keyframes whose data is not a JPEG (or not base64, or of another size),
events from devices that never announced themselves, replays of genuine events and events with a stale sequence
number, some of them retained, and raw bytes that are not MQTT at all.

Each message carries the outcome the contract prescribes for it, computed when it is made: the reason the server
must count it under (``too_large``, ``bad_json``, ... ``out_of_order``), or none where the broker never hands it
on (a topic the server does not subscribe to; a packet over the broker's limit, which costs its sender the
connection). The wire-level reasons are checked against ``adbreak.wire`` as each message is made, so the generator
cannot drift from the contract; the server-side ones (``unknown_device``, ``duplicate``, ``out_of_order``) follow
from the state the test builds.

Then: the server process is alive, its log has no traceback, it received exactly the messages the broker had to
deliver, every genuine event is stored exactly once, and its rejection counters went up by exactly the expected
count for each reason.
"""

from __future__ import annotations

import base64
import io
import json
import random
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import requests
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from adbreak.wire import (
    MAX_PAYLOAD_BYTES,
    REJECT_REASONS,
    EventPayload,
    EventType,
    KeyframePayload,
    Kind,
    StatePayload,
    TelemetryPayload,
    Topics,
    WireError,
    new_event_id,
    parse_availability,
    parse_event,
    parse_keyframe,
    parse_settings_state,
    parse_state,
    parse_telemetry,
)
from tests.db_support import sqlite_url
from tests.mqtt_support import find_free_port, stop_process, wait_for
from tests.server_support import ServerProcess
from tests.support import missing_service

FUZZ_SEED = 20261123
HOSTILE = 10_500
"""Hostile messages sent through the broker by the fuzzing client (plus the over-limit and raw-garbage ones)."""
OVER_LIMIT = 12
"""Messages over the broker's limit, each from a client of its own (the broker drops the connection)."""
RAW_GARBAGE = 12
"""Connections that send bytes that are not MQTT."""
BROKER_LIMIT = 131_072
"""``message_size_limit`` of the test's broker: more than the contract's largest payload (a keyframe, 96 KiB)."""
GENUINE = ("tv-0", "tv-1", "tv-2")
FUZZ_DEVICES = tuple(f"fuzz-{i}" for i in range(8))
"""Devices that never announce themselves: a valid event, telemetry or keyframe of theirs is ``unknown_device``."""
TOPICS = Topics()
JSON_KINDS = (Kind.EVENT, Kind.STATE, Kind.TELEMETRY, Kind.KEYFRAME, Kind.SETTINGS_STATE)
PARSERS = {
    Kind.EVENT: parse_event,
    Kind.STATE: parse_state,
    Kind.TELEMETRY: parse_telemetry,
    Kind.KEYFRAME: parse_keyframe,
    Kind.SETTINGS_STATE: parse_settings_state,
}
NOT_FOR_THE_SERVER = ("bogus", "event/extra", "mute/set", "settings/set", "settings", "state/", "keyframe/x",
                      "available/now")


# ---------------------------------------------------------------------------------------------------- the broker
@pytest.fixture
def broker(tmp_path_factory) -> Iterator[tuple[str, int]]:
    """A private Mosquitto with a message size limit, queueing any number of QoS 1 messages for the server."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        missing_service("the mosquitto broker is not installed")
    workdir = tmp_path_factory.mktemp("fuzz-mosquitto")
    port = find_free_port()
    (workdir / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"
        f"message_size_limit {BROKER_LIMIT}\n")
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(workdir / "mosquitto.conf")], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return proc.poll() is not None

        wait_for(listening, timeout=10, what="mosquitto to listen")
        assert proc.poll() is None, (workdir / "mosquitto.log").read_text()
        yield ("127.0.0.1", port)
    finally:
        stop_process(proc)


def _client(host: str, port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{time.monotonic_ns()}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return client


# ---------------------------------------------------------------------------------------------------- genuine traffic
def _jpeg(width: int, height: int, rng: random.Random) -> bytes:
    pixels = np.random.default_rng(rng.randrange(2**32)).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=60)
    return out.getvalue()


class Genuine:
    """An edge-like publisher: announces its devices (retained ``online`` and state), then sends events (QoS 1,
    seq counting up) and telemetry (QoS 0) until told to stop. ``acked``: the events the broker acknowledged."""

    def __init__(self, host: str, port: int) -> None:
        self.client = _client(host, port, "genuine")
        self.lock = threading.Lock()
        self.acked: dict[str, list[EventPayload]] = {d: [] for d in GENUINE}
        self.published = 0  # messages, all kinds
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="genuine", daemon=True)

    def announce(self) -> None:
        now = time.time()
        for device in GENUINE:
            self._send(TOPICS.available(device), b"online", qos=1, retain=True)
            state = StatePayload(device=device, label="program", since_ts=now - 60, since_stream_t=0.0,
                                 confidence=0.9, model_version="fuzz-1", ts=now)
            self._send(TOPICS.state(device), state.to_bytes(), qos=1, retain=True)

    def _send(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(30)
            assert info.is_published(), f"genuine message on {topic} not acknowledged"
        self.published += 1

    def _run(self) -> None:
        try:
            seq = dict.fromkeys(GENUINE, 0)
            t0 = time.time()
            n = 0
            while not self.stop.is_set():
                device = GENUINE[n % len(GENUINE)]
                n += 1
                seq[device] += 1
                decided = time.time()
                event = EventPayload(device=device, event_id=new_event_id(), seq=seq[device],
                                     type=EventType.AD_START if seq[device] % 2 else EventType.AD_END,
                                     boundary_ts=decided - 1.5, decided_ts=decided, boundary_stream_t=decided - t0,
                                     decided_stream_t=decided - t0 + 1.5, confidence=0.95, model_version="fuzz-1")
                self._send(TOPICS.event(device), event.to_bytes(), qos=1)
                with self.lock:
                    self.acked[device].append(event)
                telemetry = TelemetryPayload(device=device, ts=decided, stream_t=decided - t0, p_ad=0.5,
                                             smoothed=0.5, label="ad" if seq[device] % 2 else "program", fps=5.0,
                                             latency_ms=8.0)
                self._send(TOPICS.telemetry(device), telemetry.to_bytes(), qos=0)
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def events(self) -> list[EventPayload]:
        with self.lock:
            return [e for evs in self.acked.values() for e in evs]


# ---------------------------------------------------------------------------------------------------- hostile traffic
@dataclass(frozen=True)
class Hostile:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    expect: str | None
    """The reason the server must count it under; ``None``: the broker does not hand it to the server."""
    category: str


def _wire_reason(topic: str, payload: bytes) -> str | None:
    """What ``adbreak.wire`` says of a message the server subscribes to (None: it parses)."""
    try:
        _device, kind = TOPICS.parse(topic)
        if kind is Kind.AVAILABLE:
            parse_availability(payload)
        else:
            PARSERS[kind](payload, _device)
    except WireError as exc:
        return exc.reason
    return None


class HostileGenerator:
    """Makes hostile messages, one category at a time, from a seeded ``random.Random``."""

    def __init__(self, seed: int, genuine: Genuine) -> None:
        self.rng = random.Random(seed)
        self.genuine = genuine
        self.jpegs = [(w, h, _jpeg(w, h, self.rng)) for w, h in ((64, 36), (96, 54), (32, 32))]
        self.categories = [
            (self.bad_json, 18), (self.not_an_object, 5), (self.deep, 3), (self.bad_version, 6),
            (self.wrong_type, 16), (self.nan, 6), (self.out_of_range, 8), (self.unknown_field, 4),
            (self.bad_unicode, 6), (self.too_large, 2), (self.mismatch, 6), (self.bad_device, 6),
            (self.not_subscribed, 4), (self.bad_keyframe, 6), (self.bad_availability, 4), (self.unknown_device, 6),
            (self.duplicate, 4), (self.stale_seq, 4),
        ]
        self.weights = [w for _, w in self.categories]

    # -- helpers
    def device(self) -> str:
        return self.rng.choice(FUZZ_DEVICES)

    def any_device(self) -> str:
        return self.rng.choice(FUZZ_DEVICES + GENUINE)

    def valid(self, kind: Kind, device: str) -> dict:
        """A payload of ``kind`` the contract accepts, as a dict."""
        r = self.rng
        now = time.time()
        if kind is Kind.EVENT:
            return json.loads(EventPayload(
                device=device, event_id=new_event_id(), seq=r.randint(1, 10**6), type=r.choice(list(EventType)),
                boundary_ts=now - 2, decided_ts=now, boundary_stream_t=r.uniform(0, 1e4),
                decided_stream_t=r.uniform(0, 1e4), confidence=r.random(), model_version="m").to_bytes())
        if kind is Kind.STATE:
            return json.loads(StatePayload(device=device, label=r.choice(["program", "ad"]), since_ts=now - 5,
                                           since_stream_t=1.0, confidence=r.random(), model_version="m",
                                           ts=now).to_bytes())
        if kind is Kind.TELEMETRY:
            return json.loads(TelemetryPayload(device=device, ts=now, stream_t=r.uniform(0, 1e4), p_ad=r.random(),
                                               smoothed=r.random(), label=None, fps=5.0, latency_ms=7.5,
                                               dropped=r.randint(0, 9)).to_bytes())
        if kind is Kind.KEYFRAME:
            w, h, data = r.choice(self.jpegs)
            return json.loads(KeyframePayload.build(jpeg_bytes=data, device=device, frame_id=new_event_id(), ts=now,
                                                    stream_t=3.0, kind="sample", reason="boundary", p_ad=0.5,
                                                    label="ad", model_version="m", width=w, height=h).to_bytes())
        settings = {"smoothing": "window", "window_s": 4.0, "ema_tau_s": 2.0, "enter_threshold": 0.7,
                    "exit_threshold": 0.3, "min_ad_s": 5.0, "min_program_s": 5.0}
        return {"v": 1, "device": device, "settings": settings, "defaults": settings, "overrides": {},
                "error": None, "rejected": 0, "ts": now}

    def msg(self, kind_or_topic: Kind | str, device: str, payload: bytes, expect: str | None, category: str,
            *, qos: int | None = None, retain: bool | None = None) -> Hostile:
        topic = TOPICS.topic(device, kind_or_topic) if isinstance(kind_or_topic, Kind) else kind_or_topic
        r = self.rng
        if expect == "wire":  # junk whose reason depends on where it landed: the contract's own verdict
            expect = _wire_reason(topic, payload)
            assert expect is not None, (category, topic, payload[:200])
        elif expect is not None and expect not in ("unknown_device", "duplicate", "out_of_order"):
            assert _wire_reason(topic, payload) == expect, (category, topic, payload[:200])
        return Hostile(topic, payload, r.choice((0, 1, 1)) if qos is None else qos,
                       (r.random() < 0.08) if retain is None else retain, expect, category)

    # -- categories (each returns one message)
    def bad_json(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        device = self.any_device()
        good = json.dumps(self.valid(kind, device)).encode()
        choice = r.randrange(6)
        if choice == 0:  # truncated: an object cut short is never JSON
            payload = good[:r.randrange(0, len(good) - 1)]
        elif choice == 1:  # not UTF-8
            payload = b"\xff" + r.randbytes(r.randrange(0, 300))
        elif choice == 2:  # NUL bytes and control junk
            payload = b"\x00" * r.randrange(1, 50) + good[:r.randrange(len(good))]
        elif choice == 3:  # a byte order mark in front of a good object
            payload = b"\xef\xbb\xbf" + good
        elif choice == 4:  # trailing garbage
            payload = good + b"}" + r.randbytes(r.randrange(1, 20))
        else:  # single quotes, comments: not JSON
            payload = good.replace(b'"', b"'") if r.random() < 0.5 else b"/*x*/" + good
        return self.msg(kind, device, payload, "bad_json", "bad_json")

    def not_an_object(self) -> Hostile:
        r = self.rng
        payload = r.choice([b"[]", b"null", b"true", b"42", b'"event"', b"[1,2,3]", b"1e400", b"-0", b'[{"v":1}]'])
        return self.msg(r.choice(JSON_KINDS), self.any_device(), payload, "bad_json", "not_an_object")

    def deep(self) -> Hostile:
        r = self.rng
        depth = r.randrange(2_000, 7_000)
        if r.random() < 0.5:
            payload = b"[" * depth + b"]" * depth
        else:
            payload = b'{"v":1,"device":"fuzz-0","x":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"
        return self.msg(r.choice(JSON_KINDS), "fuzz-0", payload[:MAX_PAYLOAD_BYTES], "bad_json", "deep")

    def bad_version(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        device = self.any_device()
        body = self.valid(kind, device)
        change = r.randrange(5)
        if change == 0:
            del body["v"]
        else:
            body["v"] = [2, 0, "1", True, None, [1], {"v": 1}, -1, 10**20][r.randrange(9)]
        return self.msg(kind, device, json.dumps(body).encode(), "bad_version", "bad_version")

    def _mutated(self, kind: Kind, device: str, value_for: callable, category: str) -> Hostile:
        body = self.valid(kind, device)
        field = self.rng.choice([k for k in body if k not in ("v", "device")])
        body[field] = value_for(field)
        return self.msg(kind, device, json.dumps(body, allow_nan=True).encode(), "bad_payload", category)

    def wrong_type(self) -> Hostile:
        r = self.rng
        junk = [[], {"x": 1}, [1, 2], [None], {"": []}, [{"v": 1}]]  # no field of the contract takes these
        return self._mutated(r.choice(JSON_KINDS), self.device(), lambda f: r.choice(junk), "wrong_type")

    def nan(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        body = self.valid(kind, self.device())
        field = r.choice([k for k in body if k not in ("v", "device")])
        token = r.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
        text = json.dumps({**body, field: "@@"}).replace('"@@"', token)
        return self.msg(kind, body["device"], text.encode(), "bad_payload", "nan")

    def out_of_range(self) -> Hostile:
        r = self.rng
        kind = r.choice((Kind.EVENT, Kind.TELEMETRY, Kind.STATE, Kind.KEYFRAME))
        body = self.valid(kind, self.device())
        bad = {
            Kind.EVENT: [("seq", 0), ("seq", -5), ("seq", 2**60), ("seq", 1.5), ("confidence", 1.01),
                         ("confidence", -0.1), ("event_id", "A" * 32), ("event_id", "0" * 31), ("type", "ad_middle"),
                         ("decided_ts", body.get("boundary_ts", 0) - 100), ("model_version", "m" * 257)],
            Kind.TELEMETRY: [("p_ad", 2.0), ("smoothed", -1), ("fps", -1.0), ("latency_ms", -0.5),
                             ("dropped", -1), ("label", "commercial")],
            Kind.STATE: [("label", "AD"), ("confidence", 7), ("model_version", "x" * 300)],
            Kind.KEYFRAME: [("width", 0), ("height", 5000), ("kind", "thumbnail"), ("reason", "Not Valid"),
                            ("frame_id", "xyz"), ("p_ad", 1.5)],
        }[kind]
        field, value = r.choice(bad)
        body[field] = value
        return self.msg(kind, body["device"], json.dumps(body).encode(), "bad_payload", "out_of_range")

    def unknown_field(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        body = self.valid(kind, self.any_device())
        if r.random() < 0.5:
            body[r.choice(["__proto__", "constructor", "extra", "V", "dévice", "\u0000"])] = 1
        else:
            del body[r.choice([k for k in body if k not in ("v", "device", "reason", "p_ad", "label", "dropped",
                                                            "overrides", "error", "rejected")])]
        return self.msg(kind, body["device"], json.dumps(body).encode(), "bad_payload", "unknown_field")

    def bad_unicode(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        body = self.valid(kind, self.device())
        choice = r.randrange(3)
        if choice == 0:  # a lone surrogate: not UTF-8
            text = json.dumps(body)[:-1] + ',"x":"\ud800"}'
            return self.msg(kind, body["device"], text.encode("utf-8", "surrogatepass"), "bad_json", "bad_unicode")
        if choice == 1:  # the device name in other scripts / with NUL (fails the device pattern)
            body["device"] = r.choice(["tv\u00000", "ｔｖ-0", "тв-0", "tv-0\u202e", "\U0001f4fa", "TV-0"])
            return self.msg(kind, self.device(), json.dumps(body).encode(), "bad_payload", "bad_unicode")
        body["model_version" if "model_version" in body else "ts"] = "".join(
            chr(r.randrange(0x80, 0x2FFFF)) for _ in range(300))
        text = json.dumps(body, ensure_ascii=r.random() < 0.5)
        return self.msg(kind, body["device"], text.encode("utf-8", "surrogatepass"), "wire", "bad_unicode")

    def too_large(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        limit = kind.max_bytes
        size = r.randrange(limit + 1, min(limit * 4, BROKER_LIMIT - 1024))
        body = json.dumps(self.valid(kind, self.any_device())).encode()
        payload = body[:-1] + b',"pad":"' + b"x" * max(0, size - len(body) - 10) + b'"}'
        if r.random() < 0.3:
            payload = r.randbytes(size)
        return self.msg(kind, self.any_device(), payload, "too_large", "too_large")

    def mismatch(self) -> Hostile:
        r = self.rng
        kind = r.choice(JSON_KINDS)
        owner = r.choice(GENUINE + FUZZ_DEVICES)
        topic_device = r.choice([d for d in GENUINE + FUZZ_DEVICES if d != owner])
        body = self.valid(kind, owner)
        return self.msg(kind, topic_device, json.dumps(body).encode(), "device_mismatch", "mismatch")

    def bad_device(self) -> Hostile:
        r = self.rng
        name = r.choice(["", "TV-0", "-tv", "_x", "a" * 65, "tv 0", "tv.0", "dévice", "tv\u00a00", "x$y",
                         "\U0001f4fa", "tv-0 ", "..", "a'b"])
        kind = r.choice((*JSON_KINDS, Kind.AVAILABLE))
        payload = b"online" if kind is Kind.AVAILABLE else json.dumps(self.valid(kind, "tv-0")).encode()
        return self.msg(f"adbreak/{name}/{kind.value}", name, payload, "bad_topic", "bad_device")

    def not_subscribed(self) -> Hostile:
        r = self.rng
        device = self.any_device()
        topic = r.choice([f"adbreak/{device}/{r.choice(NOT_FOR_THE_SERVER)}", "adbreak", "adbreak/",
                          f"adbreakx/{device}/event", f"other/{device}/state", f"adbreak/{device}",
                          f"ADBREAK/{device}/event", f"/adbreak/{device}/event", f"adbreak/{device}/event/"])
        payload = r.choice([b"", b"online", json.dumps(self.valid(Kind.EVENT, device)).encode(), r.randbytes(40)])
        return self.msg(topic, device, payload, None, "not_subscribed")

    def bad_keyframe(self) -> Hostile:
        r = self.rng
        body = self.valid(Kind.KEYFRAME, self.any_device())
        w, h, data = r.choice(self.jpegs)
        choice = r.randrange(6)
        if choice == 0:
            body["jpeg"] = base64.b64encode(r.randbytes(r.randrange(4, 4000))).decode()
        elif choice == 1:
            body["jpeg"] = "not base64 at all!!"
        elif choice == 2:  # a PNG
            out = io.BytesIO()
            Image.new("RGB", (w, h)).save(out, format="PNG")
            body["jpeg"] = base64.b64encode(out.getvalue()).decode()
        elif choice == 3:  # a real JPEG, wrong size claimed
            body["width"], body["height"] = w + 1, h
        elif choice == 4:  # a JPEG cut before its frame header
            body["jpeg"] = base64.b64encode(data[:r.randrange(2, 20)]).decode()
        else:  # SOI then junk
            body["jpeg"] = base64.b64encode(b"\xff\xd8" + r.randbytes(200)).decode()
        return self.msg(Kind.KEYFRAME, body["device"], json.dumps(body).encode(), "bad_payload", "bad_keyframe")

    def bad_availability(self) -> Hostile:
        r = self.rng
        choice = r.randrange(4)
        if choice == 0:
            payload, expect = b"x" * r.randrange(65, 5000), "too_large"
        elif choice == 1:
            payload, expect = b"\xff\xfeonline", "bad_payload"
        else:
            payload, expect = r.choice([b"ONLINE", b"on", b"", b"1", b'{"v":1}', b"offline!", b"\x00online",
                                        "en ligne \u2603".encode()]), "bad_payload"
        return self.msg(Kind.AVAILABLE, self.any_device(), payload, expect, "bad_availability")

    def unknown_device(self) -> Hostile:
        kind = self.rng.choice((Kind.EVENT, Kind.TELEMETRY, Kind.KEYFRAME, Kind.SETTINGS_STATE))
        device = self.device()
        payload = json.dumps(self.valid(kind, device)).encode()
        assert _wire_reason(TOPICS.topic(device, kind), payload) is None
        # retained telemetry is ignored without counting (a stale sample, not a sign of life): sent live
        return self.msg(kind, device, payload, "unknown_device", "unknown_device", retain=False)

    def duplicate(self) -> Hostile:
        acked = self.genuine.events()
        if not acked:
            return self.bad_json()
        event = self.rng.choice(acked)
        # QoS 1 like the original: the broker keeps QoS 1 messages to the server in order, so the replay comes
        # after its original (acknowledged by the broker before this was made)
        return self.msg(Kind.EVENT, event.device, event.to_bytes(), "duplicate", "duplicate", qos=1, retain=False)

    def stale_seq(self) -> Hostile:
        acked = self.genuine.events()
        if not acked:
            return self.bad_json()
        event = self.rng.choice(acked)
        stale = event.model_copy(update={"event_id": new_event_id(), "seq": self.rng.randint(1, event.seq)})
        return self.msg(Kind.EVENT, event.device, stale.to_bytes(), "out_of_order", "stale_seq", qos=1,
                        retain=False)

    def next(self) -> Hostile:
        make = self.rng.choices([c for c, _ in self.categories], weights=self.weights)[0]
        return make()


# ---------------------------------------------------------------------------------------------------- the test
def _counters(srv: ServerProcess) -> dict:
    return requests.get(f"{srv.base}/api/v1/health", timeout=10).json()["counters"]


def _over_limit(host: str, port: int, rng: random.Random) -> int:
    """Publish one message over the broker's limit from a client of its own; the broker closes the connection."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"huge-{time.monotonic_ns()}")
    gone = threading.Event()
    client.on_disconnect = lambda *a: gone.set()
    client.connect(host, port, keepalive=10)
    client.loop_start()
    try:
        size = rng.randrange(BROKER_LIMIT + 4096, 1_500_000)
        client.publish(TOPICS.event(rng.choice(GENUINE + FUZZ_DEVICES)), b"{" + b" " * size + b"}", qos=0)
        assert gone.wait(20), "the broker kept a client that sent a packet over its limit"
    finally:
        client.loop_stop()
    return 1


def _raw_garbage(host: str, port: int, rng: random.Random) -> None:
    """Bytes that are not MQTT: the broker closes the connection; nothing reaches the server."""
    with socket.create_connection((host, port), timeout=5) as s:
        junk = rng.choice([rng.randbytes(rng.randrange(1, 2000)), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                           b"\x30\xff\xff\xff\xff\x7f" + rng.randbytes(64), b"\x10\x00"])
        try:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
        except OSError:
            pass


def test_hostile_mqtt_at_volume_while_genuine_events_flow(broker, tmp_path) -> None:
    host, port = broker
    with ServerProcess(tmp_path, mqtt=(host, port), db=sqlite_url(tmp_path)) as srv:
        genuine = Genuine(host, port)
        genuine.announce()
        session = srv.session()
        wait_for(lambda: all(session.get(f"{srv.base}/api/v1/devices/{d}", timeout=5).ok for d in GENUINE),
                 timeout=30, what="the genuine devices to be known")
        before = _counters(srv)
        published_before = genuine.published
        genuine.thread.start()

        gen = HostileGenerator(FUZZ_SEED, genuine)
        fuzzer = _client(host, port, "fuzzer")
        expected: Counter[str] = Counter()
        categories: Counter[str] = Counter()
        delivered = 0
        pending = []
        t0 = time.monotonic()
        for i in range(HOSTILE):
            m = gen.next()
            categories[m.category] += 1
            info = fuzzer.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
            assert info.rc == mqtt.MQTT_ERR_SUCCESS, (m, info.rc)
            if m.qos:
                pending.append(info)
            if m.expect is not None:
                expected[m.expect] += 1
                delivered += 1
            if i % 200 == 199:  # let the broker and the server keep up, and the genuine events interleave
                for info in pending:
                    info.wait_for_publish(60)
                    assert info.is_published()
                pending.clear()
                time.sleep(0.02)
        for info in pending:
            info.wait_for_publish(60)
        # QoS 0 ones: a final QoS 1 round trip on the same connection puts them all behind us
        fuzzer.publish("adbreak/fuzz-0/bogus", b"fence", qos=1).wait_for_publish(30)
        categories["not_subscribed"] += 1
        rng = random.Random(FUZZ_SEED + 1)
        for _ in range(OVER_LIMIT):
            _over_limit(host, port, rng)
        for _ in range(RAW_GARBAGE):
            _raw_garbage(host, port, rng)
        send_s = time.monotonic() - t0
        genuine.stop.set()
        genuine.thread.join(30)
        assert genuine.error is None, repr(genuine.error)
        assert fuzzer.is_connected(), "the broker dropped the fuzzing client"
        fuzzer.disconnect()
        fuzzer.loop_stop()

        genuine_sent = genuine.published - published_before
        want_received = before["received"] + genuine_sent + delivered

        wait_for(lambda: _counters(srv)["received"] >= want_received, timeout=120,
                 what=f"the server to receive {want_received} messages")
        time.sleep(1.0)  # the ingest worker's last batch
        after = _counters(srv)
        assert srv.proc.poll() is None, "the server process died"
        log = (tmp_path / "server.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-4000:]
        assert after["received"] == want_received, (after["received"], want_received)

        # every genuine event stored exactly once
        sent = genuine.events()
        stored = session.get(f"{srv.base}/api/v1/events", params={"limit": 5000}, timeout=30).json()["events"]
        stored_ids = Counter(e["event_id"] for e in stored)
        assert all(n == 1 for n in stored_ids.values()), [k for k, n in stored_ids.items() if n > 1][:5]
        assert set(stored_ids) == {e.event_id for e in sent}, (len(stored_ids), len(sent))
        for device in GENUINE:
            seqs = [e["seq"] for e in stored if e["device"] == device]
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), device

        # every rejection counted, by reason, exactly
        got = {reason: after["rejected"][reason] - before["rejected"][reason] for reason in REJECT_REASONS}
        assert got == {reason: expected[reason] for reason in REJECT_REASONS}, (got, dict(expected))
        assert sum(got.values()) == delivered
        assert sum(categories.values()) >= 10_000
        print(f"\nfuzz: {sum(categories.values()) + OVER_LIMIT + RAW_GARBAGE} hostile messages "
              f"({delivered} refused by the server, by reason {dict(sorted(expected.items()))}), "
              f"{len(sent)} genuine events stored once, sent in {send_s:.1f} s; categories {dict(categories)}")
