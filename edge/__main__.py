"""``python -m edge``: the live edge agent, the same as ``adbreak edge``."""

import sys

from edge.cli import main

sys.exit(main())
