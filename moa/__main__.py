"""``python -m moa``: the ``moa`` command (see :mod:`moa.cli`)."""

import sys

from .cli import main

sys.exit(main())
