"""``adbreak server`` and ``adbreak db upgrade``. ``adbreak/cli.py`` calls :func:`add_parsers`; ``python -m server``
runs the same two commands on their own. Handlers return an exit code and raise :class:`AdbreakError` on bad input.
Heavy imports (Flask, SQLAlchemy, paho) wait until a command runs."""

from __future__ import annotations

import argparse
import logging
import re
from typing import Any

from adbreak.errors import AdbreakError
from adbreak.mqtt_security import add_mqtt_security_options, mqtt_security_overrides

log = logging.getLogger(__name__)

_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$")


def parse_host_port(value: str, default_port: int = 1883) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT``."""
    m = _HOST_PORT.match(value.strip())
    if not m:
        raise AdbreakError(f"--mqtt {value!r}: expected HOST or HOST:PORT")
    port = int(m["port"]) if m["port"] else default_port
    if not 1 <= port <= 65535:
        raise AdbreakError(f"--mqtt {value!r}: port must be 1..65535")
    return m["v6"] or m["host"], port


def _server_imports() -> Any:
    try:
        import flask  # noqa: F401
        import flask_socketio  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise AdbreakError(f"the server needs its dependencies: pip install 'adbreak[server]' ({exc.name} missing)") \
            from None


def _settings(args: argparse.Namespace, **extra: Any):
    from server.settings import load_settings

    overrides: dict[str, Any] = {"database_url": getattr(args, "db", None), **extra}
    mqtt = getattr(args, "mqtt", None)
    if mqtt is not None:
        overrides["mqtt_host"], overrides["mqtt_port"] = parse_host_port(mqtt)
    return load_settings(args.config, **overrides)


def _quiet_by_default(args: argparse.Namespace) -> None:
    """The server's own INFO lines (connected, listening, stopped) are worth seeing without -v."""
    if not getattr(args, "verbose", False):
        logging.getLogger("server").setLevel(logging.INFO)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request only with -v


def cmd_server(args: argparse.Namespace) -> int:
    _server_imports()
    settings = _settings(args, port=args.port, host=args.host, mqtt_prefix=args.prefix,
                         **mqtt_security_overrides(args))
    _quiet_by_default(args)
    from server.app import run_server

    return run_server(settings)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    _server_imports()
    settings = _settings(args)
    from server import db

    result = db.upgrade(settings.database_url)
    where = db.shown(settings.database_url)
    if not result.changed:
        print(f"database {where} is already at revision {result.to_revision}")
    else:
        print(f"database {where} upgraded from revision {result.from_revision or 'none'} to {result.to_revision}")
        if result.backup is not None:
            print(f"backup of the previous database: {result.backup}")
    return 0


def cmd_db_prune(args: argparse.Namespace) -> int:
    """The retention job once, to the end (or only counted with --dry-run); optionally VACUUM an SQLite file."""
    _server_imports()
    overrides = {f"retention_{k}_days": getattr(args, f"{k}_days") for k in ("events", "firings", "corrections")}
    settings = _settings(args, **overrides)
    import time

    from server import db
    from server.retention import Retention, RetentionPolicy, count_due, file_bytes, vacuum_sqlite
    from server.store import SegmentStore

    url = settings.database_url
    db.check_schema(url)
    policy = RetentionPolicy(events_days=settings.retention_events_days, firings_days=settings.retention_firings_days,
                             corrections_days=settings.retention_corrections_days,
                             batch_rows=settings.retention_batch_rows)
    path = db.sqlite_path(url)
    if args.vacuum and path is None:
        raise AdbreakError("--vacuum is for an SQLite file; PostgreSQL reclaims space with its own (auto)vacuum")
    engine = db.make_engine(url)
    try:
        now = time.time()
        if args.dry_run:
            with engine.connect() as conn:
                due = count_due(conn, policy, now)
            print("would delete: " + ", ".join(f"{n} {t}" for t, n in due.items()))
            return 0
        done = Retention(policy, clock=lambda: now).run_pass(SegmentStore(db.make_sessionmaker(engine)))
        print("deleted: " + ", ".join(f"{n} {t}" for t, n in done.items()))
    finally:
        engine.dispose()
    if args.vacuum:
        before, after = vacuum_sqlite(path)
        print(f"vacuumed {path}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (incremental auto-vacuum from now on)")
    elif path is not None:
        print(f"database file: {file_bytes(path) / 1e6:.1f} MB")
    return 0


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {value}") from None
    if not 0 <= days < float("inf"):
        raise argparse.ArgumentTypeError(f"days must be >= 0 (0 keeps forever): {value}")
    return days


def _offline_runtime(args: argparse.Namespace):
    """The server's app without MQTT (for commands that change users and tokens in the database)."""
    settings = _settings(args)
    from server.app import create_app

    app, _ = create_app(settings, start_mqtt=False)
    return app, app.extensions["adbreak"]


