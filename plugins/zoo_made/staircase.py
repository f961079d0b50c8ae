"""A big one-mask MADE's layers as a few dense blocks, leaving out the masked-out corners.

Under MADE's masks a unit sees only the units of lower degree in the layer below. Sort each
layer's units by degree (the inputs by how many units above see them, the units of every
other layer as the layer below sorts them) and every row of every mask becomes a prefix:
unit ``r`` reads the first ``len(r)`` units below, and ``len`` grows down the rows, a
staircase. Cut the sorted rows into ``GROUPS`` blocks; block ``g`` is one dense product with
the prefix its last row needs. About half of a dense masked layer is zeros, and the blocks
skip ``(G - 1) / 2G`` of it (3/8 at ``G = 4``): the same function, since the skipped weights
are masked-out zeros, with less arithmetic.

On the MNIST MADE (784-500-784, batches of 128, one thread), a forward and backward pass
took 5.3 ms dense and 4.1-4.4 ms in four blocks; eight blocks were slower again (narrow
products run below the BLAS's best rate). Small layers gain nothing (each block is one more
product and one more node), so only models with ``MIN_WEIGHTS`` dense weights or more use
it (the MNIST MADEs, not the digits').

The sorting is found from the masks themselves and checked: where some row is not a prefix
(no mask ``zoo_made.masks`` builds), ``plan`` returns None and the model stays dense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Blocks per layer.
GROUPS = 4
#: Dense weights a model needs (all layers together) before the staircase pays.
MIN_WEIGHTS = 1 << 18

#: A block: (first sorted row, end sorted row, prefix of the sorted units below it reads).
Block = tuple[int, int, int]


@dataclass
class Plan:
    """Where ``packed``'s numbers go, and how the layers run, in the sorted order.

    ``index`` is where each of ``packed``'s numbers goes in one buffer of ``sizes`` pieces:
    per layer, its blocks' weights (``[rows, prefix]``, row-major) then its bias (sorted
    rows), if it has one.
    ``input_order`` sorts the input units, ``output_order`` the outputs (sorted position ->
    output unit); ``output_unorder`` puts the sorted outputs back.
    """

    index: Tensor
    sizes: list[int]
    layers: list[list[Block]]
    biases: list[bool]
    input_order: Tensor
    output_order: Tensor
    output_unorder: Tensor
    #: whether ``input_order`` and ``output_order`` are the same permutation
    same_order: bool = False


def plan(masks: list[Tensor], biases: list[bool], groups: int | None = None) -> Plan | None:
    """The staircase of the layers whose masks (``[out, in]`` each, in the order of their
    segments of ``packed``: live weights row-major, then the bias) are ``masks``, or None if
    some row is not a prefix once sorted. ``groups``: blocks per layer (``GROUPS``)."""
    groups = groups or GROUPS
    inputs = order = torch.argsort(-masks[0].sum(0), stable=True)  # most seen first
    parts, sizes, layers = [], [], []
    offset = 0
    for mask, bias in zip(masks, biases):
        cols = mask[:, order].bool()
        lengths = cols.sum(1)
        rows = torch.argsort(lengths, stable=True)
        lengths = lengths[rows]
        staircase = torch.arange(mask.shape[1])[None, :] < lengths[:, None]
        if not torch.equal(cols[rows], staircase):
            return None
        out = mask.shape[0]
        bounds = sorted({round(out * i / groups) for i in range(groups + 1)})
        blocks = [(a, b, int(lengths[b - 1])) for a, b in zip(bounds, bounds[1:])]
        # Each live weight (row r, column c, row-major as in packed) in its block.
        r, c = mask.bool().nonzero(as_tuple=True)
        sorted_row = torch.argsort(rows)[r]
        sorted_col = torch.argsort(order)[c]
        group = torch.searchsorted(torch.tensor([b for _, b, _ in blocks]), sorted_row,
                                   right=True)
        first = torch.tensor([a for a, _, _ in blocks])
        width = torch.tensor([p for _, _, p in blocks])
        block_sizes = [(b - a) * p for a, b, p in blocks]
        starts = torch.tensor([0, *torch.tensor(block_sizes).cumsum(0)[:-1].tolist()])
        parts.append(offset + starts[group] + (sorted_row - first[group]) * width[group]
                     + sorted_col)
        sizes += block_sizes
        offset += sum(block_sizes)
        if bias:
            parts.append(offset + torch.argsort(rows))
            sizes.append(out)
            offset += out
        layers.append(blocks)
        order = rows  # the layer above reads this layer's units in this order
    return Plan(torch.cat(parts), sizes, layers, list(biases), inputs, order,
                torch.argsort(order), torch.equal(inputs, order))



class BlockLinear(torch.autograd.Function):
    """One layer of the staircase: ``out[:, a:b] = h[:, :p] @ w.T + bias[a:b]`` for each block
    ``(a, b, p)`` and its weight ``w`` ``[b - a, p]``.

    Written out because of the backward pass: through autograd each block's slice of ``h``
    would give back a zero-filled gradient of ``h``'s full size, and those would then be
    added up; here the blocks add their parts into one buffer, in place, and the bias's
    gradient is one sum.
    """

    @staticmethod
    def forward(ctx: Any, h: Tensor, blocks: list[Block], bias: Tensor | None,
                *weights: Tensor) -> Tensor:
        parts = [h[:, :p] @ w.t() if bias is None else torch.addmm(bias[a:b], h[:, :p], w.t())
                 for (a, b, p), w in zip(blocks, weights)]
        ctx.save_for_backward(h, *weights)
        ctx.blocks, ctx.has_bias = blocks, bias is not None
        return torch.cat(parts, dim=1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        h, *weights = ctx.saved_tensors
        grad_h = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.zeros_like(h)
            for (a, b, p), w in zip(ctx.blocks, weights):
                grad_h[:, :p].addmm_(grad[:, a:b], w)
        grad_weights = [grad[:, a:b].t() @ h[:, :p] for a, b, p in ctx.blocks]
        grad_bias = grad.sum(0) if ctx.has_bias else None
        return (grad_h, None, grad_bias, *grad_weights)
