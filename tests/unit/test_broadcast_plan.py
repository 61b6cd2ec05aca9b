"""The test-broadcast builder's plan (no video): clip-disjoint pools, structure, difficulties, sound, logos."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from adbreak.broadcast import audio, builder, clips
from adbreak.broadcast.clips import PHOTO_SPOTS, POOLS, SPOTS, get_pool, spot
from adbreak.broadcast.logo import CHANNELS, logo_for
from adbreak.broadcast.photos import CAMERA_ROOM_PHOTO, PHOTOS
from adbreak.broadcast.plan import (
    COLD_OPEN,
    DIFFICULTIES,
    FADES,
    KIND_AD,
    KIND_BLACK,
    KIND_DIM,
    KIND_PROGRAM,
    KIND_PROMO,
    NO_BLACK,
    PROMOS,
    Play,
    check_difficulties,
    crop_detail,
    plan_audio,
    plan_broadcast,
    sample_at,
    truth_segments,
)
from adbreak.broadcast.render import Shot
from adbreak.errors import AdbreakError

FPS = 25


def plan(pool: str = "train", duration: float = 150, seed: int = 0, diff=frozenset(), channel: str = "ch1"):
    rng = np.random.default_rng(seed)
    return plan_broadcast(get_pool(pool), int(duration * FPS), FPS, rng, frozenset(diff), channel)


def breaks_of(plays: list[Play]) -> list[list[Play]]:
    """The plays of each ad break, in order."""
    out: list[list[Play]] = []
    prev = KIND_PROGRAM
    for p in plays:
        if p.kind != KIND_PROGRAM:
            if prev == KIND_PROGRAM:
                out.append([])
            out[-1].append(p)
        prev = p.kind
    return out


def segments_of(plays: list[Play]) -> list[list[Play]]:
    """The plays of each program segment, in order."""
    out: list[list[Play]] = []
    prev = None
    for p in plays:
        if p.kind == KIND_PROGRAM:
            if prev != KIND_PROGRAM:
                out.append([])
            out[-1].append(p)
        prev = p.kind
    return out


def check_structure(plays: list[Play], frames: int) -> None:
    """Plays tile the frames; the truth tiles the duration on frame boundaries and alternates, program at both ends."""
    assert plays[0].start_frame == 0 and plays[-1].end_frame == frames
    for a, b in itertools.pairwise(plays):
        assert a.end_frame == b.start_frame and a.frames > 0
        assert not (a.kind in (KIND_BLACK, KIND_DIM) and b.kind in (KIND_BLACK, KIND_DIM)), "separators never touch"
    for p in plays:
        if p.shots:
            assert sum(s.frames for s in p.shots) == p.frames
    segs = truth_segments(plays, FPS)
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(frames / FPS, abs=1e-9)
    assert segs[0].label == segs[-1].label == "program"
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start and a.label != b.label
    for s in segs:
        assert abs(s.end * FPS - round(s.end * FPS)) < 1e-6


# ================================================================================================ pools
def test_pools_share_no_clip_and_no_photo():
    builder.validate()  # raises on any sharing
    train, held = POOLS["train"], POOLS["heldout"]
    assert train.clips and held.clips and not train.clips & held.clips
    assert train.all_photos and held.all_photos and not train.all_photos & held.all_photos
    assert {e.clip for e in train.program} == {"vtest"} and {e.clip for e in held.program} == {"bikes", "bigbuckbunny"}
    assert {s.clip for s in train.spots if s.clip} == {"gillette", "cup"}
    assert {s.clip for s in held.spots if s.clip} == {"box"}
    # every photo serves one pool in one role; the camera room's photo serves none
    uses = [p for pool in POOLS.values() for p in pool.photos] + [s.photo for s in PHOTO_SPOTS.values()]
    assert len(uses) == len(set(uses)) and set(uses) <= set(PHOTOS)
    assert CAMERA_ROOM_PHOTO not in uses
    for pool in POOLS.values():
        assert len(pool.photos) >= 3 and sum(1 for s in pool.spots if s.photo) >= 3, "photos add variety to each pool"


def test_validate_rejects_pools_that_share(monkeypatch):
    train, held = POOLS["train"], POOLS["heldout"]
    shared_clip = {"train": train, "heldout": held.__class__(held.name, held.program + train.program, (), held.spots)}
    monkeypatch.setattr(clips, "POOLS", shared_clip)
    with pytest.raises(ValueError, match="vtest"):
        builder.validate()
    shared_photo = {"train": train, "heldout": held.__class__(held.name, held.program, ("astronaut",), held.spots)}
    monkeypatch.setattr(clips, "POOLS", shared_photo)
    with pytest.raises(ValueError, match="astronaut"):
        builder.validate()


def test_spots_are_standard_lengths_and_photo_spots_fill_them():
    for name in [*SPOTS, *PHOTO_SPOTS]:
        s = spot(name)
        assert 10 <= s.length_s <= 45 and math.isclose(s.length_s / 5, round(s.length_s / 5), abs_tol=1e-9), name
    for p in PHOTO_SPOTS.values():
        from adbreak.broadcast.plan import photo_spot_shots

        shots = photo_spot_shots(p, int(p.length_s * FPS))
        assert len(shots) >= 2 and sum(s.frames for s in shots) == p.length_s * FPS
        assert all(s.photo == p.photo and s.captions for s in shots)
        assert shots == photo_spot_shots(p, int(p.length_s * FPS)), "a spot looks the same every time it airs"


def test_pools_mix_looks_in_both_roles():
    """No single global statistic separates the roles: each pool has grey and colour sources as program and as ads."""

    def colourful(photo: str) -> bool:
        from adbreak.broadcast.photos import load_photo

        img = load_photo(photo).astype(int)
        return float(np.abs(img - img.mean(axis=2, keepdims=True)).mean()) > 8

    for pool in POOLS.values():
        program = [colourful(p) for p in pool.photos]
        assert any(program) and not all(program), pool.name
        styles = {s.photo.style for s in pool.spots if s.photo}
        assert "mono" in styles and styles - {"mono"}, pool.name


# ================================================================================================ structure
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_default_plans_are_realistic(pool):
    for duration, (lo, hi) in ((150, (2, 2)), (1800, (5, 8))):
        for seed in range(12):
            plays = plan(pool, duration, seed)
            check_structure(plays, duration * FPS)
            segs = truth_segments(plays, FPS)
            breaks = [s for s in segs if s.label == "ad"]
            assert lo <= len(breaks) <= hi, (pool, duration, seed)
            share = sum(s.duration for s in breaks) / duration
            assert 0.18 <= share <= 0.32, (pool, duration, seed)
            if duration == 1800:
                assert all(60 <= s.duration <= 240 for s in segs if s.label == "program"), (pool, seed)
            spots = [p for p in plays if p.kind == KIND_AD]
            assert all(10 * FPS <= p.frames <= 45 * FPS and p.frames % (5 * FPS) == 0 for p in spots)
            assert {p.spot for p in spots} <= {s.name for s in get_pool(pool).spots}
            families = {s.family for s in get_pool(pool).spots}
            material = {f"clip:{e.clip}" for e in get_pool(pool).program} | {
                f"photo:{x}" for x in get_pool(pool).photos
            }
            for b in breaks_of(plays):  # black at both edges and between spots; nothing else but spots
                assert [p.kind for p in b[::2]] == [KIND_BLACK] * (len(b) // 2 + 1)
                assert all(p.kind == KIND_AD for p in b[1::2])
                assert all(0.4 * FPS <= p.frames <= 1.0 * FPS for p in b[::2])
                for x, y in itertools.pairwise(b[1::2]):
                    assert spot(x.spot).family != spot(y.spot).family or len(families) == 1
            assert all(p.logo for p in plays if p.kind == KIND_PROGRAM)
            assert not any(p.logo for p in plays if p.kind != KIND_PROGRAM)
            sources = {s.source for p in plays if p.kind == KIND_PROGRAM for s in p.shots}
            assert sources <= material
            if duration == 1800:
                assert sources == material, "a long broadcast uses all of its pool's program material"


def test_program_shots_never_show_featureless_crops():
    for pool in POOLS.values():
        for seed in range(6):
            for p in plan(pool.name, 600, seed):
                for s in p.shots:
                    if s.photo is not None and s.rect == (0.0, 0.0, 1.0, 1.0):
                        z0, x0, y0, z1, x1, y1 = s.path
                        for t in (0.0, 0.5, 1.0):
                            assert crop_detail(s.photo, z0 + (z1 - z0) * t, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t) > 10


def test_same_seed_same_plan_and_difficulties_change_it():
    a, b = plan(seed=4), plan(seed=4)
    assert a == b
    assert plan(seed=5) != a
    assert plan(seed=4, diff={NO_BLACK}) != a


def test_check_difficulties():
    assert check_difficulties(["all"]) == frozenset(DIFFICULTIES)
    assert check_difficulties(None) == frozenset()
    with pytest.raises(AdbreakError, match="unknown difficulty"):
        check_difficulties({"no_blak"})


# ================================================================================================ difficulties
@pytest.mark.parametrize("pool", sorted(POOLS))
def test_no_black_plans_no_separator_at_all(pool):
    for duration, seed in itertools.product((150, 1800), range(6)):
        plays = plan(pool, duration, seed, {NO_BLACK})
        check_structure(plays, duration * FPS)
        assert not [p for p in plays if p.kind in (KIND_BLACK, KIND_DIM)]
        for b in breaks_of(plays):
            assert all(p.kind == KIND_AD for p in b)
        # the break's truth is the spots' time
        segs = [s for s in truth_segments(plays, FPS) if s.label == "ad"]
        assert [round((s.end - s.start) * FPS) for s in segs] == [sum(p.frames for p in b) for b in breaks_of(plays)]


def test_fades_plan_dim_dissolves_where_black_would_be():
    for seed in range(8):
        plays = plan("train", 600, seed, {FADES})
        check_structure(plays, 600 * FPS)
        assert not [p for p in plays if p.kind == KIND_BLACK]
        for b in breaks_of(plays):
            assert [p.kind for p in b[::2]] == [KIND_DIM] * (len(b) // 2 + 1)
            for p in b[::2]:
                assert 0.15 <= p.dim <= 0.35 and 0.4 * FPS <= p.frames <= FPS


def test_no_black_with_fades_mixes_both_kinds_of_break():
    for seed in range(6):
        plays = plan("heldout", 1200, seed, {NO_BLACK, FADES})
        assert not [p for p in plays if p.kind == KIND_BLACK]
        kinds = [{p.kind for p in b} for b in breaks_of(plays)]
        assert any(KIND_DIM in k for k in kinds) and any(KIND_DIM not in k for k in kinds)


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_promos_sit_inside_about_half_the_breaks_and_carry_the_logo(pool):
    positions = set()
    material = {e.clip for e in get_pool(pool).program} | set(get_pool(pool).photos)
    for duration, seed in itertools.product((150, 1800), range(10)):
        plays = plan(pool, duration, seed, {PROMOS})
        check_structure(plays, duration * FPS)
        brks = breaks_of(plays)
        with_promo = [b for b in brks if any(p.kind == KIND_PROMO for p in b)]
        assert max(1, round(0.5 * len(brks))) == len(with_promo)
        for b in with_promo:
            content = [p for p in b if p.kind in (KIND_AD, KIND_PROMO)]
            i = next(k for k, p in enumerate(content) if p.kind == KIND_PROMO)
            positions.add("first" if i == 0 else "last" if i == len(content) - 1 else "middle")
            promo = content[i]
            assert promo.logo and promo.label == "ad" and promo.frames % FPS == 0 and 5 <= promo.frames / FPS <= 15
            for s in promo.shots:
                assert s.ident == "ch1" or s.captions, "a trailer with captions, or an ident"
                if s.ident is None:
                    assert (s.clip or s.photo) in material, "promos show the pool's own program footage"
        assert all(p.kind != KIND_PROMO for p in plays if p.logo is False)
    assert positions >= {"first", "last"}


def test_promo_idents_use_the_channel():
    idents = {s.ident for seed in range(20) for p in plan(seed=seed, diff={PROMOS}, channel="ch2") for s in p.shots}
    assert "ch2" in idents and "ch1" not in idents


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_cold_open_segments_start_without_the_logo(pool):
    counts = []
    for duration, seed in itertools.product((150, 1800), range(10)):
        plays = plan(pool, duration, seed, {COLD_OPEN})
        check_structure(plays, duration * FPS)
        segs = segments_of(plays)
        assert all(p.logo for p in segs[0]), "the broadcast's first segment follows no break"
        cold = 0
        for seg in segs[1:]:
            flags = [p.logo for p in seg]
            if not flags[0]:
                cold += 1
                n = flags.index(True)
                assert all(flags[n:]), "the logo appears once and stays"
                without = sum(p.frames for p in seg[:n]) / FPS
                assert 15 <= without <= 40
                assert sum(p.frames for p in seg[n:]) >= 5 * FPS
            else:
                assert all(flags)
        assert cold >= 1
        counts.append(cold / (len(segs) - 1))
    assert 0.25 <= float(np.mean(counts)) <= 0.6


def test_split_shots_continue_their_clip_and_motion():
    s = Shot(100, clip="vtest", in_s=2.0)
    a, b = s.split(40, FPS)
    assert (a.frames, b.frames, b.in_s) == (40, 60, pytest.approx(2.0 + 40 / FPS))
    p = Shot(100, photo="astronaut", path=(1.0, 0.5, 0.5, 0.6, 0.2, 0.2))
    a, b = p.split(30, FPS)
    assert (a.offset, a.total, b.offset, b.total, b.frames) == (0, 100, 30, 100, 70)


# ================================================================================================ sound
SOUND = {KIND_PROGRAM: audio.SPEECH, KIND_AD: audio.MUSIC, KIND_PROMO: audio.PROMO}


def test_audio_items_tile_the_track_with_silent_separators():
    for diff in (frozenset(), frozenset({NO_BLACK}), frozenset({FADES, PROMOS})):
        plays = plan("train", 600, 3, diff)
        items = plan_audio(plays, FPS, np.random.default_rng(0))
        assert items[0].start == 0 and items[-1].end == sample_at(600 * FPS, FPS)
        for a, b in itertools.pairwise(items):
            assert a.end == b.start
        starts = {sample_at(p.start_frame, FPS) for p in plays}
        assert all(it.start in starts for it in items), "every item starts on a frame boundary"
        for p in plays:
            it = next(i for i in items if i.start <= sample_at(p.start_frame, FPS) < i.end)
            assert it.kind == SOUND.get(p.kind, audio.SILENCE)
            if p.kind in (KIND_AD, KIND_PROMO):
                assert it.edges == audio.EDGES_SPOT and (it.start, it.end) == (
                    sample_at(p.start_frame, FPS),
                    sample_at(p.end_frame, FPS),
                )
        # one commercial's music is the same in every break
        by_spot: dict[str, set[int]] = {}
        for p in plays:
            if p.kind == KIND_AD:
                it = next(i for i in items if i.start == sample_at(p.start_frame, FPS))
                by_spot.setdefault(p.spot, set()).add(it.seed)
        assert all(len(v) == 1 for v in by_spot.values())


def test_ads_are_5_db_louder_unless_loud():
    plays = plan("heldout", 300, 1, {PROMOS})
    for loud, boost in ((False, audio.AD_BOOST_DB), (True, 0.0)):
        items = plan_audio(plays, FPS, np.random.default_rng(0), loud=loud)
        levels = {it.kind: it.level_dbfs for it in items}
        assert levels[audio.SPEECH] == audio.PROGRAM_DBFS
        assert levels[audio.MUSIC] == levels[audio.PROMO] == audio.PROGRAM_DBFS + boost
    assert audio.AD_BOOST_DB == 5.0


@pytest.mark.parametrize("kind", [audio.SPEECH, audio.MUSIC, audio.PROMO])
def test_synthesised_sound_has_its_level_edges_and_character(kind):
    sr = audio.SAMPLE_RATE
    edges = audio.EDGES_CUT if kind == audio.SPEECH else audio.EDGES_SPOT
    item = audio.AudioItem(kind, 0, 12 * sr, seed=7, level_dbfs=-21.0, edges=edges)
    x = audio.synthesise(item)
    assert x.dtype == np.float32 and len(x) == 12 * sr
    assert np.array_equal(x, audio.synthesise(item)), "deterministic"
    e = item.edge_samples()
    rms = float(np.sqrt(np.mean(x[e:-e].astype(np.float64) ** 2)))
    assert 20 * math.log10(rms) == pytest.approx(-21.0, abs=0.01)
    assert np.abs(x).max() < 0.9
    if edges == audio.EDGES_SPOT:
        silent = int(audio.EDGE_SILENCE_S * sr)
        assert not x[:silent].any() and not x[-silent:].any()
        assert e == int(round((audio.EDGE_SILENCE_S + audio.EDGE_FADE_S) * sr))
    # loudness in 50 ms windows: speech pauses between phrases (down to its room tone, never digital silence) and
    # swings at syllable rate; music never pauses
    win = x[e : len(x) - e][: (len(x) - 2 * e) // 2400 * 2400].reshape(-1, 2400)
    env = np.sqrt((win.astype(np.float64) ** 2).mean(axis=1))
    quiet = float(np.mean(env < 0.15 * rms))
    if kind == audio.SPEECH:
        assert quiet > 0.08, "pauses"
        assert env.min() > 0.05 * rms, "room tone between the words"
        spectrum = np.abs(np.fft.rfft(env - env.mean()))
        freqs = np.fft.rfftfreq(len(env), 0.05)
        assert freqs[int(np.argmax(spectrum[1:])) + 1] < 8.0, "the loudness swings slower than 8 Hz"
    else:
        assert quiet < 0.02


def test_music_of_a_cut_down_matches_the_full_commercial():
    sr = audio.SAMPLE_RATE
    seed = audio.family_seed("gillette")
    full = audio._music(seed, 20 * sr, sr, 0.0)
    part = audio._music(seed, 5 * sr, sr, 10.0)
    assert np.allclose(full[10 * sr : 15 * sr], part, atol=1e-6)


# ================================================================================================ logos
def test_channel_logos_differ_in_corner_look_and_transparency():
    w, h = 960, 540
    one, two = logo_for(w, h, "ch1"), logo_for(w, h, "ch2")
    x0, y0, x1, y1 = one.box
    assert x1 > 0.85 * w and y0 < 0.15 * h, "ch1: top-right"
    x0, y0, x1, y1 = two.box
    assert x0 < 0.15 * w and y1 > 0.85 * h, "ch2: bottom-left"
    assert one.channel.text != two.channel.text and one.channel.colour != two.channel.colour
    assert one.channel.style != two.channel.style
    assert one.alpha_max == 0.6 and two.alpha_max != one.alpha_max
    for c in CHANNELS:
        normal, faint = logo_for(w, h, c), logo_for(w, h, c, True)
        assert faint.box == normal.box and faint.alpha_max < 0.3 < normal.alpha_max
        assert np.array_equal(faint.stroke_mask(), normal.stroke_mask())
        assert faint.stroke_mask().sum() > 100 and faint.clear_mask().sum() > 100
        assert all(v % 2 == 0 for v in normal.box)
