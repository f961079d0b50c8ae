"""The defaults for a user's images against the catalog entries they must match (issue 27, item 5).

Each run is ``zoo train FAMILY --data FILE -o OUT`` with no ``-c`` options, in a subprocess
at one torch thread; its CPU time (user + system) is set beside the entry's recorded build
time, and its test NLL (``zoo.api.scoring.evaluate_data`` on the protocol's test split, as
the user would score it) beside the entry's:

- ``digits``: sklearn's digits (the ``digits`` protocol's split) as a uint8 ``.npy`` and as
  a folder of PNGs (greys scaled by 255 / 16 and truncated, as a user would write them), for
  made, pixelcnn and realnvp against made-digits, pixelcnn-digits and realnvp-digits.
  Target: NLL within 3% of the entry's, CPU time at most twice its build time.
- ``start``: 2,000 MNIST test images as a uint8 ``.npy``, three steps of each family's
  defaults: seconds to the first step and peak private memory (``RssAnon``), sampled as in
  ``bench_first_step``. Target: under 10 s and 1.5 GB.
- ``mnist``: the 60,000 MNIST training images as ``.npy`` (256 levels, and binarized by one
  Bernoulli draw with seed 1), for made (2 and 256 levels), pixelcnn (2) and realnvp (256),
  scored on the official test set (binarized: the protocol's draw). Target: NLL within 3%
  of the CPU-tier entry's, CPU time no more than its build time. About 40 minutes.

    python -m benchmarks.bench_image_defaults digits
    python -m benchmarks.bench_image_defaults start
    python -m benchmarks.bench_image_defaults mnist --only made:2

One JSON record per run. Needs MNIST under ``$ZOO_DATA`` for ``start`` and ``mnist``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import load_average
from benchmarks.bench_first_step import measure

ROOT = Path(__file__).resolve().parent.parent
DIGITS = {"made": "made-digits", "pixelcnn": "pixelcnn-digits", "realnvp": "realnvp-digits"}
MNIST = {"made:2": "made-binarized-mnist-cpu", "made:256": "made-mnist-cpu",
         "pixelcnn:2": "pixelcnn-binarized-mnist-cpu", "realnvp:256": "realnvp-mnist-cpu"}


def digits_files(folder: Path) -> dict[str, tuple[Path, Path]]:
    """The digits protocol's train and test splits as ``.npy`` and as PNG folders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.uint8)
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0)).numpy()
    splits = {"train": images[order[:1437]], "test": images[order[1437:]]}
    out: dict[str, list[Path]] = {"npy": [], "png": []}
    for split, rows in splits.items():
        np.save(folder / f"digits-{split}.npy", rows)
        out["npy"].append(folder / f"digits-{split}.npy")
        pngs = folder / f"digits-{split}"
        pngs.mkdir()
        for i, image in enumerate(rows):
            Image.fromarray((image.astype(np.float64) * 255 / 16).astype(np.uint8)).save(
                pngs / f"{i:05d}.png")
        out["png"].append(pngs)
    return {kind: (paths[0], paths[1]) for kind, paths in out.items()}


def mnist_files(folder: Path) -> dict[int, tuple[Path, Path]]:
    """MNIST's training and test images as uint8 ``.npy``: 256 levels, and binarized."""
    from zoo.data.builtin import load_binarized_mnist, load_mnist
    from zoo.paths import data_dir

    root = data_dir()
    files = {}
    for split in ("train", "test"):
        np.save(folder / f"mnist-{split}.npy", load_mnist(split, root)[:, 0].numpy().astype(np.uint8))
        probs = load_binarized_mnist(split, root)
        binary = (torch.bernoulli(probs, generator=torch.Generator().manual_seed(1))
                  if split == "train" else probs)  # the test split is the protocol's draw
        np.save(folder / f"bmnist-{split}.npy", binary[:, 0].numpy().astype(np.uint8))
    for levels, stem in ((256, "mnist"), (2, "bmnist")):
        files[levels] = (folder / f"{stem}-train.npy", folder / f"{stem}-test.npy")
    return files


def train_and_score(family: str, train: Path, test: Path, out: Path, entry: str) -> dict:
    """``zoo train FAMILY --data train`` at one thread, its CPU time, and its test NLL."""
    import zoo
    from zoo.api import get_entry
    from zoo.api.scoring import evaluate_data

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'plugins'}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "zoo", "train", family, "--data", str(train),
                           "-o", str(out), "-q"], env=env, capture_output=True, text=True)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        return {"family": family, "data": train.name, "rc": proc.returncode,
                "stderr": proc.stderr[-1500:]}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = evaluate_data(zoo.load(out), test)
    info = get_entry(entry)
    want, budget = info.metrics["test_nll"], info.build_time.cpu_s
    return {"family": family, "data": train.name, "entry": entry,
            "nll": round(result.nll, 3), "entry_nll": want,
            "nll_ratio": round(result.nll / want, 4), "cpu_s": round(cpu, 1),
            "wall_s": round(wall, 1), "entry_build_cpu_s": budget,
            "time_ratio": round(cpu / budget, 3),
            "defaults": [line for line in proc.stderr.splitlines() if "defaults for" in line],
            "load_average": load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_image_defaults")
    parser.add_argument("what", choices=["digits", "start", "mnist"])
    parser.add_argument("--only", nargs="*", help="families (digits, start) or family:levels")
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp).resolve()
        if args.what == "digits":
            files = digits_files(folder)
            for family, entry in DIGITS.items():
                for kind, (train, test) in files.items():
                    if not args.only or family in args.only:
                        print(json.dumps(train_and_score(family, train, test,
                                                         folder / f"{family}-{kind}", entry)),
                              flush=True)
        elif args.what == "mnist":
            files = mnist_files(folder)
            for key, entry in MNIST.items():
                if not args.only or key in args.only:
                    family, levels = key.split(":")
                    train, test = files[int(levels)]
                    print(json.dumps(train_and_score(family, train, test,
                                                     folder / key.replace(":", "-"), entry)),
                          flush=True)
        else:
            from zoo.data.builtin import load_mnist
            from zoo.paths import data_dir

            data = folder / "mnist-2000.npy"
            np.save(data, load_mnist("test", data_dir())[:2000, 0].numpy().astype(np.uint8))
            for family in args.only or list(DIGITS):
                record = measure(data, folder / f"start-{family}", ROOT,
                                 ["train", family, "--steps", "3", "-q"])
                print(json.dumps({"family": family, **record,
                                  "load_average": load_average()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
