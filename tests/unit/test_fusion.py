"""The fusion and the duration-aware decision on hand-built evidence (no video): blocks, trust, Viterbi, live."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from adbreak.metrics import evaluate_segments
from adbreak.segments import Segment
from edge.decision import Label, transitions_to_segments
from edge.fusion import Calibration, FusionConfig, FusionDecision, decode_offline, run_online
from edge.fusion.evidence import make_blocks
from edge.fusion.hsmm import AD, PROGRAM, duration_logprior, viterbi

FPS = 5


class Broadcast:
    """Per-frame cue values of a made-up broadcast, built item by item, with its truth."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.t = 0.0
        self.rows: dict[str, list[float]] = {k: [] for k in ("logo", "black", "dip", "silence", "cut", "p_ad")}
        self.times: list[float] = []
        self.truth: list[Segment] = []

    def add(self, label: str, seconds: float, *, logo: float, black: bool = False, quiet_edges: bool = False,
            p_ad: float = math.nan) -> Broadcast:
        n = int(round(seconds * FPS))
        for i in range(n):
            self.times.append(self.t + i / FPS)
            self.rows["logo"].append(logo)
            self.rows["black"].append(1.0 if black else 0.0)
            self.rows["dip"].append(0.0)
            edge = quiet_edges and (i == 0 or i == n - 1)
            self.rows["silence"].append(1.0 if black or edge else 0.0)
            self.rows["cut"].append(1.0 if i == 0 else 0.0)
            self.rows["p_ad"].append(p_ad)
        end = self.t + n / FPS
        if self.truth and self.truth[-1].label == label:
            self.truth[-1] = Segment(self.truth[-1].start, end, label)
        else:
            self.truth.append(Segment(self.t, end, label))
        self.t = end
        return self

    def program(self, seconds: float, logo: float = 1.0, **kw) -> Broadcast:
        return self.add("program", seconds, logo=logo, **kw)

    def brk(self, spots: list[float], *, black: bool = True, promo_at: int | None = None) -> Broadcast:
        for k, s in enumerate(spots):
            if black:
                self.add("ad", 0.6, logo=0.0, black=True)
            self.add("ad", s, logo=1.0 if k == promo_at else 0.0, quiet_edges=True)
        if black:
            self.add("ad", 0.6, logo=0.0, black=True)
        return self

    def noisy(self, name: str, share: float) -> Broadcast:
        v = np.asarray(self.rows[name])
        flip = self.rng.random(len(v)) < share
        self.rows[name] = list(np.where(flip, 1.0 - v, v))
        return self

    @property
    def arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        return np.asarray(self.times), {k: np.asarray(v, dtype=float) for k, v in self.rows.items()}


def standard(seed: int = 0, **brk) -> Broadcast:
    b = Broadcast(seed)
    for p, spots in ((150, [15, 30, 10]), (200, [20, 15]), (180, [30, 30, 15, 10])):
        b.program(p).brk(spots, **brk)
    return b.program(120)


def offline_metrics(b: Broadcast, cfg: FusionConfig | None = None) -> dict:
    t, rows = b.arrays
    res = decode_offline(t, rows, cfg, duration=b.t)
    return evaluate_segments(b.truth, res.segments)


def online(b: Broadcast, cfg: FusionConfig | None = None):
    t, rows = b.arrays
    initial, _, transitions, fused = run_online(t, rows, cfg)
    return transitions, evaluate_segments(b.truth, transitions_to_segments(initial, transitions, b.t)), fused


# -- blocks -------------------------------------------------------------------------------------------------------
def test_blocks_split_at_separators_and_measure_spot_lengths():
    b = Broadcast().program(100).brk([15, 30]).program(100)
    t, rows = b.arrays
    blocks = make_blocks(t, rows, FusionConfig(), start_t=0.0, end_t=b.t)
    seps = blocks.features["separator"] == 1
    assert seps.sum() == 3
    spots = blocks.duration[blocks.features["spot_length"] == 1]
    assert sorted(np.round(spots).tolist()) == [15.0, 30.0]
    # the program before and after are one block each, with the logo all through
    assert blocks.features["logo"][0] == 1.0 and blocks.features["logo"][-1] == 1.0
    assert math.isnan(blocks.features["spot_length"][0])  # open at the recording's start


