"""``python -m adbreak``: the same CLI as the ``adbreak`` script."""

import sys

from adbreak.cli import main

sys.exit(main())
