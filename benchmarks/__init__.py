"""zoo's benchmarks: ``python -m benchmarks`` prints one JSON record per installed family.

Each module also runs alone: ``python -m benchmarks.bench_train``,
``python -m benchmarks.bench_realnvp``, ``python -m benchmarks.bench_cli``.
"""

from __future__ import annotations

import os


def load_average() -> float | None:
    """The machine's 1-minute load average (``None`` where the platform has none): benchmark
    records carry it, since other jobs slow both sides of a comparison and add noise."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