def test_a_dark_frame_with_the_logo_on_is_no_separator():
    """A dark shot (seen through a camera it reads as black) with the channel's logo on: the show's own moment, not a
    break's black; with ``separator_logo = 0`` it would split the show."""
    b = Broadcast().program(100).add("program", 1.6, logo=1.0, black=True).program(100)
    b.rows["silence"] = [0.0] * len(b.times)  # the show's sound goes on through its dark shot
    t, rows = b.arrays
    assert (make_blocks(t, rows, FusionConfig()).features["separator"] == 1).sum() == 0
    assert (make_blocks(t, rows, FusionConfig(separator_logo=0.0)).features["separator"] == 1).sum() == 1


def test_a_scene_cut_without_silence_is_no_cut_point_but_with_silence_it_is():
    b = Broadcast().program(30).program(30)  # a scene cut at 30 s, sound goes on
    t, rows = b.arrays
    assert len(make_blocks(t, rows, FusionConfig())) == 1
    rows["silence"][int(30 * FPS)] = 1.0
    blocks = make_blocks(t, rows, FusionConfig())
    # the silent cut is a join between items: a one-frame separator between two blocks
    assert len(blocks) == 3 and blocks.t0[1] == pytest.approx(30.0 - 0.5 / FPS)
    assert blocks.features["separator"].tolist() == [0.0, 1.0, 0.0]


# -- the decoder ----------------------------------------------------------------------------------------------------
def test_duration_prior_is_flat_inside_and_falls_outside():
    cfg = FusionConfig()
    d = np.array([10.0, 30.0, 700.0])
    ad = duration_logprior(AD, d, cfg, False)
    assert ad[1] == 0.0 and ad[0] == pytest.approx(-cfg.short_penalty * 10) and ad[2] < 0
    assert duration_logprior(PROGRAM, np.array([30.0]), cfg, True)[0] == 0.0  # exempt at an edge


def test_viterbi_finds_the_best_segmentation_exactly():
    # 5 blocks: program, ad, ad, program, program with clear evidence
    t0 = np.array([0.0, 100.0, 115.0, 145.0, 200.0])
    t1 = np.array([100.0, 115.0, 145.0, 200.0, 300.0])
    e = np.array([-20.0, 20.0, 20.0, -20.0, -20.0])
    dec = viterbi(t0, t1, e, FusionConfig())
    assert dec.segments == [(0, 0, PROGRAM), (1, 2, AD), (3, 4, PROGRAM)]
    # a lone 15 s "ad" block with weak evidence inside a show is outweighed by the break's minimum length
    e2 = np.array([-20.0, 3.0, -20.0, -20.0, -20.0])
    assert [s[2] for s in viterbi(t0, t1, e2, FusionConfig()).segments] == [PROGRAM]


def test_offline_decides_a_clean_broadcast_almost_exactly():
    m = offline_metrics(standard())
    assert m["accuracy"] >= 0.998 and m["flaps"] == 0 and m["missed_breaks"] == 0
    assert m["boundary_err_median_s"] <= 0.3


def test_breaks_without_black_are_found_from_silence_at_the_cuts():
    m = offline_metrics(standard(black=False))
    assert m["accuracy"] >= 0.995 and m["false_breaks"] == 0


def test_cold_open_without_the_logo_stays_program():
    b = Broadcast(3).program(150).brk([15, 20]).program(30, logo=0.0).program(150).brk([30, 15]).program(100)
    m = offline_metrics(b)
    assert m["accuracy"] >= 0.995, m


