"""Shared fixtures."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bottlenecks")


@pytest.fixture(scope="session")
def live_model(tmp_path_factory, cache_dir):
    """``(model_dir, held)`` for the tests that run the live agent: a model trained on a built 240 s broadcast
    (seed 1) and a 90 s broadcast (seed 2) to replay. Built once per test session.

    Both come from the ``heldout`` pool: these tests check the agent's plumbing (events, MQTT, keyframes, fail-safes),
    so the head must be good on the replayed footage. How well detection generalises to footage training never saw
    is measured elsewhere, on clip-disjoint pools (``tests/integration/test_generalise.py``, ``bench/``)."""
    from adbreak.broadcast import build_broadcast
    from tests.support import run_cli

    root = tmp_path_factory.mktemp("live-model")
    train = build_broadcast(root, "train", seed=1, duration_s=240, pool="heldout")
    held = build_broadcast(root, "held", seed=2, duration_s=90, pool="heldout")
    proc = run_cli("extract", train.video, "--segments", train.truth, "--out", root / "frames", "--fps", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", root / "frames", "--out", root / "model", "--cache-dir", cache_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    return root / "model", held


# ---------------------------------------------------------------------------------------------------- databases
def pytest_addoption(parser):
    from tests.db_support import ENGINES

    parser.addoption("--database", action="append", choices=ENGINES, default=None,
                     help="run the database tests on this engine only (repeatable; default: sqlite and postgresql)")


def pytest_generate_tests(metafunc):
    """Every test that uses ``db_engine`` (directly or through a fixture) runs once per engine, ids ``sqlite`` and
    ``postgresql``; ``--database NAME`` keeps one."""
    if "db_engine" in metafunc.fixturenames:
        from tests.db_support import ENGINES

        engines = metafunc.config.getoption("database") or list(ENGINES)
        metafunc.parametrize("db_engine", engines, indirect=True, scope="session", ids=engines)


def pytest_collection_modifyitems(config, items):
    from tests.db_support import SQLITE_ONLY_REASON

    for item in items:
        engine = getattr(item, "callspec", None) and item.callspec.params.get("db_engine")
        if engine == "postgresql" and (mark := item.get_closest_marker("sqlite_only")):
            item.add_marker(pytest.mark.skip(reason=mark.kwargs.get("reason", SQLITE_ONLY_REASON)))
        if engine == "sqlite" and (mark := item.get_closest_marker("postgresql_only")):
            item.add_marker(pytest.mark.skip(reason=mark.kwargs.get("reason", "PostgreSQL only")))


@pytest.fixture(scope="session")
def db_engine(request):
    """The database engine of this run of the test: ``"sqlite"`` or ``"postgresql"`` (``tests/db_support.py``).
    A PostgreSQL that cannot be reached skips the test, or fails it under ``ADBREAK_REQUIRE_SERVICES=1``."""
    from tests import db_support
    from tests.support import missing_service

    name = request.param
    if name == "postgresql" and (problem := db_support.postgresql_problem()):
        missing_service(problem)
    db_support._engine = name
    yield name
    db_support._engine = None


@pytest.fixture(autouse=True)
def _database_of_this_test(request):
    """Outside a test that requested ``db_engine`` no database can be made (a clear error says how to ask for one);
    the PostgreSQL databases a test made are dropped when it ends."""
    from tests import db_support

    if "db_engine" in request.fixturenames:
        keep = db_support.created_count()
        yield
        if db_support.created_count() > keep:
            # the test's objects go now, not at a random later moment: a connection of an app it made (psycopg warns
            # about one the collector closes, sqlite3 does not) would otherwise fail whichever test runs then
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
        db_support.drop_since(keep)
        return
    saved, db_support._engine = db_support._engine, None
    try:
        yield
    finally:
        db_support._engine = saved
