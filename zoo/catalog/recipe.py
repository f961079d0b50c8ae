"""A training recipe: everything that decides how a catalog entry's weights are made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoo.config import bounds


@dataclass(frozen=True)
class Recipe:
    """Maximum-likelihood training settings; the same recipe and seed give the same weights.

    A catalog entry's ``recipe`` mapping is parsed into one (unknown keys, wrong types and
    out-of-range values are refused); every field has a default:

    - ``steps``: optimizer steps.
    - ``batch_size``: the global batch; with several processes each takes its share.
    - ``lr``: the peak learning rate.
    - ``optimizer``: ``adam`` or ``adamw`` (decoupled weight decay).
    - ``weight_decay``: the optimizer's weight decay.
    - ``schedule``: ``constant``, or ``cosine`` decay of the learning rate to zero at ``steps``.
    - ``warmup_steps``: linear warm-up from zero before the schedule (below ``steps``).
    - ``grad_clip``: clip the gradients' global norm to this (``None``: no clipping).
    - ``seed``: seeds the model's initialisation, the validation split and the batches.
    - ``val_fraction``: the share of the training split held out to choose the best weights
      (0: no hold-out), at most ``zoo.training.loop.MAX_VAL_ROWS`` (50,000) examples.
    - ``eval_every``: steps between validation passes (and the best-weights choice).
    - ``eval_batch_size``: batch size for validation and test scoring.
    - ``patience``: stop after this many validation passes without a better NLL (early
      stopping; ``None``: run every step). The best weights are kept either way.
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
    patience: int | None = field(default=None, metadata=bounds(1, 1_000_000))

    def validate(self) -> None:
        """Refuse a warm-up as long as the run (checks across fields; ``parse`` calls it)."""
        if self.warmup_steps >= self.steps and self.warmup_steps > 0:
            raise ValueError(f"warmup_steps ({self.warmup_steps}) must be below steps ({self.steps})")
