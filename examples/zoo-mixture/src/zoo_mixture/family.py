"""The ``gmm`` family: its config and how to build a model (no torch at import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoo.plugin import ConfigError, Family, bounds

MAX_PARAMETERS = 100_000_000


@dataclass(frozen=True)
class GMMConfig:
    """A mixture of ``components`` Gaussians over vectors of ``shape = [D]``.

    ``covariance``: ``full`` (a Cholesky factor per component) or ``diagonal``. Scales never
    go below ``min_scale``, which keeps the likelihood bounded: a component cannot collapse
    onto one training point. Means start as ``N(0, init_spread**2)`` draws.
    """

    shape: tuple[int, ...]
    components: int = field(default=8, metadata=bounds(1, 4096))
    covariance: Literal["full", "diagonal"] = "full"
    min_scale: float = field(default=1e-3, metadata=bounds(1e-6, 1.0))
    init_spread: float = field(default=1.0, metadata=bounds(0.0, 1e3))

    def validate(self) -> None:
        if len(self.shape) != 1:
            raise ConfigError(f"shape: gmm models vectors, expected [D], got {list(self.shape)}")
        if not 1 <= self.shape[0] <= 4096:
            raise ConfigError(f"shape: D must be between 1 and 4096, got {self.shape[0]}")
        dim = self.shape[0]
        per = dim * dim if self.covariance == "full" else dim
        params = self.components * (1 + dim + per)
        if params > MAX_PARAMETERS:
            raise ConfigError(f"config describes {params:.3g} parameters, more than "
                              f"{MAX_PARAMETERS:.0e}")


class GMMFamily(Family):
    """Gaussian mixture model: exact log-density by logsumexp over components."""

    name = "gmm"
    data_kind = "continuous"
    Config = GMMConfig
    description = "Gaussian mixture (full or diagonal covariance) for continuous vectors"
    # A mixture is neither autoregressive nor a flow: the conformance kit reports causality,
    # completion, invertibility and log-det as not applicable and checks everything else.
    autoregressive = False

    def create(self, config: GMMConfig):
        from zoo_mixture.model import GaussianMixture

        return GaussianMixture(config)
