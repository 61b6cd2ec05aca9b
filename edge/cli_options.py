"""Command-line option groups shared by ``adbreak`` commands and ``adbreak edge``: screen geometry and the temporal
decision. Only argparse here; the values are validated where they are used (``Geometry.parse``, ``DecisionConfig``)."""

from __future__ import annotations

import argparse


def positive(value: str) -> float:
    """argparse type: a number > 0."""
    try:
        v = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {value}") from exc
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value}")
    return v


def add_geometry_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("screen geometry (default: the model bundle's)")
    g.add_argument("--crop", metavar="X,Y,W,H", help="use only this rectangle of the frame")
    g.add_argument("--corners", metavar="X1,Y1,...,X4,Y4", help="four screen corners TL,TR,BR,BL to warp to frontal")


def add_decider_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decider", choices=["fusion", "smoothing"], default=None,
                   help="fusion (default): every cue and, with a model, its p(ad) decided together with duration "
                   "priors (docs/decision.md); smoothing: the p(ad) smoothing state machine alone (needs a model; "
                   "the temporal decision options below apply to it)")


def add_fusion_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fusion", metavar="JSON", default=None,
                   help='fusion settings over the model bundle\'s (or the defaults), as a JSON object of '
                   'edge.fusion.FusionConfig fields, e.g. \'{"end_hold_s": 16}\' (docs/decision.md)')


def fusion_from(args: argparse.Namespace, base=None):
    """``base`` (a ``FusionConfig``, the bundle's, or None for the defaults) with ``--fusion`` applied; None when the
    option was not given and there is no base. Bad JSON or an unknown or invalid setting: a one-line error."""
    import json

    from adbreak.errors import AdbreakError
    from edge.fusion import FusionConfig

    text = getattr(args, "fusion", None)
    if text is None:
        return base
    if getattr(args, "decider", None) == "smoothing":
        raise AdbreakError("--fusion applies to the fusion decider, not --decider smoothing")
    try:
        changes = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AdbreakError(f"--fusion is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(changes, dict):
        raise AdbreakError("--fusion must be a JSON object of fusion settings, e.g. '{\"end_hold_s\": 16}'")
    try:
        return FusionConfig.from_dict({**(base or FusionConfig()).to_dict(), **changes})
    except (ValueError, TypeError) as exc:
        raise AdbreakError(f"--fusion: {exc}") from None


def decider_from(args: argparse.Namespace) -> str:
    """The decider asked for; smoothing options without ``--decider smoothing`` are a mistake worth saying."""
    decider = getattr(args, "decider", None) or "fusion"
    if decider == "fusion" and decision_changes(args):
        from adbreak.errors import AdbreakError

        raise AdbreakError("the temporal decision options (--window, --enter, ...) apply to --decider smoothing")
    return decider


def add_decision_options(p: argparse.ArgumentParser, defaults: str = "the model bundle's") -> None:
    g = p.add_argument_group(f"temporal decision of the smoothing decider (defaults: {defaults})")
    g.add_argument("--smoothing", choices=["window", "ema"], help="rolling mean over a window, or exponential")
    g.add_argument("--window", type=float, metavar="S", help="rolling window in seconds (0 = one frame: no smoothing)")
    g.add_argument("--ema-tau", type=float, metavar="S", help="time constant of the exponential smoothing")
    g.add_argument("--enter", type=float, metavar="P", help="smoothed p(ad) at or above which an ad starts")
    g.add_argument("--exit", type=float, metavar="P", help="smoothed p(ad) at or below which the ad ends")
    g.add_argument("--min-ad", type=float, metavar="S", help="minimum length of an ad segment, seconds")
    g.add_argument("--min-program", type=float, metavar="S", help="minimum length of a program segment, seconds")


def decision_changes(args: argparse.Namespace) -> dict[str, float | str]:
    """The decision settings given on the command line, as ``DecisionConfig`` field names."""
    changes = {
        "smoothing": args.smoothing,
        "window_s": args.window,
        "ema_tau_s": args.ema_tau,
        "enter_threshold": args.enter,
        "exit_threshold": args.exit,
        "min_ad_s": args.min_ad,
        "min_program_s": args.min_program,
    }
    return {k: v for k, v in changes.items() if v is not None}
