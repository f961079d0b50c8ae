"""The ``eight-gaussians`` dataset: eight Gaussians (std 0.1) evenly spaced on a circle of radius 2.

Protocol: train n=20000 with seed 0, test n=20000 with seed 1 (``torch.Generator``). Its
entropy is ``log 8 + log(2 pi e 0.01) = 0.312`` nats, the lowest test NLL any model can reach
(the components barely overlap, so the mixture's entropy is that of its parts plus log 8).
"""

from __future__ import annotations

import math
from pathlib import Path

from zoo.plugin import Dataset

SIZE = {"train": 20000, "test": 20000}
SEED = {"train": 0, "test": 1}
RADIUS, STD, MODES = 2.0, 0.1, 8


def load_eight_gaussians(split: str, root: Path):
    """The split as float32 ``[20000, 2]`` (``root`` is unused: the data is generated)."""
    import torch

    g = torch.Generator().manual_seed(SEED[split])
    mode = torch.randint(MODES, (SIZE[split],), generator=g)
    angle = 2 * math.pi * mode.double() / MODES
    centres = RADIUS * torch.stack([angle.cos(), angle.sin()], 1)
    noise = torch.randn(SIZE[split], 2, generator=g, dtype=torch.float64) * STD
    return (centres + noise).float()


EIGHT_GAUSSIANS = Dataset(
    "eight-gaussians", "continuous", (2,), load_eight_gaussians,
    description="8 Gaussians (std 0.1) on a circle of radius 2 (D=2); entropy 0.312 nats",
)