def _read_password(args: argparse.Namespace) -> str:
    import getpass
    import sys

    from server.auth import MIN_PASSWORD

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise AdbreakError("the two passwords differ")
    if len(password) < MIN_PASSWORD:
        raise AdbreakError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def cmd_user(args: argparse.Namespace) -> int:
    _server_imports()
    import re as _re

    from werkzeug.exceptions import HTTPException

    from server.auth import USERNAME_PATTERN

    app, runtime = _offline_runtime(args)
    auth = runtime.auth
    if auth.first_password is not None:
        print(f"first start: created the admin user with password {auth.first_password}")
    try:
        if args.user_command == "list":
            for u in auth.users():
                print(f"{u['username']}{' (admin)' if u['is_admin'] else ''}")
            return 0
        name = args.name
        if not _re.match(USERNAME_PATTERN, name):
            raise AdbreakError(f"user name {name!r} must match {USERNAME_PATTERN}")
        existing = {u["username"]: u for u in auth.users()}
        if args.user_command == "add":
            if name in existing:
                raise AdbreakError(f"user {name!r} exists (use `adbreak user passwd {name}`)")
            auth.add_user(name, _read_password(args), is_admin=args.admin)
            print(f"user {name!r} added{' as admin' if args.admin else ''}")
        elif args.user_command == "passwd":
            if name not in existing:
                raise AdbreakError(f"no user {name!r}")
            auth.set_password(existing[name]["id"], _read_password(args))
            print(f"password of {name!r} changed")
        elif args.user_command == "token":
            if name not in existing:
                raise AdbreakError(f"no user {name!r}")
            token = auth.create_token(existing[name]["id"], args.token_name)
            print(token["token"])
        return 0
    except HTTPException as exc:
        raise AdbreakError(str(exc.description)) from None
    finally:
        runtime.stop()


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1..65535: {value}")
    return port


def _add_config_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML settings file (keys as in docs/server.md); "
                   "ADBREAK_SERVER_* environment variables and these options override it")
    p.add_argument("--db", metavar="URL", help="database URL (sqlite:///adbreak.db)")


def add_parsers(subparsers: Any, common_parent: argparse.ArgumentParser) -> None:
    """Add ``server`` and ``db`` (with ``upgrade``) to the ``adbreak`` command line."""
    p = subparsers.add_parser(
        "server", parents=[common_parent], help="the server: MQTT ingest, database, API, dashboard, auto-mute",
        description="Ingests the edge agents' MQTT events into SQLite, serves the REST API (/api/v1), Socket.IO and "
        "the dashboard, and runs the auto-mute rule. The database must be at the current schema revision "
        "(`adbreak db upgrade`). Stops cleanly on SIGTERM or Ctrl-C.")
    _add_config_options(p)
    p.add_argument("--mqtt", metavar="HOST:PORT", help="MQTT broker (127.0.0.1:1883)")
    p.add_argument("--prefix", help="MQTT topic prefix (adbreak)")
    p.add_argument("--host", help="address to listen on (0.0.0.0)")
    p.add_argument("--port", type=_port, help="HTTP port of the API and dashboard (8080)")
    add_mqtt_security_options(p)
    p.set_defaults(func=cmd_server)

    p = subparsers.add_parser("user", parents=[common_parent], help="dashboard users and API tokens",
                              description="Adds users, changes passwords and creates API tokens in the server's "
                              "database (the server may be running).")
    usub = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    u = usub.add_parser("list", help="list the users")
    _add_config_options(u)
    for action, helptext in (("add", "add a user"), ("passwd", "set a user's password"),
                             ("token", "create an API token for a user and print it (shown once)")):
        u = usub.add_parser(action, help=helptext)
        _add_config_options(u)
        u.add_argument("name", help="user name")
        if action == "token":
            u.add_argument("--token-name", default="cli", help="a name to recognise the token by (cli)")
        else:
            u.add_argument("--password-stdin", action="store_true",
                           help="read the password from the first line of standard input instead of asking")
        if action == "add":
            u.add_argument("--admin", action="store_true", help="the user may manage other users")
    p.set_defaults(func=cmd_user)

    p = subparsers.add_parser("db", parents=[common_parent], help="database maintenance (upgrade, prune)",
                              description="Database maintenance.")
    dbsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    u = dbsub.add_parser("upgrade", help="create the database or migrate it to the "
                         "current schema (backing up an existing SQLite file first)",
                         description="Runs the Alembic migrations to the head revision. An existing SQLite file "
                         "is first copied to <file>.bak-<revision>-<timestamp>.")
    _add_config_options(u)
    u.set_defaults(func=cmd_db_upgrade)
    u = dbsub.add_parser("prune", help="delete rows past the retention horizons now (the server does it hourly)",
                         description="Deletes events and closed segments, rule firings and runs, and corrections "
                         "older than the retention settings (docs/server.md), in short batches (the server may be "
                         "running). Never an open segment nor a device's last event.")
    _add_config_options(u)
    u.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    u.add_argument("--events-days", type=_days, help="events and closed segments older than this (365; 0: keep)")
    u.add_argument("--firings-days", type=_days, help="rule firings and runs older than this (90; 0: keep)")
    u.add_argument("--corrections-days", type=_days, help="corrections older than this (365; 0: keep)")
    u.add_argument("--vacuum", action="store_true",
                   help="then rebuild the SQLite file (VACUUM) in incremental auto-vacuum mode, so that space freed "
                   "from now on goes back to the file system; blocks writers while it runs")
    u.set_defaults(func=cmd_db_prune)
