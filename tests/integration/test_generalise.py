"""Detection on footage training never saw, through the real CLI: zero labels, and a head from the other pool.

The test broadcast comes from the builder's ``heldout`` pool, the model's training broadcast from ``train``: the two
share no clip and no photo (``adbreak/broadcast/clips.py``). The full-length figures are in
``bench/results/generalise.md``; this keeps a short version of them true on every run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from adbreak.broadcast import build_broadcast
from tests.support import run_cli

pytestmark = pytest.mark.slow

TRAIN_S, TEST_S = 300.0, 420.0


@pytest.fixture(scope="module")
def disjoint(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("generalise")
    test = build_broadcast(root, "test", seed=5, duration_s=TEST_S, pool="heldout")
    train = build_broadcast(root, "train", seed=6, duration_s=TRAIN_S, pool="train")
    proc = run_cli("extract", train.video, "--segments", train.truth, "--out", root / "frames", "--fps", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("train", root / "frames", "--out", root / "model", "--cache-dir", cache_dir, "-q")
    assert proc.returncode == 0, proc.stderr
    return root, test


def _evaluate(root, test, name: str, *extra) -> dict:
    out = root / f"{name}.json"
    proc = run_cli("evaluate", test.video, "--truth", test.truth, "--json", out,
                   "--record-scores", root / f"{name}.csv", "-q", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_zero_labels_on_an_unseen_broadcast(disjoint):
    root, test = disjoint
    m = _evaluate(root, test, "nomodel", "--state", root / "device")
    assert m["accuracy"] >= 0.98, m
    assert m["flaps"] == 0 and m["missed_breaks"] == 0 and m["false_breaks"] == 0, m
    assert m["boundary_err_median_s"] <= 0.5, m
    header = (root / "nomodel.csv").read_text().splitlines()[0].split(",")
    for column in ("logo", "black", "silence", "cut", "repeat"):
        assert column in header, header
    # no head ran: p_ad is empty on every row
    assert all(line.split(",")[1] == "" for line in (root / "nomodel.csv").read_text().splitlines()[1:])
    # --state kept what this device learned: its logo, the ads it decided, its histograms and breaks checked
    state = root / "device"
    assert {"logo.npz", "ad-memory.npz", "calibration.json"} <= {p.name for p in state.iterdir()}, list(state.iterdir())
    assert json.loads((state / "calibration.json").read_text())["breaks"] >= 1
    proc = run_cli("evaluate", test.video, "--truth", test.truth, "--state", test.truth)
    assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0 and "not a folder" in proc.stderr


def test_a_head_from_other_footage_does_not_make_it_worse(disjoint):
    root, test = disjoint
    base = json.loads((root / "nomodel.json").read_text()) if (root / "nomodel.json").exists() else None
    m = _evaluate(root, test, "model", "--model", root / "model")
    assert m["accuracy"] >= 0.98, m
    assert m["flaps"] == 0, m
    if base is not None:
        assert m["accuracy"] >= base["accuracy"] - 0.01, (m, base)


def test_recorded_scores_re_decide_as_live_and_survive_a_noisy_head(disjoint):
    from adbreak.scores import read_scores, write_scores

    root, test = disjoint
    if not (root / "model.csv").exists():
        _evaluate(root, test, "model", "--model", root / "model")
    online = json.loads((root / "model.json").read_text())
    proc = run_cli("evaluate", "--scores", root / "model.csv", "--truth", test.truth, "--json", root / "again.json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads((root / "again.json").read_text())
    for key in ("accuracy", "program_lost_s", "ad_missed_s", "transitions_pred", "boundary_err_median_s", "flaps"):
        assert again[key] == online[key], key
    t, p, extra = read_scores(root / "model.csv")
    flip = np.random.default_rng(0).random(len(p)) < 0.10
    write_scores(root / "noisy.csv", t, np.where(flip, 1.0 - p, p), extra)
    proc = run_cli("evaluate", "--scores", root / "noisy.csv", "--truth", test.truth, "--json", root / "noisy.json")
    assert proc.returncode == 0, proc.stderr
    noisy = json.loads((root / "noisy.json").read_text())
    assert noisy["accuracy"] >= 0.98 and noisy["flaps"] == 0, noisy


def test_a_cue_value_outside_0_1_is_a_one_line_error(disjoint, tmp_path):
    _, test = disjoint
    bad = tmp_path / "bad.csv"
    bad.write_text("t,p_ad,logo\n0,,0.5\n0.2,,1.7\n")
    proc = run_cli("evaluate", "--scores", bad, "--truth", test.truth)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "row 3" in proc.stderr and "logo" in proc.stderr, proc.stderr


def test_fusion_settings_on_the_command_line(disjoint, tmp_path):
    """``evaluate --fusion`` changes the fusion's settings (here: a device that does not assume promos unmutes at
    once; with a fixed hold a break ends only after 16 s of programme); a bad value is a one-line error naming it."""
    root, test = disjoint
    if not (root / "model.csv").exists():
        _evaluate(root, test, "model", "--model", root / "model")
    runs = {}
    fast_json, held_json = '{"promo_prior_breaks": 0}', '{"promo_prior_breaks": 0, "end_hold_s": 16}'
    for name, fusion in (("fast", fast_json), ("held", held_json)):
        out = tmp_path / f"{name}.json"
        proc = run_cli("evaluate", "--scores", root / "model.csv", "--truth", test.truth, "--json", out,
                       "--fusion", fusion)
        assert proc.returncode == 0, proc.stderr
        runs[name] = json.loads(out.read_text())
    fast, held = runs["fast"], runs["held"]
    assert fast["accuracy"] >= 0.99 and fast["latency_median_s"] < 3.0, fast
    assert held["accuracy"] >= 0.99 and held["latency_median_s"] >= 8.0, held  # ad_end waits 16 s, ad_start does not
    for bad, says in (('{"end_hold": 16}', "unknown fusion setting"), ('{"end_hold_s": -1}', "end_hold_s"),
                      ("16", "JSON object"), ("{", "not JSON")):
        proc = run_cli("evaluate", "--scores", root / "model.csv", "--truth", test.truth, "--fusion", bad)
        assert proc.returncode != 0 and proc.stderr.strip().count("\n") == 0 and says in proc.stderr, proc.stderr
