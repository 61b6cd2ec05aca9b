"""The application factory and the process around it.

:func:`create_app` checks the database schema first (the server refuses to run on a database not at the head
revision), then wires the pieces: ``SegmentStore`` (data), ``MqttBridge`` (transport), ``Ingest`` (what each message
does, applied in batches by its worker thread), ``AutoMute`` (rules), ``Realtime`` (Socket.IO) and the API and
dashboard blueprints. Nothing happens at import time. :func:`run_server` serves it until SIGTERM or SIGINT, then
stops the watchdog, the bridge and the ingest worker.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass, field

from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_socketio import SocketIO
from sqlalchemy import Engine

from adbreak.errors import AdbreakError
from adbreak.mqtt_security import TlsOptions
from adbreak.wire import Kind
from server import api, api_devices, api_export, api_ha, api_recordings, api_review, api_rules, auth, web
from server.bridge import BrokerConfig, MqttBridge
from server.counters import Counters
from server.db import check_schema, make_engine, make_sessionmaker, shown
from server.device_settings import SettingsSync
from server.homeassistant import HaTopics, HomeAssistant
from server.ingest import Ingest
from server.keyframes import KeyframeStore
from server.realtime import Realtime, create_socketio
from server.retention import Retention, RetentionPolicy
from server.rule_engine import zone
from server.rule_runner import RuleRunner
from server.rules import AutoMute, MuteConfig
from server.settings import ServerSettings
from server.store import SegmentStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The long-lived pieces of one server, kept in ``app.extensions["adbreak"]``."""

    settings: ServerSettings
    engine: Engine
    store: SegmentStore
    bridge: MqttBridge
    rules: AutoMute
    realtime: Realtime
    ingest: Ingest
    auth: auth.Auth | None = None
    rule_runner: RuleRunner | None = None
    homeassistant: HomeAssistant | None = None
    keyframes: KeyframeStore | None = None
    retention: Retention | None = None
    device_settings: SettingsSync | None = None
    started: float = field(default_factory=time.monotonic)
    _running: bool = False

    def schema_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def start(self) -> None:
        """Start the ingest worker, connect to the broker (in the background), start the mute watchdog (its looks
        run on the ingest worker: one writer)."""
        if self._running:
            return
        self._running = True
        self.ingest.start()
        self.bridge.start()
        self.rules.start_watchdog(submit=self.ingest.call)
        if self.rule_runner is not None:
            self.rule_runner.start()
        if self.keyframes is not None:
            self.keyframes.start(self.ingest.call)  # retention at start, then every minute, on the worker
        if self.retention is not None:
            self.retention.start(self.ingest.call)  # at start, then hourly, in bounded steps on the worker

    def stop(self) -> None:
        """Stop the watchdog, apply and acknowledge what was received, disconnect cleanly from the broker, stop the
        ingest worker (applying what came in meanwhile: not acknowledged, so redelivered and then a duplicate), close
        the database."""
        if self._running:
            self._running = False
            self.rules.stop_watchdog()
            if self.rule_runner is not None:
                self.rule_runner.stop()  # before the flush: runs cut short are recorded
            if self.keyframes is not None:
                self.keyframes.stop()
            if self.retention is not None:
                self.retention.stop()
            if not self.ingest.flush(timeout=30):
                log.warning("stopping with messages not yet applied")
            self.bridge.stop()
            self.ingest.stop()
            self.realtime.stop()
        self.engine.dispose()


