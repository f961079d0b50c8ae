"""The ``realnvp`` family's config: validated before anything is allocated (no torch at import).

Both the family (``family.py``) and the model (``model.py``) import it; neither imports the other's
module at import time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoo.config import bounds
from zoo.errors import ConfigError


@dataclass(frozen=True)
class RealNVPConfig:
    """RealNVP over vectors of ``shape = [D]``.

    ``couplings`` affine coupling layers whose masks alternate between two halves of the
    coordinates (even/odd ones, or a random split fixed by ``mask_seed``), each conditioned
    by an MLP of ``layers`` hidden layers of width ``hidden``. The log-scale is softly bounded to
    ``[-scale_bound, scale_bound]`` so a bad step cannot blow the scale up.
    """

    shape: tuple[int, ...]
    couplings: int = field(default=8, metadata=bounds(1, 256))
    hidden: int = field(default=64, metadata=bounds(1, 8192))
    layers: int = field(default=2, metadata=bounds(1, 16))
    activation: Literal["relu", "silu", "tanh", "elu"] = "relu"
    scale_bound: float = field(default=3.0, metadata=bounds(0.01, 20.0))
    masks: Literal["alternate", "random"] = "alternate"
    mask_seed: int = field(default=0, metadata=bounds(0, 2**31 - 1))

    def validate(self) -> None:
        if len(self.shape) != 1:
            raise ConfigError(f"shape: realnvp models vectors, expected [D], got {list(self.shape)}")
        if not 2 <= self.shape[0] <= 65536:
            raise ConfigError(f"shape: D must be between 2 and 65536, got {self.shape[0]}")
        params = self.couplings * (self.hidden * (3 * self.shape[0] + (self.layers - 1) * self.hidden))
        if params > 2_000_000_000:
            raise ConfigError(f"config describes about {params:.3g} parameters, more than 2e9")
