"""``python -m jaxtut``: the same as the ``jaxtut`` console script."""

import sys

from jaxtut.cli import main

sys.exit(main())
