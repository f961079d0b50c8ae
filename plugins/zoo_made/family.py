"""The ``made`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from zoo.family import Family
from zoo_made.config import MADEConfig


class MADEFamily(Family):
    """Masked Autoencoder for Distribution Estimation (Germain et al., 2015)."""

    name = "made"
    data_kind = "discrete"
    Config = MADEConfig
    description = "MADE masked autoregressive MLP for discrete images (C levels)"

    def create(self, config: MADEConfig):
        from zoo_made.model import MADE

        return MADE(config)