def test_a_promo_with_the_logo_inside_a_break_stays_ad():
    b = Broadcast(4).program(150).brk([15, 10, 20], promo_at=1).program(150)
    m = offline_metrics(b)
    assert m["accuracy"] >= 0.995, m


def test_live_a_promo_mid_break_ends_the_break_unless_the_end_is_held():
    """Live, a promo in the middle of a break looks like the show's return until it ends: on a device that does not
    expect promos (``promo_prior_breaks = 0``) the break ends there (and starts again after it); ``end_hold_s`` longer
    than the promo keeps it muted, the end back-dated."""
    b = Broadcast(4).program(150).brk([15, 10, 20], promo_at=1).program(150).brk([20, 30]).program(120)
    transitions, m, _ = online(b, FusionConfig(promo_prior_breaks=0.0))
    promo_start = 150.0 + 0.6 + 15 + 0.6
    assert m["ad_missed_s"] >= 9.0  # the 10-s promo was shown
    assert any(tr.to_label is Label.PROGRAM and abs(tr.boundary_t - promo_start) < 1.0 for tr in transitions)
    held, m_held, _ = online(b, FusionConfig(end_hold_s=16.0, promo_prior_breaks=0.0))
    assert m_held["accuracy"] >= 0.995 and m_held["flaps"] == 0, m_held
    assert len(held) == 4
    ends = [tr for tr in held if tr.to_label is Label.PROGRAM]
    assert all(tr.decided_t - tr.boundary_t >= 16.0 - 1e-6 for tr in ends)
    assert all(abs(tr.boundary_t - s.end) < 1.0 for tr, s in zip(ends, [s for s in b.truth if s.label == "ad"],
                                                               strict=True))


def _ends(transitions) -> list:
    return [tr for tr in transitions if tr.to_label is Label.PROGRAM]


def test_live_a_device_learns_that_its_channel_airs_promos_and_holds_later_ends():
    """The show that "returned" at a mid-break promo lasted less than a show: from then on this device holds every
    break's end ``promo_hold_s``; with the learned hold off it never does. (A device that does not assume promos from
    the start: ``promo_prior_breaks = 0``.)"""
    b = Broadcast(4).program(150).brk([15, 10, 20], promo_at=1).program(150).brk([20, 30]).program(120)
    t, rows = b.arrays
    machine = FusionDecision(FusionConfig(promo_prior_breaks=0.0))
    transitions = [s.transition for s in (machine.update(float(t[i]), {k: float(v[i]) for k, v in rows.items()})
                                          for i in range(len(t))) if s.transition is not None]
    assert machine.calibration.promos_seen()
    first, *_, last = _ends(transitions)
    assert first.decided_t - first.boundary_t < 3.0  # before it knew: the promo ended the break at once
    assert last.decided_t - last.boundary_t >= 16.0 - 1e-6  # after: the end waits for the show to last
    assert abs(last.boundary_t - b.truth[-2].end) < 1.0  # and is back-dated to where the show came back
    off, m_off, _ = online(b, FusionConfig(promo_hold_s=0.0))  # the hold off: no prior hold either
    assert all(tr.decided_t - tr.boundary_t < 3.0 for tr in _ends(off)), m_off


def test_a_show_stretch_between_a_black_and_a_break_keeps_its_logo_evidence():
    """A show's last 70 s between a black (a fade inside the show) and the break is framed by separators too; it is
    longer than any promo, so its logo still counts for the show, live and offline."""
    b = Broadcast(9).program(100).add("program", 0.6, logo=0.0, black=True).program(70).brk([20, 30]).program(150)
    assert offline_metrics(b)["program_lost_s"] <= 1.0
    _, m, _ = online(b)
    assert m["program_lost_s"] <= 1.0 and m["accuracy"] >= 0.995, m


