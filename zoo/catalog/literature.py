"""A published figure that a catalog entry is set beside: the paper's number, its
reference, and how the paper's protocol differs from zoo's.

Density models are compared by their published test NLL (nats on binarized MNIST, bits/dim
on 256 levels), but a published number is rarely measured exactly as zoo measures: the
papers on binarized MNIST used one fixed binarization, zoo draws its test set from the
grey levels with a fixed seed; a flow's figure may be a bound of another kind. So an entry's
``literature`` carries the difference in words next to the number, and the leaderboard
shows both and the gap. The numbers live in the catalog (``registry.yaml``), never in code:
the core knows no family by name.

Imports no torch (``zoo list`` and ``zoo leaderboard`` read it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from zoo.config import bounds


@dataclass(frozen=True)
class Literature:
    """A paper's test NLL for the model an entry reproduces.

    - ``reference``: who reported it, where (``Germain et al. 2015, MADE, table 6``).
    - ``nll``: nats per example, or ``bits_per_dim``: exactly one of the two, as published.
    - ``protocol``: how the paper's measurement differs from zoo's (empty: the same).
    """

    reference: str
    nll: float | None = field(default=None, metadata=bounds(0.0, 1e9))
    bits_per_dim: float | None = field(default=None, metadata=bounds(0.0, 1e6))
    protocol: str = ""

    def validate(self) -> None:
        if (self.nll is None) == (self.bits_per_dim is None):
            raise ValueError("literature: give exactly one of nll (nats) and bits_per_dim, "
                             "as the paper reports it")
        if not self.reference.strip():
            raise ValueError("literature: reference must name the paper")

    def nats(self, dims: int | None) -> float | None:
        """The figure in nats per example (``None`` if it is in bits/dim and ``dims`` unknown)."""
        if self.nll is not None:
            return self.nll
        return self.bits_per_dim * dims * math.log(2) if dims else None

    def bits(self, dims: int | None) -> float | None:
        """The figure in bits per dimension (``None`` if in nats and ``dims`` unknown)."""
        if self.bits_per_dim is not None:
            return self.bits_per_dim
        return self.nll / (dims * math.log(2)) if dims else None

    def shown(self) -> str:
        """The figure in the unit the paper used: ``88.04 nats`` or ``1.06 bits/dim``."""
        return f"{self.nll:.2f} nats" if self.nll is not None else f"{self.bits_per_dim:.2f} bits/dim"
