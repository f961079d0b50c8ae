"""The generic maximum-likelihood trainer: any family whose models have ``log_prob``.

It minimises the mean negative log-likelihood in nats with Adam(W), an optional warm-up and
cosine schedule and gradient clipping; holds out ``recipe.val_fraction`` of the training
split, evaluates it every ``recipe.eval_every`` steps and keeps the best checkpoint. The
same recipe and seed give the same weights.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoo.data import Dataset
from zoo.errors import TrainingError
from zoo.evaluation import mean_nll
from zoo.model import ZooModel
from zoo.recipe import Recipe


@dataclass
class FitResult:
    """What training produced: the model holds the best weights when ``fit`` returns."""

    steps: int
    best_step: int
    val_nll: float | None
    train_nll: float
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Splits:
    """The training examples (re-drawn per epoch when the dataset says so) and the hold-out."""

    train: Tensor
    val: Tensor | None


def split_train(dataset: Dataset, x: Tensor, recipe: Recipe) -> Splits:
    """Hold out ``recipe.val_fraction`` of ``x`` with a permutation fixed by ``recipe.seed``."""
    n_val = int(round(len(x) * recipe.val_fraction))
    if n_val == 0:
        return Splits(x, None)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(recipe.seed))
    val = x[order[:n_val]]
    # A re-drawn dataset (binarized MNIST) is drawn once for validation, with its own seed.
    val = dataset.draw(val, torch.Generator().manual_seed(recipe.seed + 1))
    return Splits(x[order[n_val:]], val)


def make_optimizer(model: ZooModel, recipe: Recipe) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    params = list(model.parameters())
    # The fused kernel updates every tensor in one call: on small models the per-tensor
    # loop of the default implementation costs more than the model itself.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused or None)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, steps: int):
    """Linear warm-up, then constant or cosine decay to zero over ``steps``."""

    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        if recipe.schedule == "constant":
            return 1.0
        progress = (step - recipe.warmup_steps) / max(1, steps - recipe.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Batches:
    """An endless stream of shuffled mini-batches, one fresh permutation (and draw) per epoch."""

    def __init__(self, dataset: Dataset, x: Tensor, batch_size: int, generator: torch.Generator):
        if len(x) < batch_size:
            batch_size = len(x)
        self.dataset, self.x, self.batch_size, self.generator = dataset, x, batch_size, generator
        self.epoch_data: Tensor | None = None
        self.order: Tensor | None = None
        self.position = 0
        self.epoch = 0

    def next(self) -> Tensor:
        if self.order is None or self.position + self.batch_size > len(self.order):
            self.epoch_data = self.dataset.draw(self.x, self.generator)
            self.order = torch.randperm(len(self.x), generator=self.generator)
            self.position = 0
            self.epoch += 1
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.epoch_data[index]


def fit(
    model: ZooModel,
    dataset: Dataset,
    recipe: Recipe,
    *,
    steps: int | None = None,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    train_data: Tensor | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``dataset``'s training split following ``recipe``.

    ``steps`` overrides the recipe's step count; ``progress`` shows a tqdm bar (default: when
    stderr is a terminal); ``train_data`` replaces the loaded training split (tests, custom
    data). On return the model holds the weights with the best validation NLL.
    """
    steps = recipe.steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    device = torch.device(device) if device is not None else model.device
    model.to(device)
    torch.manual_seed(recipe.seed)
    x = dataset.load("train") if train_data is None else train_data
    splits = split_train(dataset, x, recipe)
    batches = Batches(dataset, splits.train, recipe.batch_size,
                      torch.Generator().manual_seed(recipe.seed + 2))
    optimizer = make_optimizer(model, recipe)
    schedule = make_schedule(optimizer, recipe, steps)
    val = splits.val.to(device) if splits.val is not None else None

    show = sys.stderr.isatty() if progress is None else progress
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, disable=not show, desc=f"training {model.family}", unit="step",
               dynamic_ncols=True, leave=False)
    history: list[dict[str, float]] = []
    best_nll, best_step, best_state = math.inf, 0, None
    running = 0.0
    model.train()
    try:
        for step in range(1, steps + 1):
            batch = batches.next().to(device, non_blocking=True)
            loss = -model.log_prob(batch).mean()
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at step {step}; training stopped. "
                    "Lower the learning rate or set grad_clip in the recipe."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            schedule.step()
            running = loss.item() if step == 1 else 0.98 * running + 0.02 * loss.item()
            bar.update(1)
            if step % recipe.eval_every == 0 or step == steps:
                record = {"step": step, "train_nll": running}
                if val is not None:
                    record["val_nll"] = mean_nll(model, val, recipe.eval_batch_size)
                    model.train()
                    if record["val_nll"] < best_nll:
                        best_nll, best_step = record["val_nll"], step
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                history.append(record)
                bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "step"})
                if callback is not None:
                    callback(step, record)
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_step = steps
    model.eval()
    return FitResult(steps=steps, best_step=best_step,
                     val_nll=None if val is None else best_nll, train_nll=running,
                     history=history)


def describe(result: FitResult) -> dict[str, Any]:
    return {"steps": result.steps, "best_step": result.best_step, "val_nll": result.val_nll}
