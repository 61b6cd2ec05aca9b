"""The channel logo, learned on the device by edge persistence in the screen's corners, and its per-frame presence.

How it works (after Comskip's and MythTV's logo finders, ``docs/research.md``, "Detection that generalises"):

* **Learning** looks at one frame a second (``sample_interval_s``), and only at the four corner regions. Each pixel
  gets signed edges (the luma two pixels away on one side minus the other, across x and across y; +1 / -1 where
  the difference reaches a threshold that follows the corner's noise, so a camera's noise does not make edges) and
  a running mean of them over ~2 minutes. A logo's edges keep their sign on every background (a white logo is
  brighter than whatever is under it, even at alpha 0.25 over a bright scene), so its pixels approach +-1 while
  moving content and noise average out towards 0, whatever the threshold.
* **Search** (every ``search_interval_s``; :func:`edge.logo.detect.find_logo`): pixels persistent in at least
  ``share_min`` of the samples; lines longer than a logo removed and isolated lines ignored (Comskip); strokes
  grouped; a group too large for a logo, or reaching into the screen past the corner region, is searched again at
  rising shares (MythTV's rising thresholds), since a logo outlasts the scene it is joined to; of the groups with a
  logo's size and density, the largest persistent edge mass wins. Two searches in a row must agree.
* **Refinement**: once a logo is known, a second running mean is kept over the samples where it is present and its
  corner shows something new (so neither ad breaks nor a fixed shot held for minutes count), and the mask is
  re-cut from it: pixels that were only persistent because a programme's fixed shot held them fall out.
* **Presence** per frame: the normalised correlation of the luma differences under the mask with the learned signs
  (1 when the logo is there at any strength, ~0 on unrelated content), mapped to [0, 1] around the valley of the
  bimodal histogram of recent scores (MythTV), kept within a few spreads of the no-logo mode.
* **Dropped** (UNKNOWN) when present in less than 35% or more than 95% of a long window (Comskip); a mark that is
  there all the time (a clock) is also ruled out as the logo, and another candidate is looked for. **Relearned**
  when the logo has been absent far longer than any ad break while a different stable candidate has formed (a
  channel change). **Kept** across restarts in ``state_path``; a file that cannot be read is set aside.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from adbreak.atomic import atomic_path, set_aside
from edge.cues.base import UNKNOWN, ScreenFrame
from edge.logo.config import LogoConfig
from edge.logo.detect import (
    Candidate,
    Corners,
    Threshold,
    box_iou,
    edge_codes,
    edge_thresholds,
    find_logo,
    gradients,
    presence_score,
    split_scores,
)

log = logging.getLogger(__name__)

STATE_FORMAT = "adbreak-logo/1"
_DIFFERENT_IOU = 0.3  # a candidate overlapping the logo less than this is another logo
_MIN_REFINE_WEIGHT = 0.25  # the refinement map must hold this much evidence (bias-corrected EMA weight) to be used


class LogoLearner:
    """Learns the channel logo from the frames it is fed and returns its per-frame presence."""

    def __init__(self, config: LogoConfig | None = None, state_path: str | os.PathLike[str] | None = None) -> None:
        self.config = config if config is not None else LogoConfig()
        self.state_path = Path(state_path) if state_path is not None else None
        self._clear()
        self._last_save_t: float | None = None
        if self.state_path is not None:
            self._load()

    # ------------------------------------------------------------------------------------------------ public
    @property
    def mask(self) -> np.ndarray | None:
        """(h, w) bool over :attr:`box`: the logo's edge pixels; None while no logo is known."""
        return None if self._logo is None else self._logo.mask

    @property
    def box(self) -> tuple[int, int, int, int] | None:
        """The logo's box (x0, y0, x1, y1; x1, y1 exclusive) in :attr:`ScreenFrame.gray` pixels, or None."""
        return None if self._logo is None else self._logo.box

    @property
    def learned_at_t(self) -> float | None:
        """Stream time at which the current logo was accepted (a previous run's time after a restart)."""
        return self._learned_at_t

    @property
    def dropped(self) -> bool:
        """True while the logo is known but its presence is useless (always or almost never there)."""
        return self._dropped

    @property
    def in_doubt(self) -> bool:
        """True while the logo has been absent far longer than an ad break and a different one has formed (a
        channel change not yet relearned): presence is UNKNOWN meanwhile."""
        return self._doubt

    @property
    def threshold(self) -> Threshold | None:
        """The current on/off split of the raw scores (None while no logo is known)."""
        return self._threshold if self._logo is not None else None

    def scorer(self) -> LogoScorer | None:
        """The logo as it stands, frozen: presence on any frame without learning from it (an offline scan scores
        frames anywhere in a recording with the logo its cheap pass learned). None while no logo is known or it is
        dropped or in doubt."""
        if self._logo is None or self._dropped or self._doubt:
            return None
        return LogoScorer(self._logo, self._threshold, self.config.contrast_floor)

    @property
    def raw_score(self) -> float:
        """The last frame's raw score (share of the mask's edges present), NaN while no logo is known."""
        return self._raw

    def update(self, frame: ScreenFrame) -> float:
        """Feed one analysed frame; returns the logo's presence in [0, 1], or UNKNOWN (NaN) while no logo is known
        or the cue is dropped."""
        t = float(frame.t)
        gray = frame.gray
        if self._corners is None or gray.shape != (self._corners.height, self._corners.width):
            self._start_geometry(gray.shape)
        if self._last_t is not None and t < self._last_t - self.config.sample_interval_s:
            self._rebase(t)  # time went backwards: a new source; keep what was learned, restart the clocks
        if self._next_sample_t is None:
            self._rebase(t)
        self._last_t = t
        logo = self._logo
        raw = presence_score(gray, logo, self.config.contrast_floor) if logo is not None else math.nan
        self._raw = raw
        if t >= self._next_sample_t:  # type: ignore[operator]
            self._sample(t, gray, frame.small, raw)
            nxt = self._next_sample_t + self.config.sample_interval_s  # type: ignore[operator]
            self._next_sample_t = nxt if nxt > t else t + self.config.sample_interval_s
        if t >= self._next_search_t:  # type: ignore[operator]
            self._next_search_t = t + self.config.search_interval_s
            self._search(t)
        if self._logo is None or self._dropped or self._doubt:
            return UNKNOWN
        if logo is not self._logo:  # replaced by this frame's search: measure with the new mask
            raw = presence_score(gray, self._logo, self.config.contrast_floor)
            self._raw = raw
        return self._threshold.map(raw)

    def reset(self) -> None:
        """Forget everything learned (and, with a state file, persist the empty state at once)."""
        self._clear()
        if self.state_path is not None:
            self.save()

    def save(self) -> None:
        """Write the learned state to ``state_path`` atomically (nothing without a state path)."""
        if self.state_path is None:
            return
        meta, arrays = self._state()
        with atomic_path(self.state_path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)
        self._last_save_t = self._last_t
        self._dirty = False

    def close(self) -> None:
        """Save (with a state path) and stop."""
        if self.state_path is not None:
            try:
                self.save()
            except OSError as exc:  # a full or read-only disk must not take the detector down with it
                log.warning("logo: cannot save %s: %s", self.state_path, exc)

    # ------------------------------------------------------------------------------------------------ learning
    def _clear(self) -> None:
        self._corners: Corners | None = None
        self._sx = self._sy = None  # persistence maps over all samples, (4, ch, cw) float32
        self._w = 0.0  # bias correction of the running means (1 - (1 - a)^n)
        self._rx = self._ry = None  # persistence maps over samples with the logo present (refinement)
        self._rw = 0.0
        self._novel_ref: np.ndarray | None = None  # the logo corner's small copy at the last counted refinement
        self._buf: np.ndarray | None = None
        self._samples = 0
        self._next_sample_t: float | None = None
        self._next_search_t: float | None = None
        self._next_global_t: float | None = None
        self._last_t: float | None = None
        self._pending: Candidate | None = None
        self._excluded: list[tuple[int, int, int, int]] = []  # boxes of marks that never leave (not a logo)
        self._logo: Candidate | None = None
        self._accepted_box: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._learned_at_t: float | None = None
        self._scores: deque[float] = deque(maxlen=self._window(self.config.score_window_s))
        self._present: deque[bool] = deque(maxlen=self._window(self.config.drop_window_s))
        self._since_learned_s = 0.0
        self._threshold = Threshold(0.0, 0.5, 1.0, False)
        self._dropped = False
        self._doubt = False  # long absent while another logo has formed: presence UNKNOWN until one is settled
        self._run = 0
        self._last_seen_t: float | None = None
        self._raw = math.nan
        self._dirty = False

    def _window(self, seconds: float) -> int:
        return max(1, int(math.ceil(seconds / self.config.sample_interval_s)))

    def _start_geometry(self, shape: tuple[int, ...]) -> None:
        h, w = int(shape[0]), int(shape[1])
        if self._corners is not None or self._logo is not None:
            log.info("logo: the screen is now %dx%d (was %s): learning again", w, h, self._shape_text())
            self._clear()
        cfg = self.config
        self._corners = c = Corners.for_shape(h, w, cfg.corner_w, cfg.corner_h)
        self._sx = np.zeros((4, c.ch, c.cw), np.float32)
        self._sy = np.zeros_like(self._sx)
        self._rx = np.zeros_like(self._sx)
        self._ry = np.zeros_like(self._sx)
        self._buf = np.empty((4, c.ch, c.cw), np.int16)

    def _shape_text(self) -> str:
        return "unset" if self._corners is None else f"{self._corners.width}x{self._corners.height}"

    def _rebase(self, t: float) -> None:
        self._next_sample_t = t
        self._next_search_t = t + self.config.search_interval_s
        self._next_global_t = None
        if self._logo is not None:
            self._last_seen_t = t  # the absence clock of a loaded or carried-over logo starts now
        self._last_save_t = t

    def _sample(self, t: float, gray: np.ndarray, small: np.ndarray, raw: float) -> None:
        cfg = self.config
        c = self._corners
        regions = c.stack(gray, self._buf)
        gx, gy = gradients(regions)
        thr = edge_thresholds(gx, cfg.edge_min, cfg.edge_noise_k, cfg.edge_max)
        ex, ey = edge_codes(gx, thr), edge_codes(gy, thr)
        a = 1.0 - math.exp(-cfg.sample_interval_s / cfg.learn_tau_s)
        _ema(self._sx, ex, a)
        _ema(self._sy, ey, a)
        self._w += a * (1.0 - self._w)
        self._samples += 1
        self._dirty = True
        logo = self._logo
        if logo is None or math.isnan(raw):
            return
        self._scores.append(raw)
        present = self._threshold.map(raw) > 0.5
        self._present.append(present)
        self._since_learned_s += cfg.sample_interval_s
        if present:
            k = logo.corner
            if self._novel(k, small):
                ar = 1.0 - math.exp(-cfg.sample_interval_s / cfg.refine_tau_s)
                _ema(self._rx[k], ex[k], ar)
                _ema(self._ry[k], ey[k], ar)
                self._rw += ar * (1.0 - self._rw)
            self._run += 1
            if self._run * cfg.sample_interval_s >= cfg.seen_run_s:
                self._last_seen_t = t
                self._doubt = False
        else:
            self._run = 0

    def _novel(self, k: int, small: np.ndarray) -> bool:
        """Whether corner ``k`` shows something else than at the last sample the refinement counted (the
        correlation of the corner's small copy with that one's is below ``novelty_corr``; a flat corner is not new).
        A fixed shot held for minutes would otherwise look as persistent as the logo; brightness changes (a
        camera's flicker) and sensor noise do not change the correlation."""
        c = self._corners
        sh, sw = small.shape[:2]
        ox, oy = c.origin(k)
        fx, fy = sw / c.width, sh / c.height
        x0, y0 = int(ox * fx), int(oy * fy)
        thumb = small[y0 : y0 + max(2, int(c.ch * fy)), x0 : x0 + max(2, int(c.cw * fx))].astype(np.float32).ravel()
        thumb -= thumb.mean()
        norm = float(np.sqrt(thumb @ thumb))
        ref = self._novel_ref
        if norm < 1e-3 * thumb.size:  # flat (black bars, a blank screen)
            return False
        thumb /= norm
        if ref is None or ref.shape != thumb.shape or float(thumb @ ref) < self.config.novelty_corr:
            self._novel_ref = thumb
            return True
        return False

    def _search(self, t: float) -> None:
        cfg = self.config
        if self._samples * cfg.sample_interval_s < cfg.learn_min_s or self._w <= 0:
            return
        learned = False  # a logo accepted, switched or ruled out: saved at once
        logo = self._logo
        # all four corners: every search until a logo is known, then less often (for a channel change)
        if logo is None or self._next_global_t is None or t >= self._next_global_t:
            self._next_global_t = t + cfg.background_search_s
            cand = find_logo(*self._maps(exclude=True), self._corners, cfg)
            confirmed = _same(cand, self._pending, cfg.confirm_iou)
            self._pending = cand
            if logo is None:
                if confirmed:
                    self._accept(cand, t)
                    learned = True
            elif confirmed and (cand.corner != logo.corner or box_iou(cand.box, logo.box) < _DIFFERENT_IOU):
                absent_s = t - (self._last_seen_t if self._last_seen_t is not None else t)
                if self._dropped or absent_s > cfg.relearn_absent_s:
                    why = "dropped" if self._dropped else f"absent for {absent_s:.0f} s"
                    log.info("logo: %s %s, switching to a new logo at %s", logo.box, why, cand.box)
                    self._accept(cand, t)
                    learned = True
                elif absent_s > cfg.doubt_absent_s and not self._doubt:
                    log.info(
                        "logo: %s absent for %.0f s and another logo at %s: in doubt", logo.box, absent_s, cand.box
                    )
                    self._doubt = True
        logo = self._logo
        if logo is not None and self._rw >= _MIN_REFINE_WEIGHT and not learned:
            k = logo.corner
            rx, ry = self._maps(refine=True)
            # the share a pixel needs is relative to how persistent the logo's own pixels are over the frames
            # it is on (a faint or coloured logo through a camera does not reach 1)
            x0, y0, x1, y1 = logo.box
            ox, oy = self._corners.origin(k)
            win = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
            own = np.concatenate([np.abs(rx[k][win])[logo.sign_x != 0], np.abs(ry[k][win])[logo.sign_y != 0]])
            level = max(cfg.share_min, cfg.refine_share * float(np.percentile(own, 75))) if own.size else 1.0
            refined = find_logo(rx, ry, self._corners, cfg, only_corner=k, share=level)
            # a refinement trims the mask (pixels that were only persistent because a fixed shot held them); it
            # neither grows it into the scene nor shrinks it to a fragment of what was accepted
            if (
                refined is not None
                and _overlap(refined.box, logo.box) >= cfg.confirm_iou
                and _area(refined.box) <= 1.25 * _area(logo.box)
                and _area(refined.box) >= 0.25 * _area(self._accepted_box)
            ):
                self._dirty = True  # a refinement is saved with the periodic save
                self._logo = refined
        if self._logo is not None:
            scores = np.fromiter(self._scores, np.float64, len(self._scores))
            reference = max(self._logo.share, float(np.percentile(scores, 90)) if scores.size else 0.0)
            self._threshold = split_scores(scores, cfg, max(reference, 1e-3))
            full = self._since_learned_s >= cfg.drop_window_s
            if full and self._present:
                share = sum(self._present) / len(self._present)
                dropped = share < cfg.drop_low or share > cfg.drop_high
                if dropped != self._dropped:
                    log.info(
                        "logo: present in %.0f%% of the last %.0f s: %s",
                        100 * share,
                        cfg.drop_window_s,
                        "dropped" if dropped else "used again",
                    )
                    if share > cfg.drop_high and self._logo.box not in self._excluded:
                        # always there, through the ads too (a clock, a static caption): not the channel logo;
                        # keep looking for one elsewhere
                        self._excluded.append(self._logo.box)
                        learned = True
                self._dropped = dropped
        if self.state_path is not None and (
            learned
            or (self._dirty and (self._last_save_t is None or abs(t - self._last_save_t) >= cfg.save_interval_s))
        ):
            try:
                self.save()
            except OSError as exc:
                log.warning("logo: cannot save %s: %s", self.state_path, exc)

    def _accept(self, cand: Candidate, t: float) -> None:
        log.info(
            "logo: learned at t=%.1f s in corner %d, box %s, %d edge pixels", t, cand.corner, cand.box, cand.pixels
        )
        self._logo = cand
        self._accepted_box = cand.box  # refinements may trim it, not shrink it to a fragment
        self._learned_at_t = t
        self._pending = None
        self._next_global_t = t + self.config.background_search_s
        self._scores.clear()
        self._present.clear()
        self._since_learned_s = 0.0
        self._threshold = Threshold(0.0, self.config.prior_valley * cand.share, cand.share, False)
        self._dropped = False
        self._doubt = False
        self._run = 0
        self._last_seen_t = t
        # the refinement starts from what the logo's corner looked like over all samples
        k = cand.corner
        self._rw = 1.0 - math.exp(-1.0)  # as if one time constant of evidence
        self._rx.fill(0.0)
        self._ry.fill(0.0)
        self._rx[k] = self._sx[k] * (self._rw / self._w)
        self._ry[k] = self._sy[k] * (self._rw / self._w)

    def _maps(self, refine: bool = False, exclude: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The bias-corrected persistence maps in [-1, 1] (the running means hold the edge codes 0, 1, 2); with
        ``exclude``, zero inside the boxes of marks found to be there all the time."""
        if refine:
            return self._rx / self._rw - 1.0, self._ry / self._rw - 1.0
        sx, sy = self._sx / self._w - 1.0, self._sy / self._w - 1.0
        if exclude:
            c = self._corners
            for x0, y0, x1, y1 in self._excluded:
                for k in range(4):
                    ox, oy = c.origin(k)
                    win = (
                        slice(max(0, y0 - oy), max(0, min(c.ch, y1 - oy))),
                        slice(max(0, x0 - ox), max(0, min(c.cw, x1 - ox))),
                    )
                    sx[k][win] = 0.0
                    sy[k][win] = 0.0
        return sx, sy

    # ------------------------------------------------------------------------------------------------ state
    def _state(self) -> tuple[dict, dict[str, np.ndarray]]:
        cfg = self.config
        meta: dict = {
            "format": STATE_FORMAT,
            "corner_w": cfg.corner_w,
            "corner_h": cfg.corner_h,
            "shape": None if self._corners is None else [self._corners.height, self._corners.width],
            "w": self._w,
            "rw": self._rw,
            "samples": self._samples,
            "logo": None,
            "excluded": [list(b) for b in self._excluded],
            "saved_at": time.time(),
        }
        arrays: dict[str, np.ndarray] = {}
        if self._corners is not None:  # the maps as signed persistence (the running means hold it plus one)
            sx, sy = self._maps() if self._w > 0 else (self._sx, self._sy)
            rx, ry = self._maps(refine=True) if self._rw > 0 else (self._rx, self._ry)
            arrays.update(sx=sx.astype(np.float16), sy=sy.astype(np.float16))
            arrays.update(rx=rx.astype(np.float16), ry=ry.astype(np.float16))
        logo = self._logo
        if logo is not None:
            meta["logo"] = {
                "corner": logo.corner,
                "box": list(logo.box),
                "accepted_box": list(self._accepted_box),
                "share": logo.share,
                "learned_at_t": self._learned_at_t,
                "since_learned_s": self._since_learned_s,
                "dropped": self._dropped,
            }
            arrays.update(sign_x=logo.sign_x, sign_y=logo.sign_y, weight_x=logo.weight_x, weight_y=logo.weight_y)
            arrays.update(scores=np.asarray(self._scores, np.float32), present=np.asarray(self._present, np.uint8))
        return meta, arrays

    def _load(self) -> None:
        path = self.state_path
        assert path is not None
        if not path.exists():
            return
        try:
            self._restore(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable state is set aside; the learner must keep running
            self._clear()
            try:
                aside = set_aside(path)
                log.warning(
                    "logo: unreadable state %s (%s: %s), moved to %s; learning again",
                    path,
                    type(exc).__name__,
                    exc,
                    aside.name,
                )
            except OSError as move_exc:
                log.warning(
                    "logo: unreadable state %s (%s: %s), and cannot move it aside (%s); learning again",
                    path,
                    type(exc).__name__,
                    exc,
                    move_exc,
                )

    def _restore(self, path: Path) -> None:
        cfg = self.config
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != STATE_FORMAT:
                raise ValueError(f"not a logo state (format {meta.get('format')!r})")
            if (meta["corner_w"], meta["corner_h"]) != (cfg.corner_w, cfg.corner_h):
                log.info("logo: %s was learned with other corner regions: learning again", path)
                return
            shape = meta["shape"]
            if shape is None:
                return
            self._start_geometry((int(shape[0]), int(shape[1])))
            c = self._corners
            want = (4, c.ch, c.cw)
            maps = {name: np.asarray(z[name], np.float32) for name in ("sx", "sy", "rx", "ry")}
            for name, arr in maps.items():
                if arr.shape != want or not np.all(np.abs(arr) <= 1.0):
                    raise ValueError(f"{name} has shape {arr.shape} (want {want}) or values outside [-1, 1]")
            self._w, self._rw = float(meta["w"]), float(meta["rw"])
            self._samples = int(meta["samples"])
            if not (0.0 <= self._w <= 1.0 and 0.0 <= self._rw <= 1.0 and self._samples >= 0):
                raise ValueError("running-mean weights out of range")
            self._sx, self._sy = (maps["sx"] + 1.0) * self._w, (maps["sy"] + 1.0) * self._w
            self._rx, self._ry = (maps["rx"] + 1.0) * self._rw, (maps["ry"] + 1.0) * self._rw
            for box in meta.get("excluded", []):
                if len(box) != 4:
                    raise ValueError(f"bad excluded box {box!r}")
                self._excluded.append(tuple(int(v) for v in box))
            info = meta["logo"]
            if info is None:
                return
            k = int(info["corner"])
            box = tuple(int(v) for v in info["box"])
            x0, y0, x1, y1 = box
            ox, oy = c.origin(k)
            if not (0 <= k < 4 and ox <= x0 < x1 <= ox + c.cw and oy <= y0 < y1 <= oy + c.ch):
                raise ValueError(f"logo box {box} outside corner {k}")
            arrays = {}
            for name, dtype in (
                ("sign_x", np.int8),
                ("sign_y", np.int8),
                ("weight_x", np.float32),
                ("weight_y", np.float32),
            ):
                arr = np.asarray(z[name])
                if arr.shape != (y1 - y0, x1 - x0):
                    raise ValueError(f"{name} has shape {arr.shape}, the box is {x1 - x0}x{y1 - y0}")
                arrays[name] = arr.astype(dtype)
            logo = Candidate(
                k, box, arrays["sign_x"], arrays["sign_y"], arrays["weight_x"], arrays["weight_y"], float(info["share"])
            )
            if logo.pixels == 0:
                raise ValueError("the saved logo has an empty mask")
            scores = np.asarray(z["scores"], np.float64)
            present = np.asarray(z["present"], bool)
        self._logo = logo
        self._accepted_box = tuple(int(v) for v in info.get("accepted_box", box))
        self._learned_at_t = None if info["learned_at_t"] is None else float(info["learned_at_t"])
        self._since_learned_s = float(info["since_learned_s"])
        self._dropped = bool(info["dropped"])
        self._scores.extend(float(s) for s in scores[-self._scores.maxlen :])
        self._present.extend(bool(p) for p in present[-self._present.maxlen :])
        reference = max(logo.share, float(np.percentile(scores, 90)) if scores.size else 0.0)
        self._threshold = split_scores(scores, cfg, max(reference, 1e-3))
        log.info("logo: loaded %s (corner %d, box %s)", path, k, box)


def _ema(acc: np.ndarray, x: np.ndarray, a: float) -> None:
    """acc = (1 - a) * acc + a * x in place (float32 ``acc``, uint8 ``x`` of the same shape; 2-D views for OpenCV)."""
    cv2.accumulateWeighted(x.reshape(-1, x.shape[-1]), acc.reshape(-1, acc.shape[-1]), a)


def _same(a: Candidate | None, b: Candidate | None, iou: float) -> bool:
    return a is not None and b is not None and a.corner == b.corner and box_iou(a.box, b.box) >= iou


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box: a refined mask may shed pixels the first one had picked up."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


@dataclass(frozen=True)
class LogoScorer:
    """A learned logo's presence measure, frozen (:meth:`LogoLearner.scorer`); picklable."""

    logo: Candidate
    threshold: Threshold
    contrast_floor: float

    def __call__(self, gray: np.ndarray) -> float:
        """Presence in [0, 1] on a :attr:`ScreenFrame.gray` of the shape the logo was learned on."""
        return self.threshold.map(presence_score(gray, self.logo, self.contrast_floor))


class LogoCue:
    """The learner behind the :class:`edge.cues.base.Cue` protocol: one value, ``logo``."""

    names = ("logo",)

    def __init__(self, config: LogoConfig | None = None, state_path: str | os.PathLike[str] | None = None) -> None:
        self.learner = LogoLearner(config, state_path)

    def update(self, frame: ScreenFrame) -> dict[str, float]:
        return {"logo": self.learner.update(frame)}

    def reset(self) -> None:
        self.learner.reset()

    def close(self) -> None:
        self.learner.close()
