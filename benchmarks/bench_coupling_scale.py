"""Affine against spline couplings on moons at two scales: why affine is realnvp's default.

A rational-quadratic spline coupling is the identity outside ``[-spline_bound,
spline_bound]``; zoo fits the user's data as it comes. The spline flow is realnvp-moons'
config, the affine one the benchmark protocol's (8 couplings); both train with realnvp-moons'
recipe (read from the catalog, seed 0) on the training split multiplied by
``scale`` and are scored on the test split likewise, the NLL corrected by ``D log scale`` so
that every row is in the units of the unscaled data.

    python -m benchmarks.bench_coupling_scale [--scales 1 20]
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import torch

from benchmarks import load_average
from zoo import api
from zoo.training.loop import maximise_likelihood

ENTRY = "realnvp-moons"
AFFINE = {"shape": [2], "couplings": 8, "hidden": 64}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_coupling_scale")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 20.0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    entry = api.get_entry(ENTRY)
    moons = api.get_dataset(entry.dataset)
    train, test = moons.load("train"), moons.load("test")
    configs = {"affine": AFFINE, "spline": entry.config}
    nll: dict[str, dict[str, float]] = {}
    for scale in args.scales:
        for name, config in configs.items():
            torch.manual_seed(0)
            model = api.get_family("realnvp").build(config)
            maximise_likelihood(model, moons, entry.recipe, train_data=train * scale, progress=False,
                compile=False)
            with torch.no_grad():
                value = -model.log_prob(test * scale).mean().item() - 2 * math.log(scale)
            nll.setdefault(f"scale {scale:g}", {})[name] = round(value, 4)
    print(json.dumps({"benchmark": "coupling_scale", "test_nll_nats": nll,
                      "load_average": load_average()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
