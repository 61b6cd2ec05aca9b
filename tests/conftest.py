"""Shared fixtures."""

from __future__ import annotations

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
