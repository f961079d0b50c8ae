"""zoo: a plugin-based zoo of exact-likelihood generative models for PyTorch.

    import zoo
    model = zoo.load("realnvp-moons")      # pulls (or builds) the artifact if needed
    x = model.sample(1000)
    nats = model.log_prob(x)
    flow = zoo.fit("realnvp", "points.csv", steps=2000)   # your own data
    scores = zoo.score(flow, "new-points.csv")            # log p per row, in nats

The public names are imported lazily so that ``import zoo`` (and ``zoo list``) stays fast:
torch is imported only when a model is built or loaded.
"""

from __future__ import annotations

from zoo.hookspecs import hookimpl
from zoo.lazy import lazy_exports

__all__ = [
    "hookimpl",
    "Family",
    "ZooModel",
    "Dataset",
    "Recipe",
    "list_models",
    "info",
    "get_family",
    "get_dataset",
    "pull",
    "load",
    "save",
    "push",
    "train",
    "evaluate",
    "verify",
    "fit",
    "score",
    "complete",
]

_LAZY = {
    "Family": "zoo.plugin.family",
    "ZooModel": "zoo.plugin.model",
    "Dataset": "zoo.data",
    "Recipe": "zoo.catalog.recipe",
    "list_models": "zoo.api",
    "info": "zoo.api",
    "get_family": "zoo.plugin.registry",
    "get_dataset": "zoo.plugin.registry",
    "pull": "zoo.api",
    "load": "zoo.api",
    "save": "zoo.api",
    "push": "zoo.api",
    "train": "zoo.api",
    "evaluate": "zoo.api",
    "verify": "zoo.api",
    "fit": "zoo.api.owndata",
    "score": "zoo.api.scoring",
    "complete": "zoo.infer.completion",
}


__getattr__, __dir__ = lazy_exports('zoo', globals(), _LAZY, __all__)
