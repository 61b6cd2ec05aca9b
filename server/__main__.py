"""``python -m server server ...`` / ``python -m server db upgrade``: the server's commands without the rest of the
``adbreak`` CLI (same options, same one-line errors)."""

from __future__ import annotations

import argparse
import logging
import sys

from adbreak.errors import AdbreakError
from server.cli import add_parsers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server", description="The adbreak server's commands.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="(accepted for symmetry with adbreak)")
    add_parsers(sub, common)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except AdbreakError as exc:
        print(f"adbreak {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
