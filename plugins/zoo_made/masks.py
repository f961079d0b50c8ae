"""MADE's orderings and connectivity masks.

Every unit carries a *degree*: an input unit, the rank (0-based place in the ordering) of the
position it encodes; a hidden unit, the highest rank it may depend on. A hidden unit of degree
``m`` connects to units of the layer below with degree ``<= m``; the output units of the
position of rank ``r`` connect to hidden units of degree ``< r`` (and, through the direct
connection, to input units of rank ``< r``). So the logits of a position only ever see the
positions before it in the ordering.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zoo_made.config import MADEConfig


@dataclass
class MaskSet:
    """The masks of one network, each stacked over the ``K`` orderings: ``[K, out, in]`` bool."""

    orderings: Tensor  # [K, D]: orderings[k, t] = the position visited at step t
    hidden: list[Tensor]  # one per hidden layer
    output: Tensor | None  # last hidden layer -> outputs
    direct: Tensor | None  # inputs -> outputs


def ranks_of(ordering: Tensor) -> Tensor:
    """The inverse permutation: ``ranks[d]`` is the step at which position ``d`` is visited."""
    ranks = torch.empty_like(ordering)
    ranks[ordering] = torch.arange(len(ordering), device=ordering.device)
    return ranks


def make_orderings(positions: int, count: int, kind: str, generator: torch.Generator) -> Tensor:
    """``count`` orderings of ``positions``: all the raster order, or random permutations."""
    if kind == "natural":
        return torch.arange(positions).repeat(count, 1)
    return torch.stack([torch.randperm(positions, generator=generator) for _ in range(count)])


def hidden_degrees(width: int, low: int, positions: int, kind: str,
                   generator: torch.Generator) -> Tensor:
    """Degrees of one hidden layer, in ``low .. D-2`` (a degree of ``D-1`` would feed nothing)."""
    high = max(low, positions - 2)
    if kind == "random":
        return torch.randint(low, high + 1, (width,), generator=generator)
    return low + torch.arange(width) % (high - low + 1)


def build_masks(
    positions: int,
    hidden: tuple[int, ...],
    input_width: int,
    output_width: int,
    *,
    count: int,
    ordering: str,
    connectivity: str,
    direct: bool,
    seed: int,
) -> MaskSet:
    """Draw ``count`` orderings and connectivities and build every layer's masks from them.

    Input units are grouped by position (``input_width`` per position) and so are output units
    (``output_width`` per position), matching how the model lays out its tensors.
    """
    generator = torch.Generator().manual_seed(seed)
    orderings = make_orderings(positions, count, ordering, generator)
    hidden_masks: list[list[Tensor]] = [[] for _ in hidden]
    outputs, directs = [], []
    for k in range(count):
        ranks = ranks_of(orderings[k])
        in_degrees = ranks.repeat_interleave(input_width)
        out_ranks = ranks.repeat_interleave(output_width)
        below = in_degrees
        for layer, width in enumerate(hidden):
            degrees = hidden_degrees(width, int(below.min()), positions, connectivity, generator)
            hidden_masks[layer].append(degrees[:, None] >= below[None, :])
            below = degrees
        if hidden:
            outputs.append(out_ranks[:, None] > below[None, :])
        if direct:
            directs.append(out_ranks[:, None] > in_degrees[None, :])
    return MaskSet(
        orderings=orderings,
        hidden=[torch.stack(m) for m in hidden_masks],
        output=torch.stack(outputs) if outputs else None,
        direct=torch.stack(directs) if directs else None,
    )


def config_masks(config: MADEConfig) -> MaskSet:
    """The masks of the model ``config`` describes (what ``MADE`` builds and a load checks)."""
    return build_masks(
        config.positions, tuple(config.hidden), config.input_width, config.output_width,
        count=config.masks, ordering=config.ordering, connectivity=config.connectivity,
        direct=config.direct, seed=config.seed,
    )
