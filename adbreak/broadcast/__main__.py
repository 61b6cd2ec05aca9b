"""``python -m adbreak.broadcast OUT_DIR --name N --seed S --duration SECONDS [--pool train|heldout] [--camera]
[--difficulty a,b,...|all] [--channel ch1|ch2]``."""

from __future__ import annotations

import argparse
import sys
import time

from adbreak.errors import AdbreakError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, like every other error of this tool
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    from adbreak.broadcast.clips import POOLS
    from adbreak.broadcast.logo import CHANNELS, DEFAULT_CHANNEL
    from adbreak.broadcast.plan import DIFFICULTIES

    p = _Parser(
        prog="python -m adbreak.broadcast",
        description="Build a test broadcast from the bundled clips and photos: OUT_DIR/NAME.mp4 (H.264 + AAC), "
        "NAME.csv (truth segments) and NAME.json (seed, material used, difficulties, audio, camera). Same seed and "
        "options, same broadcast.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder for the three files (created if missing)")
    p.add_argument("--name", required=True, help="base name of the files")
    p.add_argument("--seed", type=int, required=True, help="random seed (>= 0); decides everything but the camera")
    p.add_argument("--duration", type=float, required=True, metavar="SECONDS", help="length (90 s to 24 h)")
    p.add_argument(
        "--pool",
        choices=sorted(POOLS),
        default="train",
        help="material pool: train and heldout share no clip and no photo (default train)",
    )
    p.add_argument(
        "--difficulty",
        default="",
        metavar="A,B,...",
        help=f"real-TV difficulties, comma-separated: {', '.join(DIFFICULTIES)}, or all (default none)",
    )
    p.add_argument(
        "--channel",
        choices=sorted(CHANNELS),
        default=DEFAULT_CHANNEL,
        help=f"the channel, i.e. its logo (default {DEFAULT_CHANNEL})",
    )
    p.add_argument("--camera", action="store_true", help="render the TV as a fixed camera in a room sees it")
    p.add_argument("--fps", type=int, default=25, help="frame rate of the output (default 25)")
    p.add_argument("--size", default="960x540", metavar="WxH", help="frame size (default 960x540)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise AdbreakError(f"--size must look like 960x540, got {args.size!r}") from None
        from adbreak.broadcast.builder import build_broadcast

        difficulties = frozenset(d.strip() for d in args.difficulty.split(",") if d.strip())
        t0 = time.monotonic()
        info = build_broadcast(
            args.out_dir,
            args.name,
            seed=args.seed,
            duration_s=args.duration,
            pool=args.pool,
            fps=args.fps,
            size=(w, h),
            camera=args.camera,
            progress=not args.quiet and sys.stderr.isatty(),
            difficulties=difficulties,
            channel=args.channel,
        )
    except AdbreakError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    breaks = sum(1 for s in info.segments if s.label == "ad")
    extra = f", {info.channel}, difficulties: {', '.join(sorted(info.difficulties)) or 'none'}"
    print(
        f"{info.video} ({info.duration_s:.2f} s, {info.frames} frames, {breaks} ad breaks{extra}) + {info.truth.name} "
        f"+ {info.meta.name} in {time.monotonic() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