def test_live_a_promo_closing_a_break_is_found_on_the_second_look():
    """A promo as a break's last item (logo, then a black, then the show) looks like the show's return; decoding the
    break again ``promo_check_s`` later, with its end no longer pinned, puts the end after the promo: learned."""
    b = Broadcast(8).program(150).brk([15, 30, 20], promo_at=2).program(150)
    t, rows = b.arrays
    machine = FusionDecision(FusionConfig(promo_prior_breaks=0.0))
    for i in range(len(t)):
        machine.update(float(t[i]), {k: float(v[i]) for k, v in rows.items()})
    assert machine.calibration.breaks == 1.0
    assert machine.calibration.promos_seen()
    # the same break without the promo: checked, and no promo learned
    plain = Broadcast(8).program(150).brk([15, 30, 20]).program(150)
    t, rows = plain.arrays
    clean = FusionDecision(FusionConfig(promo_prior_breaks=0.0))
    for i in range(len(t)):
        clean.update(float(t[i]), {k: float(v[i]) for k, v in rows.items()})
    assert clean.calibration.breaks == 1.0 and not clean.calibration.promos_seen()


def _run(machine: FusionDecision, b: Broadcast) -> list:
    t, rows = b.arrays
    steps = (machine.update(float(t[i]), {k: float(v[i]) for k, v in rows.items()}) for i in range(len(t)))
    return [s.transition for s in steps if s.transition is not None]


def test_a_new_device_holds_break_ends_until_it_has_checked_breaks_without_promos():
    """By default a brand-new device expects promos: its first ``promo_prior_breaks`` (3) breaks end only once the
    show has lasted ``promo_hold_s``, each boundary back-dated; a channel whose breaks hold none gets the fast unmute
    from the fourth break on."""
    b = Broadcast(11)
    for spots in ([15, 30], [20, 15], [30, 10], [15, 20], [25, 15]):
        b.program(150).brk(spots)
    b.program(150)
    machine = FusionDecision()
    ends = _ends(_run(machine, b))
    assert len(ends) == 5
    assert all(tr.decided_t - tr.boundary_t >= 16.0 - 1e-6 for tr in ends[:3]), ends
    assert all(tr.decided_t - tr.boundary_t < 3.0 for tr in ends[3:]), ends
    truth_ends = [s.end for s in b.truth if s.label == "ad"]
    assert all(abs(tr.boundary_t - e) < 1.0 for tr, e in zip(ends, truth_ends, strict=True))
    assert machine.calibration.breaks == 5.0 and not machine.calibration.promos_seen()


def test_a_new_device_keeps_a_promo_closing_a_break_muted_and_learns_the_channel_airs_them():
    """The hold a new device starts with keeps a promo that closes its first break muted (live, without it the promo
    was the show's return); the held break then holds a logo block of promo length: the channel airs promos, and the
    hold stays past the first breaks. (Promos run 5-15 s; a longer one outlasts the 16-s hold.)"""
    b = Broadcast(8).program(150).brk([15, 30, 12], promo_at=2).program(150)
    for spots in ([20, 15], [30, 10], [15, 20]):
        b.brk(spots).program(150)
    transitions, m, _ = online(b)
    assert m["ad_missed_s"] <= 1.0 and m["flaps"] == 0, m
    _, m_fast, _ = online(b, FusionConfig(promo_prior_breaks=0.0))
    assert m_fast["ad_missed_s"] >= 11.0, m_fast  # a device that does not expect promos shows the first one
    machine = FusionDecision()
    ends = _ends(_run(machine, b))
    assert machine.calibration.promos_seen()
    assert all(tr.decided_t - tr.boundary_t >= 16.0 - 1e-6 for tr in ends), ends


def test_a_glimpse_of_the_logo_between_a_breaks_blacks_is_no_promo():
    """A frame or two with the show's logo between the first blacks of a break (the picture fading out) is no promo:
    a promo lasts a spot's length. The new device checks its breaks and drops the hold as on any channel without."""
    b = Broadcast(13)
    for spots in ([15, 30], [20, 15], [30, 10], [15, 20], [25, 15]):
        b.program(150).add("ad", 0.6, logo=0.0, black=True)
        glimpse = len(b.times)
        b.add("ad", 0.2, logo=1.0)
        b.rows["cut"][glimpse] = 0.0  # the same fading picture, no new scene
        b.brk(spots)
    b.program(150)
    machine = FusionDecision()
    ends = _ends(_run(machine, b))
    assert len(ends) == 5 and machine.calibration.promo_breaks == 0.0, machine.calibration.promo_breaks
    assert all(tr.decided_t - tr.boundary_t < 3.0 for tr in ends[3:]), ends


