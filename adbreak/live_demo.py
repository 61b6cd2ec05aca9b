"""``adbreak demo``: the whole system on embedded defaults.

1. a model: a training broadcast is built from the bundled clips, cut into labelled frames and trained (cached under
   the output folder, so the second start skips it);
2. the sample broadcast to replay (other clips and seed than training);
3. an MQTT broker: the one given by ``--mqtt`` / ``ADBREAK_MQTT``, else an embedded amqtt broker;
4. SQLite migrated by Alembic (``adbreak db upgrade``), the server (``adbreak server``) and an edge agent
   (``adbreak edge``) replaying the sample in real time (or ``--speed`` times faster) in a loop, each its own process
   exactly as in production;
5. the dashboard URL; Ctrl-C (or ``--duration`` seconds) stops everything and prints what was stored.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from adbreak.atomic import write_text as write_text_atomic
from adbreak.errors import AdbreakError

log = logging.getLogger(__name__)

DEVICE = "living-room-tv"
DEMO_USER = "admin"
TRAIN_S = 300.0
SAMPLE_S = 200.0  # seed 10: breaks at 40-72 s and 126-148 s, so the first ad shows within a minute
SAMPLE_SEED = 10
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class DemoOptions:
    out: Path
    speed: float = 1.0
    duration: float | None = None
    port: int = 8080
    host: str = "127.0.0.1"
    mqtt: str | None = None
    progress: bool = True
    prepare_only: bool = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(msg: str) -> None:
    print(msg, flush=True)


def prepare_model(out: Path, *, progress: bool) -> Path:
    """Train (once) the demo's model bundle on a built training broadcast; returns the bundle path."""
    from adbreak.demo import _broadcast
    from edge.bundle import ModelBundle

    model = out / "model"
    if (model / "bundle.json").exists():
        try:
            ModelBundle.load(model)
            return model
        except AdbreakError as exc:
            _say(f"    the cached model is unusable ({exc}); training again")
    from adbreak.frames import extract
    from adbreak.training.trainer import TrainConfig, train

    bc = _broadcast(out, "train", seed=1, duration_s=TRAIN_S, pool="train", progress=progress)
    frames = out / "frames"
    if frames.exists():
        import shutil

        shutil.rmtree(frames)
    extract(bc.video, bc.truth, frames, fps=2.0, progress=progress)
    result = train(frames, model, TrainConfig(name="demo", force=True, cache_dir=out / "cache", progress=progress))
    from adbreak.demo import holdout_text

    _say(f"    model trained: {holdout_text(result.report)}")
    return model


def _get_json(url: str, timeout: float = 2.0, opener: urllib.request.OpenerDirector | None = None) -> dict:
    with (opener or urllib.request.build_opener()).open(url, timeout=timeout) as r:  # our own local server
        return json.loads(r.read().decode("utf-8"))


def _signed_in(base: str, password: str) -> urllib.request.OpenerDirector:
    """A urllib opener holding a session of the demo's admin (for the summary at the end)."""
    import http.cookiejar

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    try:
        token = _get_json(f"{base}/api/v1/auth/me", opener=opener)["csrf_token"]
    except urllib.error.HTTPError as exc:  # 401 with the token in the body
        token = json.loads(exc.read().decode("utf-8"))["csrf_token"]
    req = urllib.request.Request(f"{base}/api/v1/auth/login", method="POST",
                                 data=json.dumps({"username": DEMO_USER, "password": password}).encode(),
                                 headers={"Content-Type": "application/json", "X-CSRFToken": token})
    with opener.open(req, timeout=5.0):
        pass
    return opener


def demo_password(out: Path) -> str:
    """The demo admin's password: made once per demo folder and kept in it (the demo database keeps the user)."""
    path = out / "admin-password.txt"
    if path.is_file():
        return path.read_text().strip()
    import secrets

    password = secrets.token_urlsafe(9)
    write_text_atomic(path, password + "\n")
    path.chmod(0o600)
    return password


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AdbreakError(f"the server exited with code {proc.returncode} while starting (see its log)")
        try:
            _get_json(url, timeout=1.0)
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.2)
    raise AdbreakError(f"the server did not answer on {url} within {timeout:.0f} s")


