"""How much a busy machine slows a build: ``zoo pull ENTRY`` wall time with CPU-bound
processes running beside it, divided by the time without them (target: at most 1.6).

Each build runs in a fresh process with a fresh ``ZOO_HOME`` (so the recipe is trained),
with ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``ZOO_THREADS`` removed from its
environment so that zoo's own default applies, or ``--threads N`` passed on. The busy run
starts ``--hogs`` pure-Python busy loops (one core each) first and stops them afterwards.
The quiet and busy runs alternate ``--repeats`` times; the record holds every time, the
medians and their ratio, and the machine's load average before each run (other jobs on a
shared machine make both numbers slower and noisier).

    python -m benchmarks.bench_threads                      # zoo's default threads
    python -m benchmarks.bench_threads --threads 2          # compare: two threads
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.6
HOG = "while True:\n    pass\n"


def build_seconds(entry: str, threads: int | None) -> float:
    """Wall seconds of ``zoo pull ENTRY`` into an empty store (start-up included)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ZOO_THREADS")}
    extra = [] if threads is None else ["--threads", str(threads)]
    with tempfile.TemporaryDirectory() as home:
        env["ZOO_HOME"] = home
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "zoo", "pull", entry, "-q", *extra], env=env,
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def busy_build_seconds(entry: str, threads: int | None, hogs: int) -> float:
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(hogs)]
    try:
        time.sleep(1.0)  # the hogs are running before the build starts
        return build_seconds(entry, threads)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entry", default="realnvp-moons")
    parser.add_argument("--threads", type=int, help="pass --threads N (default: zoo's default)")
    parser.add_argument("--hogs", type=int, default=1, help="CPU-bound processes beside the busy run")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    quiet, busy, loads = [], [], []
    for _ in range(args.repeats):
        loads.append(round(os.getloadavg()[0], 2))
        quiet.append(round(build_seconds(args.entry, args.threads), 2))
        loads.append(round(os.getloadavg()[0], 2))
        busy.append(round(busy_build_seconds(args.entry, args.threads, args.hogs), 2))
    ratio = statistics.median(busy) / statistics.median(quiet)
    record = {
        "benchmark": "busy_over_quiet_pull",
        "entry": args.entry,
        "threads": "zoo default" if args.threads is None else args.threads,
        "hogs": args.hogs,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "quiet_s": quiet,
        "busy_s": busy,
        "ratio": round(ratio, 3),
        "target": TARGET,
        "meets_target": ratio <= TARGET,
        "load_average_before_runs": loads,
    }
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
