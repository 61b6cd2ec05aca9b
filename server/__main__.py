"""``python -m server server ...`` / ``python -m server db upgrade``: exactly ``adbreak server ...`` /
``adbreak db upgrade`` (the same options, the same one-line errors)."""

import sys

from adbreak.cli import main

sys.exit(main(sys.argv[1:]))
