"""Affine against spline couplings on moons at two scales: why affine is realnvp's default.

A rational-quadratic spline coupling is the identity outside ``[-spline_bound,
spline_bound]``; zoo fits the user's data as it comes. Both flows train with the catalog's
moons recipe (1300 steps of 512, lr 3e-3, seed 0) on the training split multiplied by
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
from zoo.recipe import Recipe
from zoo.training import fit

CONFIGS = {
    "affine": {"shape": [2], "couplings": 8, "hidden": 64},
    "spline": {"shape": [2], "couplings": 4, "hidden": 64, "coupling": "spline", "bins": 8},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_coupling_scale")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 20.0])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    moons = api.get_dataset("moons")
    train, test = moons.load("train"), moons.load("test")
    recipe = Recipe(steps=1300, batch_size=512, lr=3e-3, seed=0, val_fraction=0.1,
                    eval_every=260)
    nll: dict[str, dict[str, float]] = {}
    for scale in args.scales:
        for name, config in CONFIGS.items():
            torch.manual_seed(0)
            model = api.get_family("realnvp").build(config)
            fit(model, moons, recipe, train_data=train * scale, progress=False, compile=False)
            with torch.no_grad():
                value = -model.log_prob(test * scale).mean().item() - 2 * math.log(scale)
            nll.setdefault(f"scale {scale:g}", {})[name] = round(value, 4)
    print(json.dumps({"benchmark": "coupling_scale", "test_nll_nats": nll,
                      "load_average": load_average()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
