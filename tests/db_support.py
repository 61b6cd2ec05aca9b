"""Which database engine the server tests run on, and a fresh empty database for each test.

``ADBREAK_TEST_DATABASE=postgresql`` (or ``pytest --database postgresql``, ``tests/conftest.py``) runs the tests that
take their database from :func:`fresh_url` on PostgreSQL: each test gets its own database, created on the server at
``ADBREAK_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432``, trust authentication) and dropped when
the test session ends. Unset or ``sqlite``: a SQLite file in the test's ``tmp_path``.
"""

from __future__ import annotations

import atexit
import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from server import db

ENGINES = ("sqlite", "postgresql")
PG_SERVER = os.environ.get("ADBREAK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
_created: list[str] = []


def engine_name() -> str:
    name = os.environ.get("ADBREAK_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
    if name not in ENGINES:
        raise pytest.UsageError(f"ADBREAK_TEST_DATABASE={name!r}: use one of {', '.join(ENGINES)}")
    return name


def on_postgresql() -> bool:
    return engine_name() == "postgresql"


sqlite_only = pytest.mark.skipif("os.environ.get('ADBREAK_TEST_DATABASE', 'sqlite') == 'postgresql'",
                                 reason="SQLite files only (pragmas, backups of the file)")


def _admin():
    return create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")


def create_pg_database() -> str:
    """A new empty PostgreSQL database (dropped at exit); its URL."""
    name = f"adbreak_t_{uuid.uuid4().hex[:16]}"
    admin = _admin()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    if not _created:
        atexit.register(drop_created)
    _created.append(name)
    return f"{PG_SERVER}/{name}"


def drop_created() -> None:
    if not _created:
        return
    admin = _admin()
    try:
        with admin.connect() as conn:
            while _created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{_created.pop()}" WITH (FORCE)'))
    finally:
        admin.dispose()


def fresh_url(tmp_path: Path, name: str = "adbreak.db") -> str:
    """An empty database for one test: a SQLite file under ``tmp_path`` or a new PostgreSQL database."""
    if on_postgresql():
        return create_pg_database()
    return f"sqlite:///{tmp_path / name}"


def migrated_url(tmp_path: Path, name: str = "adbreak.db") -> str:
    url = fresh_url(tmp_path, name)
    db.upgrade(url)
    return url


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows of a plain SQL query, as tuples, on either engine."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()
