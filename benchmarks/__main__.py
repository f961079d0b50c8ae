"""``python -m benchmarks``: the per-family benchmark (see ``benchmarks/run.py``)."""

import sys

from benchmarks.run import main

sys.exit(main())
