"""A training recipe: everything that decides how a catalog entry's weights are made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoo.config import bounds


@dataclass(frozen=True)
class Recipe:
    """Maximum-likelihood training settings; the same recipe and seed give the same weights.

    ``batch_size`` is the global batch: with several processes each takes its share.
    ``val_fraction`` of the training split is held out to choose the best checkpoint,
    evaluated every ``eval_every`` steps.
    """

    steps: int = field(default=1000, metadata=bounds(1, 10_000_000))
    batch_size: int = field(default=256, metadata=bounds(1, 1 << 16))
    lr: float = field(default=1e-3, metadata=bounds(1e-8, 10.0))
    optimizer: Literal["adam", "adamw"] = "adamw"
    weight_decay: float = field(default=0.0, metadata=bounds(0.0, 10.0))
    schedule: Literal["constant", "cosine"] = "cosine"
    warmup_steps: int = field(default=0, metadata=bounds(0, 10_000_000))
    grad_clip: float | None = field(default=None, metadata=bounds(1e-6, 1e6))
    seed: int = field(default=0, metadata=bounds(0, 2**63 - 1))
    val_fraction: float = field(default=0.1, metadata=bounds(0.0, 0.5))
    eval_every: int = field(default=500, metadata=bounds(1, 10_000_000))
    eval_batch_size: int = field(default=4096, metadata=bounds(1, 1 << 20))

    def validate(self) -> None:
        if self.warmup_steps >= self.steps and self.warmup_steps > 0:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")
