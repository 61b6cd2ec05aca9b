"""Alembic migrations on real SQLite files (and on PostgreSQL: ``db_engine``, all but the tests
marked ``sqlite_only``), and the `db upgrade` command."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from adbreak.errors import AdbreakError
from adbreak.wire import Availability
from server import db
from server.models import Base
from server.store import SegmentStore
from tests.db_support import fresh_url, on_postgresql, query, sqlite_only

pytestmark = pytest.mark.usefixtures("db_engine")

ROOT = Path(__file__).resolve().parents[2]


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def run_server_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@sqlite_only
def test_upgrade_creates_every_table_at_head(tmp_path):
    path = tmp_path / "sub" / "adbreak.db"
    assert db.current_revision(url_of(path)) is None
    assert not path.exists()  # looking does not create it
    result = db.upgrade(url_of(path))
    assert (result.from_revision, result.to_revision, result.backup) == (None, db.head_revision(), None)
    assert tables(path) == set(Base.metadata.tables) | {"alembic_version"}
    assert db.current_revision(url_of(path)) == db.head_revision()
    assert db.check_schema(url_of(path)) == db.head_revision()
    assert not db.upgrade(url_of(path)).changed


def test_upgrade_creates_every_table_at_head_on_either_engine(tmp_path):
    url = fresh_url(tmp_path)
    assert db.current_revision(url) is None
    result = db.upgrade(url)
    assert (result.from_revision, result.to_revision) == (None, db.head_revision())
    engine = db.make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()
    assert db.check_schema(url) == db.head_revision()
    assert not db.upgrade(url).changed


def test_the_migration_matches_the_models(tmp_path):
    url = fresh_url(tmp_path)
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
    command.check(db.alembic_config(url))  # `alembic check`: autogenerate finds nothing to do


def test_one_open_segment_per_device_is_a_partial_unique_index(tmp_path):
    """The index of ``uq_segments_open_device_id`` covers open segments only, on SQLite and on PostgreSQL."""
    url = fresh_url(tmp_path)
    db.upgrade(url)
    store = SegmentStore(db.make_sessionmaker(engine := db.make_engine(url)))
    try:
        store.availability("tv1", Availability.ONLINE, 1.0)
        with store.batch() as b:
            dev = b.device_id("tv1")
        insert = ("INSERT INTO segments (device_id, label, start, \"end\", status) "
                  "VALUES (:d, 'ad', :s, :e, :st)")
        with engine.begin() as conn:  # any number of closed ones
            for start in (1.0, 2.0):
                conn.execute(text(insert), {"d": dev, "s": start, "e": start + 1, "st": "closed"})
            conn.execute(text(insert), {"d": dev, "s": 5.0, "e": None, "st": "open"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text(insert), {"d": dev, "s": 6.0, "e": None, "st": "open"})
        assert query(url, "SELECT count(*) FROM segments") == [(3,)]
    finally:
        engine.dispose()


@sqlite_only
def test_the_engine_sets_the_pragmas(tmp_path):
    url = url_of(tmp_path / "adbreak.db")
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 1  # NORMAL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == db.BUSY_TIMEOUT_MS
    finally:
        engine.dispose()


def test_downgrade_removes_everything(tmp_path):
    url = fresh_url(tmp_path)
    db.upgrade(url)
    command.downgrade(db.alembic_config(url), "base")
    engine = db.make_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    assert db.current_revision(url) is None
    assert db.upgrade(url).to_revision == db.head_revision()  # and up again


@sqlite_only
@pytest.mark.parametrize("empty_file", [False, True])
def test_check_schema_refuses_an_unmigrated_database(tmp_path, empty_file):
    path = tmp_path / "adbreak.db"
    if empty_file:
        path.touch()
    with pytest.raises(AdbreakError) as err:
        db.check_schema(url_of(path))
    assert str(err.value).startswith(f"database at revision none, code needs {db.head_revision()}: "
                                     "run `adbreak db upgrade`")
    assert path.exists() == empty_file


def test_check_schema_refuses_a_newer_database(tmp_path):
    url = fresh_url(tmp_path)
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    finally:
        engine.dispose()
    with pytest.raises(AdbreakError, match="revision ffff, which this version of adbreak does not know"):
        db.check_schema(url)
    with pytest.raises(AdbreakError, match="newer adbreak"):
        db.upgrade(url)


@sqlite_only
def test_upgrade_backs_up_an_outdated_database_first(tmp_path):
    path = tmp_path / "adbreak.db"
    url = url_of(path)
    db.upgrade(url)
    command.downgrade(db.alembic_config(url), "base")  # an outdated database: a revision table, no schema
    result = db.upgrade(url)
    assert result.from_revision is None and result.to_revision == db.head_revision()
    assert result.backup is not None and result.backup.exists()
    assert result.backup.name.startswith("adbreak.db.bak-none-")
    assert tables(result.backup) == {"alembic_version"}  # the database as it was before the upgrade
    assert tables(path) >= set(Base.metadata.tables)


@sqlite_only
def test_backup_copies_the_data(tmp_path):
    path = tmp_path / "adbreak.db"
    url = url_of(path)
    db.upgrade(url)
    engine = db.make_engine(url)
    store = SegmentStore(db.make_sessionmaker(engine))
    store.availability("tv1", Availability.ONLINE, 1.0)  # in the WAL, not yet checkpointed: the backup API sees it
    copy = db.backup_sqlite(path, "0001", now=0)
    second = db.backup_sqlite(path, "0001", now=0)
    engine.dispose()
    assert copy.name == "adbreak.db.bak-0001-19700101T000000Z" and second != copy
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT name, availability FROM devices").fetchall() == [("tv1", "online")]


@sqlite_only
def test_upgrade_refuses_a_foreign_database(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(AdbreakError, match="not an adbreak database"):
        db.upgrade(url_of(path))
    assert tables(path) == {"photos"}
    assert not list(tmp_path.glob("other.db.bak-*"))


def test_cli_db_upgrade_and_server_refusal(tmp_path):
    path = tmp_path / "adbreak.db"
    url = fresh_url(tmp_path)
    refused = run_server_cli("server", "--db", url, "--mqtt", "127.0.0.1:1", "--port", "1")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"database at revision none, code needs {db.head_revision()}: run `adbreak db upgrade`" in lines[0]
    assert not path.exists() or on_postgresql()

    up = run_server_cli("db", "upgrade", "--db", url)
    assert up.returncode == 0, up.stderr
    assert f"upgraded from revision none to {db.head_revision()}" in up.stdout
    again = run_server_cli("db", "upgrade", "--db", url)
    assert again.returncode == 0 and "already at revision" in again.stdout


def test_cli_bad_input_is_one_line(tmp_path):
    bad = run_server_cli("server", "--db", url_of(tmp_path / "a.db"), "--mqtt", "host:99999")
    assert bad.returncode == 2 and "--mqtt 'host:99999': port must be 1..65535" in bad.stderr
    bad = run_server_cli("db", "upgrade", "--config", str(tmp_path / "missing.toml"))
    assert bad.returncode == 2 and "not found" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