def _spawn(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    return subprocess.Popen([sys.executable, "-m", "adbreak", *args], stdout=fh, stderr=subprocess.STDOUT,
                            cwd=str(ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def _stop(proc: subprocess.Popen | None, name: str, timeout: float = 10.0) -> int | None:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0f s; killing it", name, timeout)
        proc.kill()
        return proc.wait()


def run_live_demo(opts: DemoOptions) -> int:
    from adbreak.broker import EmbeddedBroker, port_free

    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    if opts.speed <= 0:
        raise AdbreakError("--speed must be > 0")
    if not opts.prepare_only and not port_free(opts.host, opts.port):
        raise AdbreakError(f"port {opts.port} on {opts.host} is in use: pick another with --port")

    _say(f"1/4 model: {out / 'model'}")
    model = prepare_model(out, progress=opts.progress)
    from adbreak.demo import _broadcast

    _say("2/4 sample broadcast to replay")
    sample = _broadcast(out, "sample", seed=SAMPLE_SEED, duration_s=SAMPLE_S, pool="heldout", progress=opts.progress)
    _say(f"    {sample.video} ({sample.duration_s:.0f} s, truth {sample.truth})")
    if opts.prepare_only:
        return 0

    broker = None
    mqtt = opts.mqtt or os.environ.get("ADBREAK_MQTT")
    if mqtt:
        _say(f"3/4 MQTT broker: {mqtt} (configured)")
    else:
        port = 1883 if port_free("127.0.0.1", 1883) else _free_port()
        broker = EmbeddedBroker("127.0.0.1", port).start()
        mqtt = f"127.0.0.1:{port}"
        _say(f"3/4 MQTT broker: embedded (amqtt) on {mqtt}")

    db = f"sqlite:///{out / 'adbreak.db'}"
    server = edge = None
    stopping = False

    def on_signal(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    rc = 0
    try:
        up = subprocess.run([sys.executable, "-m", "adbreak", "db", "upgrade", "--db", db], capture_output=True,
                            text=True, cwd=str(ROOT))
        if up.returncode != 0:
            raise AdbreakError(f"database upgrade failed: {(up.stderr or up.stdout).strip().splitlines()[-1:]}")
        password = demo_password(out)
        server = _spawn(["server", "--db", db, "--mqtt", mqtt, "--host", opts.host, "--port", str(opts.port)],
                        logs / "server.log", env={"ADBREAK_SERVER_ADMIN_USERNAME": DEMO_USER,
                                                  "ADBREAK_SERVER_ADMIN_PASSWORD": password,
                                                  "ADBREAK_SERVER_DATA_DIR": str(out / "server-data")})
        base = f"http://{opts.host}:{opts.port}"
        _wait_http(f"{base}/api/v1/health", server, timeout=30)
        edge_args = ["edge", "--source", str(sample.video), "--device", DEVICE, "--model", str(model), "--mqtt", mqtt,
                     "--speed", f"{opts.speed:g}", "--loop", "--state-dir", str(out / "edge-state")]
        edge = _spawn(edge_args, logs / "edge.log")
        dashboard = "" if (ROOT / "web" / "dist" / "index.html").exists() else "  (not built: run `make web`)"
        _say(f"4/4 running: server pid {server.pid}, edge agent pid {edge.pid} replaying at {opts.speed:g}x; "
             f"logs in {logs}")
        _say(f"\n    dashboard:  {base}/{dashboard}\n    sign in:    user {DEMO_USER}, password {password} "
             f"(kept in {out / 'admin-password.txt'})\n    API:        {base}/api/v1/health\n"
             f"    MQTT:       mosquitto_sub -h {mqtt.split(':')[0]} -p {mqtt.split(':')[1]} -t 'adbreak/#' -v\n")
        _say("    the first ad break of the sample starts "
             f"{next(s.start for s in sample.segments if s.label == 'ad') / opts.speed:.0f} s after the agent starts; "
             + ("Ctrl-C stops everything." if opts.duration is None else f"stopping after {opts.duration:g} s."))
        started = time.monotonic()
        while not stopping:
            if opts.duration is not None and time.monotonic() - started >= opts.duration:
                break
            for name, proc in (("server", server), ("edge agent", edge)):
                if proc.poll() is not None:
                    raise AdbreakError(f"the {name} exited with code {proc.returncode}; see {logs}")
            time.sleep(0.2)
        _stop(edge, "edge agent")  # it says `stopped`; the server's fail-safe unmutes a device stopped mid-ad
        time.sleep(1.0)
        rc = _summary(base, sample, opts, password)
    finally:
        _stop(edge, "edge agent")
        _stop(server, "server")
        if broker is not None:
            broker.stop()
        for s, h in old.items():
            signal.signal(s, h)
    return rc


def _summary(base: str, sample, opts: DemoOptions, password: str) -> int:
    """Print what the server stored; non-zero when a run long enough to hold an ad break stored none."""
    try:
        opener = _signed_in(base, password)
        segs = _get_json(f"{base}/api/v1/segments?device={DEVICE}&limit=10000", opener=opener)["segments"]
        firings = _get_json(f"{base}/api/v1/rules/firings?device={DEVICE}&limit=10000", opener=opener)["firings"]
        health = _get_json(f"{base}/api/v1/health", opener=opener)
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        _say(f"could not read the results from the server: {exc}")
        return 1
    ads = [s for s in segs if s["label"] == "ad"]
    _say(f"stored: {len(segs)} segments ({len(ads)} ad), {len(firings)} mute firings "
         f"({sum(f['action'] == 'mute' for f in firings)} mute, {sum(f['action'] == 'unmute' for f in firings)} "
         f"unmute); rejected payloads: {sum(health['counters']['rejected'].values())}")
    first_ad_end = next(s.end for s in sample.segments if s.label == "ad")
    if opts.duration is not None and opts.duration * opts.speed > first_ad_end + 5 and not ads:
        _say("error: the replay passed an ad break but no ad segment was stored")
        return 1
    return 0
