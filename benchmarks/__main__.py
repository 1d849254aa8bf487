"""``python -m benchmarks``: see :mod:`benchmarks.runner`."""

import sys

from benchmarks import main

sys.exit(main())
