"""Developer tool: transcode the original clips into the compact H.264 copies shipped under ``media/``.

Run once, from a checkout that has the originals (the project's shared media folder)::

    python -m adbreak.broadcast.make_media /work/shared/media

The builder reads only the shipped copies, so it works from the installed package alone. Each copy keeps its clip's
native frame rate and every frame (constant frame rate, ``pts`` = frame index), is at most 640 px wide, has no audio,
and has a keyframe every 4 s so the builder can seek cheaply. One repair is made: the two fully black frames inside
the Gillette commercial (frames 26-27, a splice in the film) are replaced by the frame before them, so that a fully
black frame occurs in a built broadcast only where the builder puts a separator. (The commercial's own first 1.5 s,
a black leader and a grey title fade, are kept in the copy but never played: see ``clips.py``.)
"""

from __future__ import annotations

import argparse
import math
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from adbreak.atomic import atomic_path
from adbreak.broadcast.clips import CLIPS, MEDIA_DIR
from adbreak.errors import AdbreakError

MAX_WIDTH = 640
CRF = 26
PRESET = "slow"
KEYFRAME_EVERY_S = 4.0

# original file (relative to the shared media folder) of each catalogued clip
ORIGINALS: dict[str, str] = {
    "vtest": "program/vtest.avi",
    "bikes": "program/bikes.mp4",
    "bigbuckbunny": "program/bigbuckbunny.mp4",
    "gillette": "ads/gillette_1955_public_domain_commercial_30s.mp4",
    "box": "other/box.mp4",
    "cup": "other/cup.mp4",
}
# frames replaced by the previous frame (see the module docstring)
REPAIRS: dict[str, tuple[int, ...]] = {"gillette": (26, 27)}


def _even(x: float) -> int:
    return max(2, int(round(x / 2.0)) * 2)


def transcode(src: Path, dst: Path, repair: tuple[int, ...] = ()) -> tuple[int, Fraction, int, int]:
    """Transcode one clip; returns (frames, fps, width, height) of the copy."""
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        rate = vin.average_rate or vin.guessed_rate
        if not rate:
            raise AdbreakError(f"{src}: unknown frame rate")
        rate = Fraction(rate).limit_denominator(100000)
        w0, h0 = vin.codec_context.width, vin.codec_context.height
        w = min(MAX_WIDTH, w0 - w0 % 2)
        h = _even(h0 * w / w0)
        n = 0
        with atomic_path(dst) as tmp, av.open(str(tmp), "w") as out:
            vout = out.add_stream("libx264", rate=rate)
            vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
            vout.time_base = 1 / rate
            vout.codec_context.time_base = 1 / rate
            vout.options = {
                "preset": PRESET,
                "crf": str(CRF),
                "g": str(max(1, math.ceil(KEYFRAME_EVERY_S * rate))),
                "threads": "1",
            }
            prev: np.ndarray | None = None
            for frame in inp.decode(vin):
                img = frame.to_ndarray(format="rgb24")
                if n in repair and prev is not None:
                    img = prev
                prev = img
                if (w, h) != (w0, h0):
                    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").reformat(format="yuv420p")
                vf.pts = n
                vf.time_base = 1 / rate
                for packet in vout.encode(vf):
                    out.mux(packet)
                n += 1
            for packet in vout.encode():
                out.mux(packet)
    dst.chmod(0o644)
    return n, rate, w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adbreak.broadcast.make_media", description=__doc__.splitlines()[0])
    parser.add_argument("originals", type=Path, help="folder holding program/, ads/ and other/ with the original clips")
    parser.add_argument("--out", type=Path, default=MEDIA_DIR, help=f"where the copies go (default {MEDIA_DIR})")
    args = parser.parse_args(argv)
    try:
        for name, rel in ORIGINALS.items():
            src = args.originals / rel
            if not src.is_file():
                raise AdbreakError(f"original clip {src} not found")
            dst = args.out / CLIPS[name].file
            n, rate, w, h = transcode(src, dst, REPAIRS.get(name, ()))
            print(f"{dst.name}: {n} frames, {rate} fps ({float(rate):.3f}), {w}x{h}, {dst.stat().st_size / 1e6:.2f} MB")
    except AdbreakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
