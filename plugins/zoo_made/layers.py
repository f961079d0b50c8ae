"""MADE's masked linear layers: ``F.linear(x, weight * mask[k], bias)``, in two layouts.

- ``MaskedLinear`` (``K > 1`` masks) holds the dense weight ``[out, in]`` and multiplies it by
  mask ``k`` at every pass; the weights the masks cut off are never overwritten.
- ``PackedLinear`` (one mask, the default) holds no parameter of its own: its live weights
  (the mask's ones, in row-major order) and its bias are a segment of one flat parameter that
  the model holds for all its one-mask layers (``MADE.packed``). At every pass one scatter
  puts all of them into a zero buffer of the layers' dense weights and biases (their
  gradient comes back by one gather). The function and the gradient of every live weight are
  exactly those of the dense layout.

Why pack: a masked-out weight's gradient is exactly zero, so Adam's second moment stays
exactly zero there, and ``torch.sqrt`` of exact zeros can be many times slower than of
normal numbers (86 us against 6 us for 32k floats on an AVX-512 CPU). About half of MADE's weights
are masked out, so a dense layer made the optimizer pay, on every step, for numbers that
never change. With several masks every weight is live under some mask, so those stay dense.
Why one flat parameter: an optimizer pays a fixed cost per parameter tensor at every step
(several kernel launches and their Python), which on a small MADE was a quarter of the step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Entries of the dense weight drawn at once when a packed layer is initialised.
INIT_BLOCK = 1 << 22

#: A layer's weight ``[out, in]`` under one mask and its bias (or None).
WeightAndBias = tuple[Tensor, Tensor | None]


class MaskedLinearBase(nn.Module):
    """The mask buffer and the initialisation bound."""

    #: Whether the layer keeps its numbers in a segment of the model's flat parameter
    #: (``PackedLinear``); else it holds its own parameters.
    packs = False

    def __init__(self, masks: Tensor):
        super().__init__()
        _, out_features, in_features = masks.shape
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("mask", masks.clone())
        # nn.Linear's initialisation, with the fan-in the mask actually leaves (at least 1).
        fan_in = masks.sum(-1).float().mean().clamp(min=1.0).item()
        self.bound = 1.0 / math.sqrt(fan_in)

    def dense(self, k: int) -> WeightAndBias:
        """``(weight * mask[k], bias)``, the weight a dense ``[out, in]`` tensor
        (differentiable)."""
        raise NotImplementedError

    def forward(self, x: Tensor, k: int) -> Tensor:
        return F.linear(x, *self.dense(k))


class MaskedLinear(MaskedLinearBase):
    """A dense weight with one fixed binary mask per ordering: ``mask[k]`` is ``[out, in]``."""

    def __init__(self, masks: Tensor, bias: bool = True):
        super().__init__(masks)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.uniform_(self.weight, -self.bound, self.bound)
        # Registered and drawn after the weight, as nn.Linear does (the same random stream).
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        if self.bias is not None:
            nn.init.uniform_(self.bias, -self.bound, self.bound)

    def dense(self, k: int) -> WeightAndBias:
        return self.weight * self.float_mask(k), self.bias

    def float_mask(self, k: int) -> Tensor:
        """``mask[k]`` in the weight's dtype, made once: multiplying by a bool mask converts
        it on every forward and every backward pass. Rebuilt when the mask buffer changes
        (moved, or overwritten in place by ``load_state_dict``)."""
        state = (self.weight.dtype, self.mask.device, self.mask._version, self.mask.data_ptr())
        cache = self.__dict__.get("_float_masks")
        if cache is None or cache["state"] != state:
            cache = self.__dict__["_float_masks"] = {"state": state}
        if k not in cache:
            cache[k] = self.mask[k].to(self.weight.dtype)
        return cache[k]


class PackedLinear(MaskedLinearBase):
    """One mask ``[1, out, in]``, and no parameter: the layer's numbers are a segment of the
    model's flat parameter (``MADE.packed``), its live weights (the mask's ones in row-major
    order) then its bias if it has one. The model turns the segments of all its layers into
    their dense weights with one scatter (``MADE.dense_layers``), at the flat positions of
    the masks' ones (``live_index``), which derive from the masks and are not stored: the
    stored masks are checked against the config on load like any derived buffer.
    """

    packs = True

    def __init__(self, masks: Tensor, bias: bool = True):
        if masks.shape[0] != 1:
            raise ValueError(f"PackedLinear takes one mask, got {masks.shape[0]}")
        super().__init__(masks)
        self.has_bias = bias
        #: The sizes of the live weights and of the bias: the pieces of the layer's segment.
        self.pieces = (int(masks.sum()), self.out_features) if bias else (int(masks.sum()),)
        self.segment_size = sum(self.pieces)

    def live_index(self) -> Tensor:
        """The flat positions in the dense ``[out, in]`` weight of the live weights."""
        return self.mask[0].reshape(-1).nonzero().squeeze(1)

    def split(self, segment: Tensor) -> WeightAndBias:
        """The layer's segment as its live weights ``[nnz]`` and its bias (views)."""
        pieces = segment.split(self.pieces)
        return pieces[0], pieces[1] if len(pieces) > 1 else None

    def init_segment(self, segment: Tensor) -> None:
        """Fill the layer's segment as the dense layout's initialisation would: the weight
        ``uniform_(-bound, bound)`` (its live entries), then the bias, in that order."""
        live, bias = self.split(segment)
        with torch.no_grad():
            live.copy_(live_init(self.mask[0], self.bound))
            if bias is not None:
                nn.init.uniform_(bias, -self.bound, self.bound)

    def dense(self, k: int) -> WeightAndBias:
        raise TypeError("a packed layer's weights are built by its model (MADE.dense_layers)")


def live_init(mask: Tensor, bound: float) -> Tensor:
    """The live entries of ``nn.init.uniform_(weight, -bound, bound)`` on the dense weight:
    drawn in blocks of rows, which gives the same numbers as one draw (the CPU generator fills
    a tensor in order), so no dense copy of a large layer is held."""
    rows = max(1, INIT_BLOCK // max(1, mask.shape[1]))
    blocks = []
    for block in mask.split(rows):
        dense = torch.empty(block.shape)
        nn.init.uniform_(dense, -bound, bound)
        blocks.append(dense[block])
    return torch.cat(blocks)


def pack_dense(weight: Tensor, mask: Tensor) -> Tensor:
    """The live weights of a dense ``[out, in]`` weight under one mask ``[out, in]``: its
    entries where the mask is true, in row-major order (the order of ``live_index``)."""
    return weight[mask]
