"""A worker that tests/system/test_distributed.py starts under torchrun (two gloo processes).

Each rank trains the same tiny flow with the generic trainer and records its flattened
parameters after every step (the recipe evaluates, and so calls back, at every step); the
test compares the ranks with each other and with one process on the whole batch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from zoo.catalog.recipe import Recipe
from zoo.data import Dataset

STEPS = 6
RECIPE = Recipe(steps=STEPS, batch_size=32, lr=1e-2, eval_every=1, val_fraction=0.1,
                grad_clip=1.0, schedule="cosine")


def ring(split: str, root) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    angle = 2 * torch.pi * torch.rand(400, generator=g)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.1 * torch.randn(400, 2, generator=g)


DATASET = Dataset("ring", "continuous", (2,), ring)


def make_model():
    from zoo import api

    torch.manual_seed(0)
    return api.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})


def flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def main(out: Path) -> None:
    from safetensors.torch import save_file

    from zoo.training import distributed
    from zoo.training.loop import maximise_likelihood

    torch.set_num_threads(1)
    model = make_model()
    snapshots: dict[str, torch.Tensor] = {}

    def record(step: int, rec: dict) -> None:
        snapshots[f"step{step}"] = flat(model)
        snapshots[f"val{step}"] = torch.tensor([rec["val_nll"], rec["train_nll"]], dtype=torch.float64)

    result = maximise_likelihood(model, DATASET, RECIPE, progress=False, callback=record, device="cpu")
    snapshots["final"] = flat(model)
    ctx = distributed.context()  # the group is gone again: read from torchrun's environment
    save_file(snapshots, str(out / f"rank{ctx.rank}.safetensors"))
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(
        {"world_size": result.world_size, "rank": ctx.rank, "best_step": result.best_step}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
