"""What a scan of one recording found: its segments, how long each pass took, and what did not decode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adbreak.segments import Segment, is_ad


@dataclass(frozen=True)
class ScanResult:
    """The decided segments of ``recording`` (tiling ``[0, duration_s]``) and how the scan went.

    ``fps`` is the video's own frame rate (Comskip's ``.txt`` counts frames in it). ``timings`` holds wall seconds
    per pass (``probe``, ``coarse``, ``fine``, ``decide``, ``total``); ``gaps`` the stretches (seconds) that did not
    decode (a damaged recording); ``warnings`` one line each, for the user.
    """

    recording: Path
    duration_s: float
    fps: float
    segments: list[Segment]
    mode: str  # "fast" (coarse to fine) or "full" (every sampled frame analysed)
    frames_analysed: int
    timings: dict[str, float] = field(default_factory=dict)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # the recording's container, codecs, size, audio
    thumbnails: list[tuple[float, bytes]] = field(default_factory=list, repr=False)
    """``(t, JPEG)`` pictures of the recording (``scan_recording(..., thumbnails=True)``) for review on the
    server: intra frames, about one every ``THUMBNAIL_STEP_S`` (one per GOP where they are further apart)."""

    @property
    def ad_breaks(self) -> list[Segment]:
        return [s for s in self.segments if is_ad(s.label)]

    def to_json(self) -> dict[str, Any]:
        return {
            "recording": str(self.recording),
            "duration_s": round(self.duration_s, 3),
            "fps": round(self.fps, 3),
            "mode": self.mode,
            "frames_analysed": self.frames_analysed,
            "segments": [
                {"start": round(s.start, 3), "end": round(s.end, 3), "label": s.label} for s in self.segments
            ],
            "ad_breaks": len(self.ad_breaks),
            "ad_s": round(sum(s.duration for s in self.ad_breaks), 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "gaps": [[round(a, 3), round(b, 3)] for a, b in self.gaps],
            "warnings": list(self.warnings),
            "info": dict(self.info),
        }
