"""Time to the first step, and private memory, on big user data (issue 29).

Writes uint8 ``.npy`` files of 28x28 images (values 0 and 1: ``levels=2``) of each
``--gigabytes`` size under ``--tmp`` (deleted afterwards), and for each runs::

    zoo train made --data FILE.npy -c hidden=[64] -c levels=2 --steps 20 -o OUT

in a subprocess, sampling ``/proc/PID/status`` every 20 ms. One JSON record per file:

- ``first_step_s``: seconds from the start of the process to the end of its first
  optimisation step (the child wraps ``zoo.training.loop._step`` and prints a timestamp:
  no hook in zoo itself, so the same script measures any version of the code);
- ``wall_s``: the whole command (20 steps, the validation pass, the metrics, the artifact);
- ``peak_anon_mb`` / ``peak_file_mb``: the highest RssAnon / RssFile sampled.

The target: across the sizes, ``first_step_s`` within 10% and ``peak_anon_mb`` within
100 MB of each other, and ``peak_anon_mb`` under 1024.

    python -m benchmarks.bench_first_step                       # 0.3, 3 and 10 GB
    python -m benchmarks.bench_first_step --gigabytes 0.3 --repeats 2
    python -m benchmarks.bench_first_step --code /path/to/other/checkout   # "before"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COMMAND = ["train", "made", "-c", "hidden=[64]", "-c", "levels=2", "--steps", "20", "-q"]
ROW = 28 * 28

# Runs `zoo ARGS...`, printing "first-step T" (time.time()) after the first step's return.
CHILD = """
import sys, time
import zoo.training.loop as loop
print(f"zoo-from {loop.__file__}", file=sys.stderr, flush=True)
inner, seen = loop._step, []
def timed(*args, **kwargs):
    value = inner(*args, **kwargs)
    if not seen:
        seen.append(1)
        print(f"first-step {time.time()!r}", file=sys.stderr, flush=True)
    return value
loop._step = timed
from zoo.cli.commands import cli
cli.main(sys.argv[1:], prog_name="zoo")
"""


def write_images(path: Path, gigabytes: float) -> int:
    """A uint8 ``[N, 28, 28]`` ``.npy`` of 0/1 values, ``gigabytes`` * 1e9 bytes of rows."""
    n = int(gigabytes * 1e9) // ROW
    block = np.random.default_rng(0).integers(0, 2, size=(65_536, 28, 28), dtype=np.uint8)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 28, 28))
    for start in range(0, n, len(block)):
        stop = min(n, start + len(block))
        array[start:stop] = block[: stop - start]
        array.flush()
    del array
    os.sync()  # the next command's first step should not wait on this file's write-back
    time.sleep(2)
    return n


def status_mb(pid: int) -> dict[str, float]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def measure(data: Path, out: Path, code: Path, command: list[str] | None = None
            ) -> dict[str, object]:
    """Runs ``zoo COMMAND --data DATA -o OUT`` with ``code``'s zoo, sampling its memory."""
    env = dict(os.environ, PYTHONPATH=f"{code}{os.pathsep}{code / 'plugins'}",
               OMP_NUM_THREADS="1", ZOO_HOME=str(out.parent / "zoo-home"))
    shutil.rmtree(out, ignore_errors=True)
    start = time.time()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *(command or COMMAND), "--data", str(data),
                             "-o", str(out)], env=env, cwd=code, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peaks = {"RssAnon": 0.0, "RssFile": 0.0}

    def sample() -> None:
        while proc.poll() is None:
            for key, value in status_mb(proc.pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.time() - start
    sampler.join()
    first = [float(line.split()[1]) for line in stderr.splitlines()
             if line.startswith("first-step ")]
    loaded = [line.split(maxsplit=1)[1] for line in stderr.splitlines()
              if line.startswith("zoo-from ")]
    return {"rc": proc.returncode, "first_step_s": round(first[0] - start, 2) if first else None,
            "wall_s": round(wall, 2), "peak_anon_mb": round(peaks["RssAnon"]),
            "peak_file_mb": round(peaks["RssFile"]), "zoo": loaded[0] if loaded else None,
            "notes": [line for line in stderr.splitlines() if line.startswith("zoo:")][:3],
            **({"stderr": stderr[-2000:]} if proc.returncode else {})}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_first_step")
    parser.add_argument("--gigabytes", type=float, nargs="+", default=[0.3, 3.0, 10.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="where the data files go (default: $TMPDIR)")
    parser.add_argument("--code", type=Path, default=ROOT,
                        help="the checkout whose zoo runs (default: this one)")
    args = parser.parse_args(argv)
    summary = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = str(Path(tmp).resolve())  # the command runs in --code's folder
        for gigabytes in args.gigabytes:
            data = Path(tmp) / f"images-{gigabytes:g}GB.npy"
            rows = write_images(data, gigabytes)
            records = []
            try:
                for repeat in range(args.repeats):
                    record = measure(data, Path(tmp) / "out", args.code.resolve())
                    records.append(record)
                    print(json.dumps({"gigabytes": gigabytes, "rows": rows, "repeat": repeat,
                                      "code": str(args.code), **record}), flush=True)
            finally:
                data.unlink()
            summary[f"{gigabytes:g}GB"] = {
                "first_step_s": median([r["first_step_s"] for r in records]),
                "wall_s": median([r["wall_s"] for r in records]),
                "peak_anon_mb": max(r["peak_anon_mb"] for r in records),
                "peak_file_mb": max(r["peak_file_mb"] for r in records)}
    print(json.dumps({"summary": summary, "code": str(args.code), "repeats": args.repeats}),
          flush=True)
    return 0


def median(values: list) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


if __name__ == "__main__":
    sys.exit(main())
