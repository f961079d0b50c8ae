"""The state of a training run, and its checkpoint: one piece of code that saves it and
restores it, so that what a checkpoint holds and what a resumed run reads cannot drift apart.

A checkpoint holds the model, the optimizer's state per parameter (whatever the trainer's
flattening), the schedule, the batch stream's position, the random generators, the running
training NLL, the history and the best weights so far, plus the fingerprint of the run that
wrote it (config, recipe, steps, data): a checkpoint of another run is refused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.catalog.recipe import Recipe
from zoo.data.source import Examples
from zoo.plugin.model import ZooModel
from zoo.training import checkpoint as ckpt
from zoo.training.adam_step import AdamStep
from zoo.training.batches import Batches
from zoo.training.flat_parameters import FlatParameters


@dataclass
class TrainState:
    """What a run has done so far, and the objects that carry on from there.

    ``save`` writes it all to a checkpoint; ``restore`` reads it all back: the two are
    written side by side from the one list of fields below.
    """

    model: ZooModel
    optimizer: torch.optim.Optimizer
    schedule: Any  #: the learning-rate schedule (``LambdaLR``)
    batches: Batches
    flat: FlatParameters | None  #: the one flat tensor the optimizer steps, if any
    device: torch.device
    step: int = 0  #: steps done
    running: float = 0.0  #: running mean of the batches' NLL
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int = 0
    best_nll: float = math.inf
    best_weights: dict[str, Tensor] | None = None
    checkpoint_every: int | None = None
    #: how the optimizer steps (``zoo.training.adam_step``): not saved, it holds no state
    adam: AdamStep = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.adam = AdamStep(self.optimizer)

    def keep_if_best(self, val_nll: float) -> None:
        """Remember the current weights when ``val_nll`` is the lowest so far."""
        if val_nll < self.best_nll:
            self.best_nll, self.best_step = val_nll, self.step
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def save(self, directory: Path, run: dict[str, Any], world_size: int) -> None:
        """Write a checkpoint of this state (step ``step``) to ``directory``."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        optimizer = self.optimizer.state_dict()
        if self.flat is not None:
            optimizer = self.flat.per_parameter_state(optimizer)
        opt_tensors, opt_meta = ckpt.split_optimizer_state(optimizer)
        tensors.update(opt_tensors)
        if self.best_weights is not None:
            tensors.update({f"best.{k}": v for k, v in self.best_weights.items()})
        meta = {
            "run": run,
            "world_size": world_size,
            "checkpoint_every": self.checkpoint_every,
            "optimizer": opt_meta,
            "scheduler": ckpt.json_value(self.schedule.state_dict(), "scheduler state"),
            "batches": self.batches.state(),
            "rng": _rng_state(self.device),
            "running": self.running,
            "best_step": self.best_step,
            "best_nll": _finite_or_none(self.best_nll),
            "history": self.history,
        }
        ckpt.save(directory, self.step, tensors, meta)

    def restore(self, sidecar: Path, run: dict[str, Any]) -> None:
        """Read the checkpoint ``sidecar`` back into this state; a checkpoint written by
        another run, or one that does not fit the model, is a ``CheckpointError``."""
        tensors, meta = ckpt.load(sidecar)
        _check_fingerprint(meta.get("run"), run, sidecar)
        try:
            self.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                                        if k.startswith("model.")})
            saved = ckpt.join_optimizer_state(tensors, meta["optimizer"])
            self.optimizer.load_state_dict(saved if self.flat is None
                                           else self.flat.flat_state(saved))
            self.schedule.load_state_dict(meta["scheduler"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ckpt.CheckpointError(
                f"checkpoint {sidecar} does not fit this model: {' '.join(str(exc).split())[:400]}"
            ) from None
        self.batches.restore(meta["batches"])
        _set_rng_state(meta["rng"], self.device)
        self.step = meta["step"]
        self.running = meta["running"]
        self.history = meta["history"]
        self.best_step = meta["best_step"]
        self.best_nll = math.inf if meta["best_nll"] is None else meta["best_nll"]
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        self.best_weights = best or None
        if self.checkpoint_every is None:
            self.checkpoint_every = meta.get("checkpoint_every")


def run_fingerprint(model: ZooModel, recipe: Recipe, steps: int, data: Examples,
                 n_train: int) -> dict[str, Any]:
    """What must match for a checkpoint to belong to this run, the data's contents included."""
    from zoo.config import to_dict

    config = model.config
    return {
        "family": model.family or type(model).__name__,
        "config": to_dict(config) if dataclasses.is_dataclass(config) else None,
        "recipe": to_dict(recipe),
        "steps": steps,
        "train_examples": n_train,
        "data": data.fingerprint(),
    }


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": ckpt.encode_bytes(torch.get_rng_state())}
    if device.type == "cuda":
        state["cuda"] = ckpt.encode_bytes(torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(ckpt.decode_bytes(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(ckpt.decode_bytes(state["cuda"]), device)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _check_fingerprint(saved: Any, current: dict[str, Any], sidecar: Path) -> None:
    if saved == current:
        return
    if not isinstance(saved, dict):
        raise ckpt.CheckpointError(f"checkpoint {sidecar} does not record which run wrote it")
    diffs = []
    for key in current:
        if saved.get(key) != current[key]:
            if isinstance(current[key], dict) and isinstance(saved.get(key), dict):
                inner = [f"{key}.{k}: {saved[key].get(k)!r} vs {current[key].get(k)!r}"
                         for k in sorted(set(saved[key]) | set(current[key]))
                         if saved[key].get(k) != current[key].get(k)]
                diffs.extend(inner)
            else:
                diffs.append(f"{key}: {saved.get(key)!r} vs {current[key]!r}")
    raise ckpt.CheckpointError(
        f"checkpoint {sidecar} was written by a different run ({'; '.join(diffs[:4])}, "
        "checkpoint vs now); resume with the same recipe, config and steps, or train without --resume"
    )
