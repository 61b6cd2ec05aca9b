"""The ``adbreak`` command line. Every command: --help, a one-line error and a non-zero exit on bad input."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from adbreak import __version__
from adbreak.errors import AdbreakError
from edge.cli_options import (
    add_decider_option,
    add_decision_options,
    add_fusion_option,
    add_geometry_options,
    decider_from,
    decision_changes,
    fusion_from,
)
from edge.cli_options import positive as _positive

log = logging.getLogger("adbreak")


# ---------------------------------------------------------------- shared option groups
def _decision(args: argparse.Namespace, base: Any = None) -> Any:
    from edge.decision import DecisionConfig

    data = (base or DecisionConfig()).to_dict()
    data.update(decision_changes(args))
    try:
        return DecisionConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise AdbreakError(f"bad decision settings: {exc}") from exc


def _geometry(args: argparse.Namespace) -> Any:
    from edge.geometry import Geometry

    if not (args.crop or args.corners):
        return None
    return Geometry.parse(args.crop, args.corners)


def _write_json(path: str, data: dict[str, Any]) -> None:
    from adbreak.atomic import write_text

    write_text(path, json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------- commands
def _state_dir(value: str | None) -> Path | None:
    """``--state DIR``: created when missing; a path that is not a folder is a one-line error."""
    if not value:
        return None
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise AdbreakError(f"--state {value}: not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AdbreakError(f"--state {value}: cannot create the folder ({exc.strerror})") from exc
    return path


def cmd_evaluate(args: argparse.Namespace) -> int:
    from adbreak.evaluate import evaluate_scores, evaluate_video
    from adbreak.metrics import format_metrics

    decider = decider_from(args)
    if args.scores:
        if args.video or args.model:
            raise AdbreakError("give either VIDEO [--model BUNDLE] or --scores SCORES.csv, not both")
        if args.state:
            raise AdbreakError("--state needs VIDEO: a device's logo and ad memory come from its pictures")
        run = evaluate_scores(args.scores, args.truth, decision=_decision(args), decider=decider,  # type: ignore[arg-type]
                              fusion=fusion_from(args))
    else:
        if not args.video:
            raise AdbreakError("evaluate needs VIDEO (with or without --model BUNDLE) or --scores SCORES.csv")
        from edge.bundle import ModelBundle

        bundle = ModelBundle.load(args.model) if args.model else None
        run = evaluate_video(
            args.video,
            args.truth,
            args.model,
            decision=_decision(args, bundle.decision if bundle else None),
            fusion=fusion_from(args, bundle.fusion if bundle else None),
            decider=decider,  # type: ignore[arg-type]
            geometry=_geometry(args),
            fps=args.fps,
            record_scores=args.record_scores,
            progress=not args.quiet,
            state_dir=_state_dir(args.state),
        )
    if args.json:
        _write_json(args.json, run.metrics)
    if args.predicted:
        from adbreak.segments import write_segments

        write_segments(args.predicted, run.predicted)
    print(format_metrics(run.metrics))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from adbreak.training.trainer import TrainConfig, train
    from edge.geometry import Geometry

    cfg = TrainConfig(
        name=args.name or Path(args.out).name,
        val_fraction=args.val_fraction,
        holdout_fraction=args.holdout_fraction,
        holdout_recordings=frozenset(args.holdout_recording or ()),
        c=args.c,
        geometry=_geometry(args) or Geometry(),
        fps=args.fps,
        decision=_decision(args),
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
        force=args.force,
        progress=not args.quiet,
    )
    result = train(args.dataset, args.out, cfg)
    r = result.report
    if args.json:
        _write_json(args.json, r)
    print(f"model bundle: {result.bundle}  ({r['version']})")
    for split in ("train", "validation", "holdout"):
        m = r[split]
        if m.get("frames"):
            print(f"  {split:<10} accuracy {m['accuracy']:.4f}  on {m['frames']} frames")
    print(f"  time: features {r['timing_s']['features']:.1f} s (cache hits {r['cache']['hits']}, "
          f"misses {r['cache']['misses']}), fit {r['timing_s']['fit']:.1f} s, total {r['timing_s']['total']:.1f} s")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from adbreak.frames import extract

    counts = extract(args.video, args.segments, args.out, fps=args.fps, margin_s=args.margin, progress=not args.quiet)
    print(f"{sum(counts.values())} frames into {args.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from adbreak.frames import collect

    n = collect(args.source, args.label, args.out, fps=args.fps, duration_s=args.duration, max_frames=args.max_frames,
                progress=not args.quiet)
    print(f"{n} frames into {Path(args.out) / args.label}")
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from adbreak.annotate import annotate
    from edge.bundle import ModelBundle

    decider = decider_from(args)
    base = ModelBundle.load(args.model).decision if args.model else None
    n = annotate(args.video, args.model, args.out, decision=_decision(args, base), geometry=_geometry(args),
                 decider=decider, progress=not args.quiet)
    print(f"{n} frames written to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.offline:
        from adbreak.demo import run_demo

        return run_demo(Path(args.out), heldout_s=args.duration or 300.0, train_s=args.train_duration,
                        progress=not args.quiet)
    from adbreak.live_demo import DemoOptions, run_live_demo

    return run_live_demo(DemoOptions(out=Path(args.out), speed=args.speed, duration=args.duration, port=args.port,
                                     host=args.host, mqtt=args.mqtt, progress=not args.quiet,
                                     prepare_only=args.prepare))


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adbreak", description="Knows when the TV is showing an ad.")
    parser.add_argument("--version", action="version", version=f"adbreak {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("demo", parents=[common], help="the whole system on embedded defaults (or --offline)",
                       description="Live (default): trains a model on a built broadcast (once), then starts an MQTT "
                       "broker (embedded unless --mqtt), the server on SQLite and an edge agent replaying the sample "
                       "broadcast in a loop; prints the dashboard URL. Ctrl-C or --duration stops it. "
                       "--offline: trains on one built broadcast, evaluates another as if live, and writes the "
                       "annotated video and the metrics.")
    p.add_argument("--speed", type=_positive, default=1.0, metavar="X", help="replay speed factor (1 = real time)")
    p.add_argument("--duration", type=_positive, metavar="S",
                   help="live: stop after S seconds (default: until Ctrl-C); offline: held-out length (300)")
    p.add_argument("--port", type=int, default=8080, metavar="P", help="dashboard / API port (8080)")
    p.add_argument("--host", default="127.0.0.1", help="address the server listens on (127.0.0.1; 0.0.0.0 for the LAN)")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="use this broker instead of the embedded one ($ADBREAK_MQTT)")
    p.add_argument("--offline", action="store_true", help="the offline train / evaluate / annotate walk-through")
    p.add_argument("--prepare", action="store_true",
                   help="live: only build the sample broadcast and train the model, then exit (docker-compose)")
    p.add_argument("--train-duration", type=_positive, default=600.0, metavar="S",
                   help="offline: training broadcast length (600)")
    p.add_argument("--out", default="out/demo", help="output folder (out/demo)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("collect", parents=[common], help="save frames from a source into DIR/LABEL/",
                       description="Save frames from a camera, capture device, stream, file or image folder into "
                       "DIR/LABEL/ for training. Stops at the end of the source, --duration, --max-frames or Ctrl-C.")
    p.add_argument("source", help="picamera2, /dev/videoN, a video file, an RTSP/HTTP URL, or an image folder")
    p.add_argument("--label", required=True, help="class name, e.g. ad or program")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--fps", type=_positive, default=1.0, help="frames per second to save (1)")
    p.add_argument("--duration", type=_positive, metavar="S", help="stop after S seconds of stream time")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser("extract", parents=[common], help="cut a labelled recording into DIR/<label>/ frames",
                       description="Cut a recording into frames under DIR/<label>/ using a segment file "
                       "(start,end,label).")
    p.add_argument("video")
    p.add_argument("--segments", required=True, metavar="S.csv")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--fps", type=_positive, default=2.0, help="frames per second to extract (2)")
    p.add_argument("--margin", type=float, default=0.0, metavar="S",
                   help="skip frames within S seconds of a label change (0)")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("train", parents=[common], help="transfer learning: frame folders -> model bundle",
                       description="Train a classifier head on the pretrained backbone's features of DIR/<label>/ "
                       "images (at least two classes, one named 'ad'). Writes a model bundle with a report.")
    p.add_argument("dataset", metavar="DIR")
    p.add_argument("--out", required=True, metavar="BUNDLE")
    p.add_argument("--name", help="model name (default: the bundle folder's name)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--val-fraction", type=float, default=0.15, help="last-but-one time block per class (0.15)")
    p.add_argument("--holdout-fraction", type=float, default=0.15, help="last time block per class (0.15)")
    p.add_argument("--holdout-recording", action="append", metavar="NAME",
                   help="hold out a whole recording (repeatable); replaces the time holdout")
    p.add_argument("--c", type=_positive, default=0.1, help="inverse L2 regularisation of the head (0.1)")
    p.add_argument("--fps", type=_positive, default=5.0, help="analysis rate stored in the bundle (5)")
    p.add_argument("--cache-dir", help="bottleneck cache (default ~/.cache/adbreak or $ADBREAK_CACHE_DIR)")
    p.add_argument("--json", metavar="OUT", help="also write the training report as JSON")
    add_geometry_options(p)
    add_decision_options(p, "the model bundle's, or the built-in ones")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", parents=[common], help="run the live pipeline over a recording; print metrics",
                       description="Online: VIDEO runs the exact live pipeline over the recording, on the broadcast "
                       "cues alone (zero labels) or with a trained head (--model BUNDLE). Offline: --scores SCORES.csv "
                       "re-runs only the decision on recorded scores, fusing every cue column present.")
    p.add_argument("video", nargs="?")
    p.add_argument("--truth", required=True, metavar="S.csv")
    p.add_argument("--model", metavar="BUNDLE", help="a trained head to add its p(ad) to the cues (optional)")
    p.add_argument("--scores", metavar="SCORES.csv", help="decision stage only, on recorded per-frame scores")
    p.add_argument("--record-scores", metavar="SCORES.csv", help="write the per-frame scores of an online run")
    p.add_argument("--predicted", metavar="S.csv", help="write the predicted segments")
    p.add_argument("--json", metavar="OUT", help="write the metrics as JSON")
    p.add_argument("--fps", type=_positive, help="analysis rate (default: the bundle's, or 5)")
    p.add_argument("--state", metavar="DIR", help="a device's learned state (logo, ad memory, fusion histograms, "
                   "whether its channel airs promos) to start from and to keep: evaluate a recording as a device "
                   "that already watched the channel would (created when missing; default: a brand-new device)")
    add_geometry_options(p)
    add_decider_option(p)
    add_fusion_option(p)
    add_decision_options(p, "the model bundle's, or the built-in ones")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("annotate", parents=[common], help="draw the decision and probabilities on the video",
                       description="Write VIDEO with the decision and the raw and smoothed ad probability drawn on "
                       "every frame.")
    p.add_argument("video")
    p.add_argument("--model", metavar="BUNDLE", help="a trained head (optional: without it, the cues alone)")
    p.add_argument("--out", required=True, metavar="OUT.mp4")
    add_geometry_options(p)
    add_decider_option(p)
    add_decision_options(p, "the model bundle's, or the built-in ones")
    p.set_defaults(func=cmd_annotate)

    # `adbreak server`, `adbreak db`, `adbreak export`, `adbreak dataset`, `adbreak edge`, `adbreak comskip`
    for module in ("server.cli", "server.export_cli", "edge.cli", "adbreak.scan.cli", "adbreak.scan.comskip"):
        try:
            mod = __import__(module, fromlist=["add_parsers"])
        except ImportError as exc:  # the server extra is not installed (an edge-only Pi install)
            log.debug("%s unavailable: %s", module, exc)
            continue
        mod.add_parsers(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    service = args.command in ("server", "edge")  # long-running: say what they do
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if service
                        else "%(levelname)s %(name)s: %(message)s")
    if service and not args.verbose:  # our own progress at INFO; libraries (alembic, engineio) only warnings
        for name in ("adbreak", "edge", "server"):
            logging.getLogger(name).setLevel(logging.INFO)
    if hasattr(args, "quiet") and not sys.stderr.isatty():
        args.quiet = True  # progress bars are for people at a terminal, not for logs and pipes
    try:
        return int(args.func(args) or 0)
    except AdbreakError as exc:
        print(f"adbreak {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"adbreak {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
