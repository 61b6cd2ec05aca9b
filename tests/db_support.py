"""Which database engine a test runs on, and a fresh database for each test.

Every test that uses a database requests the ``db_engine`` fixture (``tests/conftest.py``): an argument, a fixture
that requests it, or ``pytestmark = pytest.mark.usefixtures("db_engine")``. The fixture is parametrised, so the
test runs twice, ids ``[sqlite]`` and ``[postgresql]``; ``pytest --database sqlite`` (or ``postgresql``) runs one.
While such a test runs, :func:`fresh_url` and :func:`migrated_url` (and through them ``tests/server_support.py``'s
``make_settings``, ``make_app`` and ``ServerProcess``) give it a database of its own on that engine:

* SQLite: a file in the test's ``tmp_path``;
* PostgreSQL: a new database on the server at ``ADBREAK_TEST_PG`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432``, trust authentication), dropped when the test ends (one a
  higher-scoped fixture made: when the session ends).

A migrated database is a copy of one migrated by Alembic once per session (a file copy; PostgreSQL's
``CREATE DATABASE ... TEMPLATE``); the migrations themselves are tested on empty databases
(``tests/integration/test_server_migrations.py``).

A test that uses a database without requesting ``db_engine`` fails with the reason: no list of files is kept by
hand. End-to-end tests whose subject is the edge agent or the browser, not what the server stores, pin a SQLite file
with :func:`sqlite_url` and say so (docs/decisions.md, 2026-12-07).

Markers: ``@pytest.mark.sqlite_only`` (SQLite files: pragmas, backups of the file) and
``@pytest.mark.postgresql_only`` (what only a database server does) skip the other engine's run with the reason.
A PostgreSQL that cannot be reached skips the ``[postgresql]`` runs, or fails them under
``ADBREAK_REQUIRE_SERVICES=1`` (``tests/support.py``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from server import db

ENGINES = ("sqlite", "postgresql")
PG_SERVER = os.environ.get("ADBREAK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
SQLITE_ONLY_REASON = "SQLite files only (pragmas, backups of the file)"

sqlite_only = pytest.mark.sqlite_only
postgresql_only = pytest.mark.postgresql_only

_engine: str | None = None
"""The engine of the ``db_engine`` fixture while a test that requested it runs; None otherwise."""
_created: list[str] = []
_templates: dict[str, str] = {}
_template_dir: Path | None = None


def engine_name() -> str:
    if _engine is None:
        raise RuntimeError(
            "this test uses a database but does not request the db_engine fixture: add it (an argument, or "
            "pytestmark = pytest.mark.usefixtures('db_engine')) so that it runs on SQLite and PostgreSQL, or pin a "
            "SQLite file with tests.db_support.sqlite_url() (tests/db_support.py)")
    return _engine


def on_postgresql() -> bool:
    return engine_name() == "postgresql"


def sqlite_url(tmp_path: Path, name: str = "adbreak.db") -> str:
    """An explicit SQLite file, for a test that is about something else than the database (say why where used)."""
    return f"sqlite:///{tmp_path / name}"


def _admin():
    return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


def postgresql_problem() -> str | None:
    """None when the PostgreSQL server answers; else one line saying why not."""
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is reported, not raised
        return f"PostgreSQL at {PG_SERVER} cannot be reached: {str(exc).splitlines()[0]}"
    finally:
        admin.dispose()


def create_pg_database(template: str | None = None) -> str:
    """A new PostgreSQL database (empty, or a copy of ``template``), dropped when its test ends; its URL."""
    name = f"adbreak_t_{uuid.uuid4().hex[:16]}"
    _execute_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    _created.append(name)
    return f"{PG_SERVER}/{name}"


def _execute_admin(*statements: str) -> None:
    if not _atexit_registered:
        _register_atexit()
    admin = _admin()
    try:
        with admin.connect() as conn:
            for sql in statements:
                conn.execute(text(sql))
    finally:
        admin.dispose()


_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    _atexit_registered = True
    atexit.register(drop_all)


def created_count() -> int:
    return len(_created)


def drop_since(keep: int) -> None:
    """Drop the PostgreSQL databases made since ``created_count()`` was ``keep``."""
    names = _created[keep:]
    del _created[keep:]
    for key in [k for k, url in _migrated.items() if url.rsplit("/", 1)[1] in names]:
        del _migrated[key]
    if names:
        _execute_admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in reversed(names)))


def drop_all() -> None:
    """Drop every PostgreSQL database this session made, the template last."""
    drop_since(0)
    if _templates.pop("postgresql", None):
        _execute_admin(f'DROP DATABASE IF EXISTS "{_PG_TEMPLATE}" WITH (FORCE)')


_PG_TEMPLATE = f"adbreak_tmpl_{uuid.uuid4().hex[:16]}"


def _template(engine: str) -> str:
    """The session's migrated database on ``engine``: a SQLite file's path, or a PostgreSQL database's name."""
    global _template_dir
    if engine not in _templates:
        if engine == "sqlite":
            import tempfile

            _template_dir = Path(tempfile.mkdtemp(prefix="adbreak-db-template-"))
            atexit.register(shutil.rmtree, _template_dir, True)
            path = _template_dir / "migrated.db"
            db.upgrade(f"sqlite:///{path}", backup=False)
            for side in ("-wal", "-shm"):
                assert not Path(f"{path}{side}").exists(), "the template is not checkpointed"
            _templates[engine] = str(path)
        else:
            _execute_admin(f'CREATE DATABASE "{_PG_TEMPLATE}"')
            _templates[engine] = _PG_TEMPLATE
            db.upgrade(f"{PG_SERVER}/{_PG_TEMPLATE}")
    return _templates[engine]


def fresh_url(tmp_path: Path, name: str = "adbreak.db") -> str:
    """An empty database for one test on the current engine: a SQLite file under ``tmp_path`` or a new PostgreSQL
    database."""
    if on_postgresql():
        return create_pg_database()
    return sqlite_url(tmp_path, name)


def migrated_url(tmp_path: Path, name: str = "adbreak.db") -> str:
    """A database at the newest revision for one test on the current engine (a copy of the session's template).
    The same ``tmp_path`` and ``name`` give the same database again (a server restarted on its database)."""
    key = str(tmp_path / name)
    if on_postgresql():
        if key not in _migrated:
            _migrated[key] = create_pg_database(template=_template("postgresql"))
        return _migrated[key]
    path = tmp_path / name
    if not path.exists():
        shutil.copyfile(_template("sqlite"), path)
    return sqlite_url(tmp_path, name)


_migrated: dict[str, str] = {}
"""``str(tmp_path / name)`` -> the PostgreSQL database made for it (forgotten when it is dropped)."""


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows of a plain SQL query, as tuples, on either engine."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()
