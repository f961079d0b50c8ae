"""A 2-D dataset not in the catalog, through the user-data path, against a Gaussian.

Generates ``--dataset`` (``rings``: three concentric noisy circles; ``checkerboard``: the
usual 4x4 board's 8 dark squares; ``pinwheel``: five curved arms), ``--n`` training rows
and ``--n`` test rows (different seeds), as CSV files. Then:

    zoo train realnvp --data train.csv -o DIR --steps STEPS [-c ...]
    zoo eval DIR --data test.csv --json

and fits a full-covariance Gaussian (maximum likelihood: the sample mean and covariance)
to the same training rows and scores the same test rows. Prints one JSON record: both
test NLLs in nats per example with standard errors, and the difference.

    python -m benchmarks.bench_data_nll --dataset rings --steps 3000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make(name: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if name == "rings":
        radius = rng.choice([1.0, 2.0, 3.0], n)
        angle = rng.uniform(0, 2 * np.pi, n)
        return np.stack([radius * np.cos(angle), radius * np.sin(angle)], 1) \
            + 0.1 * rng.standard_normal((n, 2))
    if name == "checkerboard":
        x1 = rng.uniform(-2, 2, n)
        x2 = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2 - 2 + (np.floor(x1) % 2)
        return np.stack([x1, x2], 1)
    if name == "pinwheel":
        arms, rate = 5, 0.25
        labels = rng.integers(0, arms, n)
        features = rng.standard_normal((n, 2)) * np.array([0.3, 0.05]) + np.array([1.0, 0.0])
        angles = 2 * np.pi * labels / arms + rate * np.exp(features[:, 0])
        rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1)
        return 2 * np.einsum("ti,tij->tj", features, rot.reshape(-1, 2, 2))
    raise SystemExit(f"unknown dataset {name}")


def gaussian_nll(train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    mean = train.mean(0)
    cov = np.cov(train, rowvar=False, bias=True)
    d = test - mean
    inv = np.linalg.inv(cov)
    _, logdet = np.linalg.slogdet(cov)
    nll = 0.5 * (np.einsum("ti,ij,tj->t", d, inv, d) + logdet + train.shape[1] * math.log(2 * math.pi))
    return float(nll.mean()), float(nll.std(ddof=1) / math.sqrt(len(nll)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="rings", choices=["rings", "checkerboard", "pinwheel"])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--config", "-c", action="append", default=[],
                        help="KEY=VALUE for zoo train (default: couplings=8, hidden=64)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="zoo-bench-nll-"))
    train, test = make(args.dataset, args.n, 0), make(args.dataset, args.n, 1)
    np.savetxt(work / "train.csv", train, delimiter=",", header="x,y", comments="")
    np.savetxt(work / "test.csv", test, delimiter=",", header="x,y", comments="")
    env = {**os.environ, "ZOO_HOME": str(work / "home"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                          os.environ.get("PYTHONPATH", "")])}
    config = args.config or ["couplings=8", "hidden=64"]
    train_cmd = ["zoo", "train", "realnvp", "--data", str(work / "train.csv"), "-o",
                 str(work / "flow"), "-q", "--steps", str(args.steps),
                 *[x for c in config for x in ("-c", c)]]
    eval_cmd = ["zoo", "eval", str(work / "flow"), "--data", str(work / "test.csv"), "--json"]
    for cmd in (train_cmd, eval_cmd):
        done = subprocess.run([sys.executable, "-m", *cmd[:1], *cmd[1:]], env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}")
    flow = json.loads(done.stdout)
    g_nll, g_se = gaussian_nll(train, test)
    print(json.dumps({
        "benchmark": "data-nll", "dataset": args.dataset, "n_train": args.n, "n_test": args.n,
        "steps": args.steps, "config": config,
        "realnvp_test_nll": round(flow["nll"], 4), "realnvp_stderr": round(flow["stderr"], 4),
        "gaussian_test_nll": round(g_nll, 4), "gaussian_stderr": round(g_se, 4),
        "improvement_nats": round(g_nll - flow["nll"], 4),
        "commands": [" ".join(train_cmd), " ".join(eval_cmd)]}))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
