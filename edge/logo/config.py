"""The logo learner's settings (all times in stream seconds, all fractions of the analysed screen)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LogoConfig:
    """Every threshold of :class:`edge.logo.LogoLearner`, with defaults for a 640 px wide screen at ~5 frames/s."""

    # --- where and how often to look
    corner_w: float = 0.3
    """Width of each of the four corner regions searched, as a fraction of the screen width (Comskip: outer thirds)."""
    corner_h: float = 0.3
    """Height of each corner region, as a fraction of the screen height."""
    sample_interval_s: float = 1.0
    """Learning looks at one frame per this many seconds (Comskip: one a second); presence is measured on every
    frame."""

    # --- edges: a pixel is an edge when its luma differs from the pixel two away (across it) by >= the threshold
    edge_min: float = 4.0
    """Lowest edge threshold, in 8-bit luma levels (Comskip's is 5; low so that faint transparent logos still count)."""
    edge_noise_k: float = 1.0
    """The threshold rises to this many times the corner's noise (a standard deviation estimated from the lower
    quartile of its luma differences), so a camera's sensor noise does not make edges; as the edges are signed and
    noise averages out in the persistence maps, a low threshold keeps faint logos without making noise a logo."""
    edge_max: float = 12.0
    """Highest edge threshold."""

    # --- learning the mask
    learn_tau_s: float = 120.0
    """Time constant of the per-pixel edge persistence average (~2 minutes of recent frames)."""
    refine_tau_s: float = 90.0
    """Time constant of the persistence average kept only over frames where the learned logo is present."""
    learn_min_s: float = 30.0
    """Seconds of samples before the first search."""
    search_interval_s: float = 10.0
    """How often the persistence maps are searched for a logo (the search is the costly step, amortised), and how
    often a known logo's mask is refined."""
    background_search_s: float = 60.0
    """With a logo known, how often all four corners are searched for a different one (a channel change)."""
    share_min: float = 0.45
    """A mask pixel was an edge of the same polarity in at least this share of recent samples (net of the opposite
    polarity); a group too large for a logo is searched again at shares rising in steps of 0.05."""
    novelty_corr: float = 0.9
    """The refinement counts a sample only when the logo's corner changed since the last one it counted (the
    correlation of their small copies is below this): a fixed shot held for minutes does not become the logo."""
    refine_share: float = 0.8
    """Once a logo is known, a pixel stays in its mask while its persistence over the frames with the logo present
    reaches this fraction of what the logo's own pixels reach (their upper quartile)."""
    cross_radius: int = 6
    """Isolated lines are not a logo (Comskip): only an edge pixel with edges across the other direction within
    this radius..."""
    cross_min: int = 3
    """...at least this many of them, places and sizes a logo (its own straight strokes stay in its mask)..."""
    cross_share: float = 0.1
    """...and a group needs this share of its pixels to be edges across its less common direction (x or y)."""
    min_pixels: int = 30
    """A logo has at least this many mask pixels."""
    max_box_w: float = 0.25
    """A logo's box is at most this fraction of the screen width..."""
    max_box_h: float = 0.25
    """...this fraction of its height..."""
    max_box_area: float = 0.12
    """...and this fraction of its area (Comskip: 12%)."""
    min_density: float = 0.06
    """Mask pixels per box pixel: scattered persistent scene edges are not a logo."""
    confirm_iou: float = 0.6
    """Two searches in a row must find boxes that overlap this much (intersection over union) before a logo is
    accepted; a refined mask's box must lie this much inside the current one (intersection over the smaller)."""

    # --- presence
    contrast_floor: float = 0.5
    """Presence is the normalised correlation of the luma differences under the mask with the learned edges; this
    (luma levels) joins their energy, so that a box with hardly any contrast reads as no logo."""
    score_window_s: float = 1800.0
    """Recent per-second raw presence scores kept for the on/off threshold (the valley of their histogram)."""
    score_bins: int = 40
    """Histogram bins over the raw score's range [0, 1]."""
    min_mode_share: float = 0.05
    """Both modes of the raw scores need this share of the window before the valley between them is trusted."""
    min_mode_gap: float = 0.15
    """...and this distance between their centres."""
    off_spread_k: float = 4.0
    """The threshold sits at most this many standard deviations of the absent mode above it (scores without the
    logo cluster tightly, scores with it spread down towards it when the logo is faint), and at least
    ``min_mode_gap`` above it."""
    prior_valley: float = 0.5
    """Before both modes are seen, the threshold is this fraction of the way from 0 to the present mode."""

    # --- dropping a useless logo (Comskip: the logo cue is ignored outside 35-92% presence)
    drop_window_s: float = 1200.0
    """Presence is judged over this much recent time (needs the whole window since the logo was learned)."""
    drop_low: float = 0.35
    """Dropped (UNKNOWN) when present in less than this share of the window..."""
    drop_high: float = 0.95
    """...or in more than this share (a clock or a static caption that is there through the ads too)."""

    # --- relearning
    doubt_absent_s: float = 300.0
    """A learned logo absent this long (longer than an ad break) while a different stable candidate has formed is in
    doubt: presence is UNKNOWN until it shows again or the new one takes over."""
    relearn_absent_s: float = 600.0
    """A learned logo absent this long (far longer than any ad break) gives way to a different stable candidate."""
    seen_run_s: float = 3.0
    """The logo counts as seen after this many consecutive present seconds."""

    # --- persistence
    save_interval_s: float = 300.0
    """With a state file, learning progress (refinements included) is saved at most this often, and at once when a
    logo is learned, replaced or ruled out."""

    def __post_init__(self) -> None:
        for name in ("sample_interval_s", "learn_tau_s", "refine_tau_s", "search_interval_s", "drop_window_s",
                     "score_window_s", "edge_min"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(f"LogoConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not (0 < self.corner_w <= 0.5 and 0 < self.corner_h <= 0.5):
            raise ValueError("LogoConfig.corner_w and corner_h must be in (0, 0.5]")
        if not (0 <= self.drop_low < self.drop_high):
            raise ValueError("LogoConfig.drop_low must be >= 0 and below drop_high")

    def to_dict(self) -> dict:
        return asdict(self)
