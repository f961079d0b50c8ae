"""realnvp-moons against zuko's flows on the same recipe: test NLL over seeds, side by side.

Every flow trains through ``zoo.training.loop.maximise_likelihood`` with the catalog entry's recipe (the same
batches, schedule, optimizer and validation split for a given seed; the model at its best
validation step), and is scored on moons' test split in nats. zoo's flow is the catalog's
config; zuko's are wrapped as a ``ZooModel`` whose ``log_prob`` is ``flow().log_prob``.

    python -m benchmarks.bench_moons_quality [--seeds 0 1 2] [--peers nsf3 realnvp8]

The data's entropy is 1.009 nats (the floor). ``--recipe old`` uses the recipe the issue's
peer figures came from (3000 steps of 256 at lr 1e-3).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch

from benchmarks import load_average
from zoo import api
from zoo.catalog.recipe import Recipe
from zoo.plugin.model import ZooModel
from zoo.training.loop import maximise_likelihood

ENTRY = "realnvp-moons"


class PeerFlow(ZooModel):
    """A zuko flow as a ZooModel, so that the same trainer fits it."""

    family = "zuko"

    def __init__(self, flow: torch.nn.Module):
        super().__init__()
        self.flow = flow

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x)

    def sample(self, n: int, **kwargs: Any) -> torch.Tensor:
        return self.flow().sample((n,))


def peers() -> dict[str, Callable[[], torch.nn.Module]]:
    import zuko

    return {
        "nsf3": lambda: zuko.flows.NSF(2, transforms=3, hidden_features=(64, 64)),
        "realnvp8": lambda: zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_moons_quality")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peers", nargs="*", default=["nsf3", "realnvp8"])
    parser.add_argument("--recipe", choices=["catalog", "old"], default="catalog")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    entry = api.get_entry(ENTRY)
    recipe: Recipe = entry.recipe
    if args.recipe == "old":
        recipe = dataclasses.replace(recipe, steps=3000, batch_size=256, lr=1e-3,
                                     eval_every=500)
    moons = api.get_dataset(entry.dataset)
    test = moons.load("test")
    makers: dict[str, Callable[[], ZooModel]] = {
        "zoo": lambda: api.get_family(entry.family).build(entry.config)}
    found = peers()
    makers.update({name: (lambda make=found[name]: PeerFlow(make())) for name in args.peers})
    nll: dict[str, list[float]] = {name: [] for name in makers}
    params: dict[str, int] = {}
    for seed in args.seeds:
        for name, make in makers.items():
            torch.manual_seed(seed)
            model = make()
            params[name] = sum(p.numel() for p in model.parameters())
            maximise_likelihood(model, moons, dataclasses.replace(recipe, seed=seed), progress=False,
                compile=False)
            with torch.no_grad():
                nll[name].append(round(-model.log_prob(test).mean().item(), 4))
    print(json.dumps({
        "benchmark": "moons_quality", "recipe": dataclasses.asdict(recipe) | {"seed": args.seeds},
        "test_nll_nats": nll, "mean": {k: round(statistics.mean(v), 4) for k, v in nll.items()},
        "parameters": params, "load_average": load_average()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
