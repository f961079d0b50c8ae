"""Start-up time of the commands people type most: ``zoo list`` and ``zoo --help``.

Target: under 0.3 s wall on a 2-core machine (importing torch alone takes ~1.6 s, so neither
command may import it). Prints one JSON record; ``run()`` returns it.

    python -m benchmarks.bench_cli
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time


def time_command(argv: list[str], repeats: int = 7) -> dict[str, float]:
    """Best and median wall time of ``argv`` over ``repeats`` runs (after one warm-up)."""
    subprocess.run(argv, check=True, capture_output=True)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return {"best_s": min(times), "median_s": statistics.median(times)}


def run(repeats: int = 7) -> dict[str, object]:
    exe = shutil.which("zoo")
    base = [exe] if exe else [sys.executable, "-m", "zoo"]
    record: dict[str, object] = {"benchmark": "cli_startup", "target_s": 0.3}
    record["python_startup"] = time_command([sys.executable, "-c", "pass"], repeats)
    for name, args in (("zoo_list", ["list"]), ("zoo_help", ["--help"])):
        record[name] = time_command(base + args, repeats)
    record["import_torch"] = time_command([sys.executable, "-c", "import torch"], 3)
    return record


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
