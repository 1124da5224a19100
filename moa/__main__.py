"""``python -m moa``: the ``moa`` command (see :mod:`moa.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":  # spawned worker processes (moa sweep --workers N) import this module again
    sys.exit(main())
