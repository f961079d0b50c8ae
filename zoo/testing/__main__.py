"""``python -m zoo.testing FAMILY``: see ``zoo.testing.cli``."""

import sys

from zoo.testing.cli import main

sys.exit(main())
