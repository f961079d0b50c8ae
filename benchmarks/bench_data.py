"""The user-data path: bounded memory on a file larger than RAM allows, and its speed.

Two measurements, one JSON record each:

- ``memory``: MADE trains ``--steps`` steps through ``zoo train made --data FILE.npy`` on a
  ``--gigabytes`` GB uint8 ``.npy`` of 28x28 images (written under ``--tmp`` and deleted
  afterwards); ``peak_rss_mb`` is the training process's high-water mark (torch included).
  Target: under 1536 MB for 3 GB and 20 steps.
- ``speed``: ``realnvp-moons``'s recipe for ``--speed-steps`` steps on the built-in moons
  data (in memory) and on the same 20000 points read from a CSV and from a ``.npy``;
  ``ratio_csv``/``ratio_npy`` are steps/s against the in-memory run (median of
  ``--repeats`` interleaved runs each; target >= 0.9).

    python -m benchmarks.bench_data                       # both, 3 GB
    python -m benchmarks.bench_data --only speed --repeats 5

Timings on a shared machine are noisy; the repeats are interleaved so that load affects
every path alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A MADE small enough that its own activations (logits: batch x 784 x 256 floats) stay far
# below the target, so the measurement is about the data path.
MADE_CONFIG = ["--batch-size", "64", "-c", "hidden=[256]", "-c", "inputs=embedding", "-c", "embedding_dim=8",
               "-c", "output_rank=16", "-c", "recipe.val_fraction=0"]


# Runs `zoo ARGS...` and prints the process's VmHWM (peak resident set, KiB) as the last line.
PEAK_WRAPPER = """
import sys
from zoo.cli.commands import cli
try:
    cli.main(sys.argv[1:], prog_name="zoo")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print("VmHWM_kB", hwm, file=sys.stderr)
sys.exit(code)
"""


def write_images(path: Path, gigabytes: float, seed: int = 0) -> int:
    """A uint8 ``.npy`` of ``[N, 28, 28]`` images, about ``gigabytes`` GB, written in blocks
    with plain writes (a memory map would leave this process's RSS at the file's size, and
    a child forked from it would inherit that as its ``ru_maxrss``)."""
    import numpy as np

    n = int(gigabytes * 1e9) // 784
    block = np.random.default_rng(seed).integers(0, 256, (1 << 16, 28, 28), dtype=np.uint8)
    header = {"descr": "|u1", "fortran_order": False, "shape": (n, 28, 28)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, n, len(block)):
            f.write(block[: min(len(block), n - start)].tobytes())
    return n


def memory(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-data-", dir=args.tmp))
    data = tmp / "images.npy"
    try:
        tic = time.perf_counter()
        n = write_images(data, args.gigabytes)
        written = time.perf_counter() - tic
        env = {**os.environ, "ZOO_HOME": str(tmp / "home"),
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                              os.environ.get("PYTHONPATH", "")])}
        zoo_args = ["train", "made", "--data", str(data), "-o", str(tmp / "made"), "-q",
                    "--steps", str(args.steps), *MADE_CONFIG]
        command = [sys.executable, "-c", PEAK_WRAPPER, *zoo_args]
        tic = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - tic
        if done.returncode:
            raise SystemExit(f"training failed: {done.stderr.strip()[-2000:]}")
        # The training process's own high-water mark (VmHWM, reset at exec), in KiB.
        peak = int(done.stderr.strip().splitlines()[-1].split()[-1]) / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {"benchmark": "data-memory", "file_gb": round(data.stat().st_size / 1e9, 3),
                "examples": n, "steps": args.steps, "peak_rss_mb": round(peak, 1),
                "ru_maxrss_children_mb": round(children, 1),
                "target_mb": 1536, "ok": peak < 1536, "train_seconds": round(seconds, 1),
                "write_seconds": round(written, 1), "command": "zoo " + " ".join(zoo_args),
                "inferred": done.stderr.strip().splitlines()[0]}
    finally:
        for path in sorted(tmp.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() else path.rmdir()
        tmp.rmdir()


def speed(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    import zoo
    from zoo.api import get_entry
    from zoo.api.owndata import fit

    torch.set_num_threads(args.threads)
    moons = zoo.get_dataset("moons").load("train").numpy()
    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-speed-", dir=args.tmp))
    csv, npy = tmp / "moons.csv", tmp / "moons.npy"
    np.savetxt(csv, moons, delimiter=",", header="x,y", comments="")
    np.save(npy, moons)
    entry = get_entry("realnvp-moons")
    family, dataset = zoo.get_family(entry.family), zoo.get_dataset(entry.dataset)

    def in_memory() -> float:
        torch.manual_seed(entry.recipe.seed)
        model = family.build(entry.config)
        return family.train(model, dataset, entry.recipe, steps=args.speed_steps,
                            progress=False).steps_per_second

    def from_file(path: Path) -> float:
        model = fit("realnvp-moons", path, steps=args.speed_steps, progress=False)
        return model.fit_result.steps_per_second

    runs: dict[str, list[float]] = {"memory": [], "csv": [], "npy": []}
    try:
        for _ in range(args.repeats):
            runs["memory"].append(in_memory())
            runs["csv"].append(from_file(csv))
            runs["npy"].append(from_file(npy))
    finally:
        csv.unlink()
        npy.unlink()
        tmp.rmdir()
    med = {k: statistics.median(v) for k, v in runs.items()}
    return {"benchmark": "data-speed", "entry": "realnvp-moons", "steps": args.speed_steps,
            "threads": args.threads, "steps_per_s": {k: round(v, 1) for k, v in med.items()},
            "ratio_csv": round(med["csv"] / med["memory"], 3),
            "ratio_npy": round(med["npy"] / med["memory"], 3), "target_ratio": 0.9,
            "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["memory", "speed"])
    parser.add_argument("--gigabytes", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--speed-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tmp", default="/tmp")
    args = parser.parse_args(argv)
    if args.only in (None, "memory"):
        print(json.dumps(memory(args)), flush=True)
    if args.only in (None, "speed"):
        print(json.dumps(speed(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
