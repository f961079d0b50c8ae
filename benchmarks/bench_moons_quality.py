"""realnvp-moons against zuko's flows on the same recipe, both directions, side by side.

Every flow trains through ``zoo.training.loop.maximise_likelihood`` with the catalog entry's
recipe (the same batches, schedule, optimizer and validation split for a given seed; the
model at its best validation step), one after the other for each seed (alternating rounds),
on one torch thread. zoo's flow is the catalog's config; zuko's are wrapped as a
``ZooModel`` whose ``log_prob`` is ``flow().log_prob``. Each is scored both ways
(``zoo.infer.reverse.reverse_check``), in nats:

- forward: the test NLL on moons' test split;
- reverse: the mean of the moons' exact ``-log p_true`` (``zoo.data.moons``) over 20,000 of
  the model's samples (generator seeded with the seed): it measures how much of the
  model's mass falls off the data. ``off_data``: the share of samples more than 5 nats
  below the floor.

    python -m benchmarks.bench_moons_quality [--seeds 0 1 2] [--peers nsf3 realnvp8]
        [--config '{"spline_bound": 4}'] [--recipe-set '{"batch_size": 512}'] [--samples 20000]

The data's entropy is 1.009 nats, the floor of both. ``--recipe old`` uses the recipe the
issue's peer figures came from (3000 steps of 256 at lr 1e-3).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch

from benchmarks import load_average
from zoo import api
from zoo.catalog.recipe import Recipe
from zoo.data.moons import MOONS_ENTROPY, moons_log_density
from zoo.infer.reverse import reverse_check
from zoo.plugin.model import ZooModel
from zoo.training.loop import maximise_likelihood

ENTRY = "realnvp-moons"


class PeerFlow(ZooModel):
    """A zuko flow as a ZooModel, so that the same trainer fits it."""

    family = "zuko"

    def __init__(self, flow: torch.nn.Module):
        super().__init__()
        self.flow = flow
        self.config = SimpleNamespace(shape=(2,))  # what the trainer's memory check reads

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.flow().log_prob(x)

    def sample(self, n: int, *, generator: torch.Generator | None = None,
               **kwargs: Any) -> torch.Tensor:
        # zuko draws from the global generator: seed it from ``generator``, and leave it as
        # it was.
        with torch.random.fork_rng():
            if generator is not None:
                torch.manual_seed(int(torch.randint(1 << 62, (1,), generator=generator)))
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
    parser.add_argument("--samples", type=int, default=20_000, help="samples for the reverse")
    parser.add_argument("--config", type=json.loads, default={},
                        help="JSON keys that replace the catalog config's for zoo's flow")
    parser.add_argument("--recipe-set", type=json.loads, default={},
                        help="JSON keys that replace the recipe's, for every flow")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    entry = api.get_entry(ENTRY)
    recipe: Recipe = entry.recipe
    if args.recipe == "old":
        recipe = dataclasses.replace(recipe, steps=3000, batch_size=256, lr=1e-3,
                                     eval_every=500)
    recipe = dataclasses.replace(recipe, **args.recipe_set)
    moons = api.get_dataset(entry.dataset)
    test = moons.load("test")
    makers: dict[str, Callable[[], ZooModel]] = {
        "zoo": lambda: api.get_family(entry.family).build(dict(entry.config) | args.config)}
    found = peers()
    makers.update({name: (lambda make=found[name]: PeerFlow(make())) for name in args.peers})
    nll: dict[str, list[float]] = {name: [] for name in makers}
    reverse: dict[str, list[float]] = {name: [] for name in makers}
    off_data: dict[str, list[float]] = {name: [] for name in makers}
    params: dict[str, int] = {}
    for seed in args.seeds:
        for name, make in makers.items():
            torch.manual_seed(seed)
            model = make()
            params[name] = sum(p.numel() for p in model.parameters())
            maximise_likelihood(model, moons, dataclasses.replace(recipe, seed=seed), progress=False,
                compile=False)
            check = reverse_check(model, test, truth=moons_log_density, floor=MOONS_ENTROPY,
                                  n=args.samples, seed=seed)
            nll[name].append(round(check.forward, 4))
            reverse[name].append(round(check.reverse, 4))
            off_data[name].append(round(check.off_data, 5))

    def mean(figures: dict[str, list[float]]) -> dict[str, float]:
        return {k: round(statistics.mean(v), 4) for k, v in figures.items()}

    print(json.dumps({
        "benchmark": "moons_quality", "recipe": dataclasses.asdict(recipe) | {"seed": args.seeds},
        "config": dict(entry.config) | args.config,
        "test_nll_nats": nll, "mean": mean(nll), "reverse_nats": reverse,
        "reverse_mean": mean(reverse), "off_data": off_data, "samples": args.samples,
        "floor": MOONS_ENTROPY, "parameters": params, "load_average": load_average()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