def create_app(settings: ServerSettings, *, start_mqtt: bool = True) -> tuple[Flask, SocketIO]:
    """The Flask app and its Socket.IO server. ``start_mqtt=False`` leaves the broker and the watchdog alone (call
    ``app.extensions["adbreak"].start()`` later). Raises :class:`AdbreakError` if the schema is not at head."""
    check_schema(settings.database_url)

    engine = make_engine(settings.database_url)
    counters = Counters()
    store = SegmentStore(make_sessionmaker(engine), allowlist=settings.devices, counters=counters)

    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    socketio = create_socketio(app, store, redis_url=settings.redis_url)
    realtime = Realtime(socketio)

    ingest = Ingest(store, rules=None, realtime=realtime, late_event_s=settings.late_event_s)
    bridge = MqttBridge(
        BrokerConfig(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value() if settings.mqtt_password else None,
            client_id=settings.mqtt_client_id,
            prefix=settings.mqtt_prefix,
            tls=TlsOptions(settings.mqtt_ca_file, settings.mqtt_cert_file, settings.mqtt_key_file,
                           settings.mqtt_tls_insecure) if settings.mqtt_tls else None,
            status_topic=HaTopics(settings.mqtt_prefix, settings.ha_prefix).server_status,
            share_group=settings.mqtt_share_group,
            session_expiry_s=settings.mqtt_session_expiry_s,
        ),
        ingest,
        counters=counters,
    )
    if settings.mqtt_share_group is not None:  # one device's events may reach two servers: wait for gaps to fill
        ingest.reorder_hold_s = settings.reorder_hold_s

    def on_firing(firing: dict, device: dict) -> None:
        realtime.firing(firing)
        realtime.device(device)

    rules = AutoMute(
        MuteConfig(
            enabled=settings.mute_enabled,
            topic_template=settings.mute_topic,
            prefix=settings.mqtt_prefix,
            payload_on=settings.mute_payload_on,
            payload_off=settings.mute_payload_off,
            max_ad_s=settings.max_ad_s,
            # a server of a share group sees only its share of each device's telemetry: silence proves nothing
            silent_s=settings.silent_unmute_s if settings.mqtt_share_group is None else 0.0,
        ),
        store,
        bridge.publish,
        on_firing=on_firing,
        connected=lambda: bridge.connected,
    )
    ingest.rules = rules
    try:
        rules_zone = zone(settings.timezone)
    except ValueError as exc:
        raise AdbreakError(f"invalid server settings: timezone: {exc}") from None
    rule_runner = RuleRunner(store, ingest, bridge.publish, realtime=realtime, tz=rules_zone,
                             prefix=settings.mqtt_prefix)
    ingest.rule_runner = rule_runner
    rule_runner.reload()
    homeassistant = HomeAssistant(HaTopics(settings.mqtt_prefix, settings.ha_prefix), bridge.publish,
                                  devices=store.devices, submit=ingest.call, rules=rules, on_device=realtime.device,
                                  connected=lambda: bridge.connected, discovery=settings.ha_discovery)
    for topic_filter, handler in homeassistant.routes():
        bridge.add_route(topic_filter, handler)
    bridge.on_connected(homeassistant.republish)
    ingest.device_listeners.append(homeassistant.device_changed)
    keyframes = KeyframeStore(store, settings.data_dir, max_mb=settings.keyframes_max_mb,
                              max_days=settings.keyframes_max_days, counters=counters)
    device_settings = SettingsSync(bridge.topics, bridge.publish, ingest.push_device, counters=counters)
    ingest.handlers[Kind.KEYFRAME] = lambda batch, m: keyframes.on_keyframe(batch, m.payload, retained=m.retained,
                                                                             received=m.received)
    ingest.handlers[Kind.SETTINGS_STATE] = lambda batch, m: device_settings.on_state(
        batch, m.payload, retained=m.retained, received=m.received)

    runtime = Runtime(settings=settings, engine=engine, store=store, bridge=bridge, rules=rules, realtime=realtime,
                      ingest=ingest)
    app.extensions["adbreak"] = runtime
    runtime.homeassistant = homeassistant
    runtime.auth = auth.init_app(app, runtime)  # before the other blueprints: every /api route is guarded
    runtime.rule_runner = rule_runner
    runtime.keyframes = keyframes
    runtime.retention = Retention(
        RetentionPolicy(events_days=settings.retention_events_days, firings_days=settings.retention_firings_days,
                        corrections_days=settings.retention_corrections_days,
                        batch_rows=settings.retention_batch_rows),
        interval_s=settings.retention_interval_s)
    runtime.device_settings = device_settings
    app.register_blueprint(api.bp)
    app.register_blueprint(api_review.bp)
    app.register_blueprint(api_ha.bp)
    app.register_blueprint(api_rules.bp)
    app.register_blueprint(api_export.bp)
    app.register_blueprint(api_devices.bp)
    app.register_blueprint(api_recordings.bp)
    app.register_blueprint(web.bp)
    api.register_error_handlers(app)
    if start_mqtt:
        runtime.start()
    return app, socketio


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise AdbreakError(f"cannot listen on {host}:{port}: {exc.strerror}; give another --port or --host") \
                from None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # the HTTP server's serve_forever returns on it; SIGTERM then shuts down like Ctrl-C


def run_server(settings: ServerSettings) -> int:
    """Serve until SIGTERM or SIGINT; then stop the watchdog and the MQTT bridge. Returns the exit code."""
    _check_port_free(settings.host, settings.port)
    app, socketio = create_app(settings)
    runtime: Runtime = app.extensions["adbreak"]
    if runtime.auth is not None and runtime.auth.first_password is not None:
        # shown once on the console, never logged: the only place the generated password appears
        print(f"\n  first start: sign in as {settings.admin_username!r} with password "
              f"{runtime.auth.first_password}\n  (change it under Account; set ADBREAK_SERVER_ADMIN_PASSWORD to "
              "choose it yourself)\n", flush=True)
        runtime.auth.first_password = None
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    try:
        shown_host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
        log.info("adbreak server on http://%s:%d (API /api/v1, database %s, broker %s)", shown_host, settings.port,
                 shown(settings.database_url), settings.broker)
        socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True, use_reloader=False,
                     log_output=False)
    except KeyboardInterrupt:
        pass
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        log.info("stopping")
        runtime.stop()
    log.info("stopped")
    return 0
