"""The ``realnvp`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from zoo.family import Family
from zoo_realnvp.config import RealNVPConfig


class RealNVPFamily(Family):
    """Real-valued non-volume-preserving flow (Dinh et al., 2017)."""

    name = "realnvp"
    data_kind = "continuous"
    Config = RealNVPConfig
    description = "RealNVP affine coupling flow for continuous vectors"

    def create(self, config: RealNVPConfig):
        from zoo_realnvp.model import RealNVP

        return RealNVP(config)
