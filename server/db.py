"""The database: engine factory, schema revision checks and Alembic upgrades.

The schema is created and changed only by Alembic revisions in the repository's ``migrations/`` folder. The server
refuses to start on a database that is not at the head revision (:func:`check_schema`); ``adbreak db upgrade``
(:func:`upgrade`) migrates it, after copying an existing SQLite file to ``<file>.bak-<revision>-<timestamp>``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from adbreak.errors import AdbreakError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
BUSY_TIMEOUT_MS = 5000
VERSION_TABLE = "alembic_version"


# ---------------------------------------------------------------------------------------------------- engine
def _url(url: str):
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise AdbreakError(f"bad database URL {url!r}: {exc}") from None


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; ``None`` for other engines and in-memory databases."""
    u = _url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:") or u.query.get("mode") == "memory":
        return None
    return Path(u.database)


def shown(url: str) -> str:
    """The URL as it may be printed (no password)."""
    return _url(url).render_as_string(hide_password=True)


def make_engine(url: str, *, foreign_keys: bool = True) -> Engine:
    """An engine; on SQLite: WAL, ``synchronous=NORMAL``, foreign keys, a busy timeout, and real transactions; on
    PostgreSQL: pooled connections checked before use.

    pysqlite's legacy transaction control (before Python 3.16) begins a transaction only before a write, so a
    SELECT followed by a write is not atomic; as SQLAlchemy's SQLite documentation recommends, the driver's own
    BEGIN is switched off and SQLAlchemy emits it. Migrations run with ``foreign_keys=False``: batch operations
    rebuild tables, which foreign-key enforcement would block.
    """
    u = _url(url)
    # PostgreSQL is a server that can restart under us: test a pooled connection before each use (one round trip
    # per transaction) rather than fail the first batch after the restart
    options = {"pool_pre_ping": True} if u.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(u, **options)
    except (ArgumentError, ImportError) as exc:
        raise AdbreakError(f"cannot use database {shown(url)}: {exc}") from None
    if engine.dialect.name != "sqlite":
        return engine
    in_memory = sqlite_path(url) is None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (below)
        with closing(dbapi_connection.cursor()) as cur:
            cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not in_memory:
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


# ---------------------------------------------------------------------------------------------------- Alembic
def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration built in code: the repository's ``migrations/`` folder, no ``alembic.ini``."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise AdbreakError(f"the migrations folder {MIGRATIONS_DIR} is missing: reinstall adbreak from its source tree")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "migrations/ has no revision"
    return head


def _is_missing_or_empty_file(url: str) -> bool:
    path = sqlite_path(url)
    return path is not None and (not path.exists() or path.stat().st_size == 0)


def current_revision(url: str) -> str | None:
    """The database's Alembic revision; ``None`` for an empty or missing database (a missing SQLite file is not
    created)."""
    if _is_missing_or_empty_file(url):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise AdbreakError(f"cannot read database {shown(url)}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def check_schema(url: str) -> str:
    """The head revision if the database is at it; :class:`AdbreakError` (one line, what to do) otherwise."""
    head = head_revision()
    current = current_revision(url)
    if current == head:
        return head
    if current is not None and not _known(current):
        raise AdbreakError(f"database at revision {current}, which this version of adbreak does not know (it needs "
                           f"{head}): it was written by a newer adbreak ({shown(url)})")
    raise AdbreakError(f"database at revision {current or 'none'}, code needs {head}: run `adbreak db upgrade` "
                       f"({shown(url)})")


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).splitlines() or [exc.__class__.__name__])[0]


# ---------------------------------------------------------------------------------------------------- upgrade
@dataclass(frozen=True)
class UpgradeResult:
    url: str
    from_revision: str | None
    to_revision: str
    backup: Path | None

    @property
    def changed(self) -> bool:
        return self.from_revision != self.to_revision


def backup_sqlite(path: Path, revision: str | None, *, now: float | None = None) -> Path:
    """Copy a SQLite database (WAL included) to ``<file>.bak-<revision>-<UTC timestamp>`` with the backup API."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.bak-{revision or 'none'}-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.bak-{revision or 'none'}-{stamp}-{n}")
    with closing(sqlite3.connect(path)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return target


def _tables(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def upgrade(url: str, *, backup: bool = True) -> UpgradeResult:
    """Migrate the database to the head revision; create it when missing.

    An existing SQLite file holding anything is first copied (:func:`backup_sqlite`); a database with tables but
    no Alembic revision is refused (it is not an adbreak database). All of it runs in one transaction.
    """
    head = head_revision()
    path = sqlite_path(url)
    current = current_revision(url)
    if current == head:
        return UpgradeResult(url, current, head, None)
    if current is not None and not _known(current):
        raise AdbreakError(f"database at revision {current}, which this version of adbreak does not know: it was "
                           f"written by a newer adbreak ({shown(url)})")
    saved: Path | None = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if not _is_missing_or_empty_file(url):
        try:
            tables = _tables(url)
        except SQLAlchemyError as exc:
            raise AdbreakError(f"cannot read database {shown(url)}: {_first_line(exc)}") from None
        if tables and VERSION_TABLE not in tables:
            raise AdbreakError(f"database {shown(url)} has tables ({', '.join(sorted(tables)[:5])}) but no Alembic "
                               "revision: it is not an adbreak database; give another --db")
        if tables and backup and path is not None:
            saved = backup_sqlite(path, current)
            log.info("backed up %s to %s", path, saved)
    cfg = alembic_config(url)
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            problems = conn.execute(text("PRAGMA foreign_key_check")).fetchall() if engine.dialect.name == "sqlite" \
                else []
            if problems:
                raise AdbreakError(f"the upgrade would break {len(problems)} foreign key(s) (first: {problems[0]}); "
                                   "nothing was changed")
    except SQLAlchemyError as exc:
        raise AdbreakError(f"upgrade of {shown(url)} failed, nothing was changed: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    log.info("database %s upgraded from %s to %s", shown(url), current or "none", head)
    return UpgradeResult(url, current, head, saved)
