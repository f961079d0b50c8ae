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

    ``couplings`` coupling layers (``coupling``: affine, or rational-quadratic splines of
    ``bins`` bins on ``[-spline_bound, spline_bound]``) whose masks alternate between two
    halves of the coordinates (even/odd ones, or a random split fixed by ``mask_seed``), each conditioned
    by an MLP of ``layers`` hidden layers of width ``hidden``. The affine log-scale is softly
    bounded to ``[-scale_bound, scale_bound]`` so a bad step cannot blow the scale up.
    """

    shape: tuple[int, ...]
    couplings: int = field(default=8, metadata=bounds(1, 256))
    hidden: int = field(default=64, metadata=bounds(1, 8192))
    layers: int = field(default=2, metadata=bounds(1, 16))
    activation: Literal["relu", "silu", "tanh", "elu"] = "relu"
    scale_bound: float = field(default=3.0, metadata=bounds(0.01, 20.0))
    masks: Literal["alternate", "random"] = "alternate"
    mask_seed: int = field(default=0, metadata=bounds(0, 2**31 - 1))
    # --- the coupling transform (issue 17) -------------------------------------------------
    # affine: y = x * exp(s) + t. spline: a monotone rational-quadratic spline of `bins` bins
    # on [-spline_bound, spline_bound], the identity outside (Durkan et al., 2019).
    coupling: Literal["affine", "spline"] = "affine"
    bins: int = field(default=8, metadata=bounds(2, 64))
    spline_bound: float = field(default=4.0, metadata=bounds(0.1, 100.0))

    def validate(self) -> None:
        if len(self.shape) != 1:
            raise ConfigError(f"shape: realnvp models vectors, expected [D], got {list(self.shape)}")
        if not 2 <= self.shape[0] <= 65536:
            raise ConfigError(f"shape: D must be between 2 and 65536, got {self.shape[0]}")
        per_output = 3 * self.bins - 1 if self.coupling == "spline" else 2
        params = self.couplings * self.hidden * (
            self.shape[0] * (1 + per_output) + (self.layers - 1) * self.hidden)
        if params > 2_000_000_000:
            raise ConfigError(f"config describes about {params:.3g} parameters, more than 2e9")