def test_a_break_seen_before_the_logo_was_learned_is_not_counted_as_checked():
    """Without a learned logo a break cannot show that it held no promo: it does not count towards the breaks a new
    device checks before it drops its hold."""
    b = Broadcast(12)
    for spots in ([15, 30], [20, 15], [30, 10], [15, 20]):
        b.program(150).brk(spots)
    b.program(150)
    b.rows["logo"] = [math.nan] * len(b.times)  # no logo learned all along
    machine = FusionDecision()
    ends = _ends(_run(machine, b))
    assert len(ends) == 4 and machine.calibration.breaks == 0.0
    assert all(tr.decided_t - tr.boundary_t >= 16.0 - 1e-6 for tr in ends), ends


def test_the_learned_promo_count_fades_and_survives_a_restart(tmp_path):
    cal = Calibration(FusionConfig())
    cal.note_break(promo=True)
    assert cal.promos_seen()
    path = tmp_path / "calibration.json"
    cal.save(path)
    again = Calibration(FusionConfig())
    assert again.load(path) and again.promos_seen() and again.breaks == 1.0
    for _ in range(60):  # a channel that stopped airing promos: the hold is forgotten after a few dozen breaks
        again.note_break(promo=False)
    assert not again.promos_seen()
    path.write_text('{"version": 1, "observed": {}, "breaks": 1, "promo_breaks": 5}')
    assert again.load(path) is False and again.breaks == 0.0 and not again.promos_seen()


def test_an_untrustworthy_head_loses_its_weight():
    """A head that calls a whole show "ad" (footage unlike its training) must not override logo and separators;
    after calibration "p_ad high" says less about ad than the default trusts it to."""
    b = standard(5)
    t, rows = b.arrays
    truth_ad = np.array([any(s.start <= x < s.end and s.label == "ad" for s in b.truth) for x in t])
    unlike = (t >= 220) & (t < 420)  # the second show: the head has never seen anything like it
    rows["p_ad"] = np.where(truth_ad | unlike, 0.95, 0.05)
    res = decode_offline(t, rows, duration=b.t)
    assert evaluate_segments(b.truth, res.segments)["accuracy"] >= 0.995
    prior = Calibration(FusionConfig()).llr_tables()["p_ad"][-1]
    assert res.calibration.llr_tables()["p_ad"][-1] < prior - 0.2


def test_a_logo_that_never_appears_leaves_the_decision_to_the_other_cues():
    b = standard(6)
    t, rows = b.arrays
    rows["logo"] = np.full(len(t), np.nan)
    m = offline_metrics_rows(b, rows)
    assert m["accuracy"] >= 0.99


def offline_metrics_rows(b: Broadcast, rows: dict) -> dict:
    t, _ = b.arrays
    return evaluate_segments(b.truth, decode_offline(t, rows, duration=b.t).segments)


