"""``python -m edge ARGS``: the live edge agent on its own, exactly ``adbreak edge ARGS``."""

import sys

from adbreak.cli import main

sys.exit(main(["edge", *sys.argv[1:]]))
