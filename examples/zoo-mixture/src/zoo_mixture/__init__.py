"""zoo-mixture: a Gaussian mixture family for zoo, written as any third party would write one.

The ``zoo`` entry point of this distribution names this module; zoo calls its three hooks.
Registration stays cheap (no torch import here): the model and the data loader import torch
only when they are used.
"""

from zoo.plugin import hookimpl
from zoo_mixture.data import EIGHT_GAUSSIANS
from zoo_mixture.family import GMMFamily

__version__ = "0.1.0"


@hookimpl
def zoo_register_families(register):
    register(GMMFamily())


@hookimpl
def zoo_register_datasets(register):
    register(EIGHT_GAUSSIANS)


@hookimpl
def zoo_register_entries(register):
    # Same fields as an entry of zoo's registry.yaml; zoo validates them the same way.
    register({
        "name": "gmm-moons",
        "family": "gmm",
        "dataset": "moons",
        "description": "Mixture of 16 full-covariance Gaussians fitted to sklearn's two moons.",
        "config": {"shape": [2], "components": 16},
        "recipe": {"steps": 300, "batch_size": 512, "lr": 0.03, "seed": 0,
                   "val_fraction": 0.05, "eval_every": 100},
    })
    register({
        "name": "gmm-eight-gaussians",
        "family": "gmm",
        "dataset": "eight-gaussians",
        "description": "Mixture of 16 Gaussians fitted to eight Gaussians on a circle "
                       "(the data's entropy, 0.312 nats, is the best possible test NLL).",
        "config": {"shape": [2], "components": 16, "init_spread": 2.0},
        "recipe": {"steps": 600, "batch_size": 512, "lr": 0.05, "seed": 0,
                   "val_fraction": 0.05, "eval_every": 200},
    })