def test_calibration_learns_a_useless_cue_is_useless():
    cal = Calibration(FusionConfig())
    b = standard(7)
    t, rows = b.arrays
    rows["logo"] = np.random.default_rng(1).random(len(t))  # noise: says nothing
    blocks = make_blocks(t, rows, FusionConfig())
    labels = (blocks.features["logo"] < 2).astype(int)  # anything
    labels[: len(labels) // 2] = 0
    for _ in range(30):
        cal.observe(blocks, labels)
    assert np.abs(cal.llr_tables()["logo"][1:4]).max() < np.abs(Calibration(FusionConfig()).llr_tables()["logo"]).max()


# -- live ---------------------------------------------------------------------------------------------------------
def test_online_decides_with_little_lag_and_no_flaps():
    """A device that knows its channel airs no promos (here: one that does not assume them) decides every change
    within about a second; a new device at the defaults decides the same boundaries, its unmutes held for promos."""
    transitions, m, fused = online(standard(), FusionConfig(promo_prior_breaks=0.0))
    assert m["accuracy"] >= 0.998 and m["flaps"] == 0
    lags = [tr.decided_t - tr.boundary_t for tr in transitions]
    assert len(transitions) == 6 and float(np.median(lags)) <= 1.5
    assert all(0.0 <= f <= 1.0 for f in fused)
    # a channel without promos learns no end hold: every unmute stays fast
    assert all(tr.decided_t - tr.boundary_t < 3.0 for tr in _ends(transitions))
    new, m_new, _ = online(standard())
    assert m_new == m and [tr.boundary_t for tr in new] == [tr.boundary_t for tr in transitions]
    assert all(tr.decided_t - tr.boundary_t >= 16.0 - 1e-6 for tr in _ends(new))


def test_online_survives_noisy_logo_frames():
    b = standard(8).noisy("logo", 0.1)
    _, m, _ = online(b)
    assert m["accuracy"] >= 0.99 and m["flaps"] == 0


def test_online_states_and_errors():
    d = FusionDecision()
    assert d.update(0.0, {"logo": 1.0}).state is None
    for i in range(1, 15):
        step = d.update(i / FPS, {"logo": 1.0})
    assert step.state is Label.PROGRAM and d.initial_state is Label.PROGRAM and d.initial_t == 0.0
    with pytest.raises(ValueError, match="backwards"):
        d.update(1.0, {"logo": 1.0})
    with pytest.raises(ValueError, match="logo"):
        d.update(10.0, {"logo": 1.5})
    d.update(10.0, {"logo": math.nan})  # not measured is fine


def test_config_round_trip_and_rejections():
    cfg = FusionConfig(margin=3.0)
    assert FusionConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        FusionConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError):
        FusionConfig(min_break_s=700.0)
    with pytest.raises(ValueError):
        FusionConfig(margin=math.nan)


# -- what a device keeps across restarts ---------------------------------------------------------------------------
def _first_break_lag(machine: FusionDecision, b: Broadcast) -> float:
    t, rows = b.arrays
    names = list(rows)
    for i in range(len(t)):
        step = machine.update(float(t[i]), {k: float(rows[k][i]) for k in names})
        if step.transition is not None and step.transition.to_label is Label.AD:
            return step.transition.decided_t - step.transition.boundary_t
    raise AssertionError("no break decided")


def test_learned_histograms_survive_a_restart_and_skip_the_warm_up(tmp_path):
    # a fresh device waits out the warm-up margin on a break in its first minutes
    early = Broadcast(3).program(90).brk([15, 30, 10]).program(120)
    fresh = FusionDecision()
    fresh_lag = _first_break_lag(fresh, early)
    # one that decided a whole broadcast before keeps its histograms, and decides the same break sooner
    learned = FusionDecision()
    assert not learned.calibration.has_seen_both()
    t, rows = standard(4).arrays
    for i in range(len(t)):
        learned.update(float(t[i]), {k: float(v[i]) for k, v in rows.items()})
    assert learned.calibration.has_seen_both()
    path = tmp_path / "calibration.json"
    learned.calibration.save(path)
    restarted = FusionDecision()
    assert restarted.calibration.load(path)
    assert restarted.calibration.to_dict() == learned.calibration.to_dict()
    warm_lag = _first_break_lag(restarted, early)
    assert warm_lag < fresh_lag - 0.3, (warm_lag, fresh_lag)
    assert warm_lag <= 1.5


def test_a_corrupt_calibration_file_is_set_aside_and_the_defaults_stay(tmp_path, caplog):
    path = tmp_path / "calibration.json"
    cal = Calibration(FusionConfig())
    assert cal.load(path) is False  # no file yet: defaults, nothing logged
    for text in ("{not json", '{"version": 1, "observed": {"logo": "x"}}', '{"version": 99, "observed": {}}', "[]"):
        path.write_text(text)
        assert cal.load(path) is False, text
        assert not path.exists() and any(p.name.startswith("calibration.json.corrupt-") for p in tmp_path.iterdir())
        assert not cal.has_seen_both()
        for p in tmp_path.iterdir():
            p.unlink()
    assert "set aside" in caplog.text


def _true_dips_run_by_run(t, cols, cfg):
    """The definition of a fade, one dip run at a time (what ``evidence._true_dips`` computes for all runs at once)."""
    dip = np.nan_to_num(cols["dip"], nan=0.0) >= cfg.separator_threshold
    luma = cols["luma"]
    out = np.zeros(len(t), bool)
    d = np.diff(np.concatenate(([0], dip.astype(np.int8), [0])))
    for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
        if t[b - 1] - t[a] > cfg.max_dip_s:
            continue
        if not np.isnan(luma[a:b]).all():
            before, after = luma[max(0, a - 5) : a], luma[b : b + 5]
            if len(before) < 3 or len(after) < 3:
                continue
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                side = min(float(np.nanmedian(before)), float(np.nanmedian(after)))
                if not float(np.nanmin(luma[a:b])) < cfg.dip_depth * side:
                    continue
        out[a:b] = True
    return out


@pytest.mark.parametrize("seed", range(6))
def test_fades_found_all_at_once_match_the_run_by_run_definition(seed):
    from edge.fusion.evidence import _true_dips, columns_from_rows

    rng = np.random.default_rng(seed)
    n = 600
    t = np.arange(n) / FPS
    dip = (rng.random(n) < 0.15).astype(float)
    dip[rng.random(n) < 0.05] = np.nan
    luma = rng.uniform(0.0, 0.8, n)
    luma[rng.random(n) < 0.1] = np.nan
    if seed % 2:
        luma[:20] = np.nan  # runs with no luma at all
    for rows in ({"dip": dip, "luma": luma}, {"dip": dip}):
        cols = columns_from_rows(rows, n)
        cfg = FusionConfig()
        assert np.array_equal(_true_dips(t, cols, cfg), _true_dips_run_by_run(t, cols, cfg))


def test_a_closed_break_offers_its_spots_to_the_ad_memory():
    """The spots of a decided break (framed by blacks, logo absent) are what the repeated-ad memory keeps; the
    separators, and a promo with the logo, are not."""
    from edge.fusion.decoder import clean_ad_spans

    b = Broadcast(6).program(150).brk([15, 10, 20], promo_at=1).program(150)
    t, rows = b.arrays
    machine = FusionDecision(FusionConfig(end_hold_s=16.0))
    kept: list[tuple[float, float]] = []
    for i in range(len(t)):
        step = machine.update(float(t[i]), {k: float(v[i]) for k, v in rows.items()})
        if step.transition is not None and step.transition.to_label is Label.PROGRAM:
            kept = clean_ad_spans(machine.closed_break)
    spot1, spot3 = (150.6, 165.6), (176.8, 196.8)  # the first and last spots, between their blacks
    assert len(kept) == 2, kept
    for (a, b_), (ta, tb) in zip(kept, (spot1, spot3), strict=True):
        assert abs(a - ta) < 0.3 and abs(b_ - tb) < 0.3, kept


def test_row_nanmedian_is_numpys():
    from edge.fusion.evidence import _row_nanmedian

    rng = np.random.default_rng(3)
    for k in (0, 1, 7, 40):
        a = rng.random((k, 5))
        a[rng.random((k, 5)) < 0.4] = np.nan
        a[: min(k, 2)] = np.nan  # all-NaN rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = np.nanmedian(a, axis=1) if k else np.zeros(0)
        assert np.allclose(_row_nanmedian(a), want, equal_nan=True)
