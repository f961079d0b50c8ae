"""MADE's masked linear layers: ``F.linear(x, weight * mask[k], bias)``, in two layouts.

- ``MaskedLinear`` (``K > 1`` masks) holds the dense weight ``[out, in]`` and multiplies it by
  mask ``k`` at every pass; the weights the masks cut off are never overwritten.
- ``PackedLinear`` (one mask, the default) holds only the live weights, ``live_weight``
  ``[nnz]`` in the mask's row-major order, and scatters them into a zero ``[out, in]`` at
  every pass (their gradient comes back by a gather). The function and the gradient of every
  live weight are exactly those of the dense layout.

Why pack: a masked-out weight's gradient is exactly zero, so Adam's second moment stays
exactly zero there, and ``torch.sqrt`` of exact zeros can be many times slower than of
normal numbers (86 us against 6 us for 32k floats on an AVX-512 CPU). About half of MADE's weights
are masked out, so a dense layer made the optimizer pay, on every step, for numbers that
never change. With several masks every weight is live under some mask, so those stay dense.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Entries of the dense weight drawn at once when a packed layer is initialised.
INIT_BLOCK = 1 << 22


class MaskedLinearBase(nn.Module):
    """The mask buffer, the bias, the initialisation bound and the samplers' frozen products."""

    def __init__(self, masks: Tensor):
        super().__init__()
        _, out_features, in_features = masks.shape
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("mask", masks.clone())
        # nn.Linear's initialisation, with the fan-in the mask actually leaves (at least 1).
        fan_in = masks.sum(-1).float().mean().clamp(min=1.0).item()
        self.bound = 1.0 / math.sqrt(fan_in)
        # Set to {} on a copy whose weights no longer change (the samplers' float64 twin), to
        # compute each mask's product once instead of at every forward pass.
        self.frozen: dict[int, Tensor] | None = None

    def init_bias(self, bias: bool) -> None:
        """Registered and drawn after the weight, as nn.Linear does (the same random stream)."""
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        if self.bias is not None:
            nn.init.uniform_(self.bias, -self.bound, self.bound)

    def dense_weight(self, k: int) -> Tensor:
        """``weight * mask[k]`` as a dense ``[out, in]`` tensor (differentiable)."""
        raise NotImplementedError

    def masked_weight(self, k: int) -> Tensor:
        if self.frozen is None:
            return self.dense_weight(k)
        if k not in self.frozen:
            self.frozen[k] = self.dense_weight(k)
        return self.frozen[k]

    def forward(self, x: Tensor, k: int) -> Tensor:
        return F.linear(x, self.masked_weight(k), self.bias)


class MaskedLinear(MaskedLinearBase):
    """A dense weight with one fixed binary mask per ordering: ``mask[k]`` is ``[out, in]``."""

    def __init__(self, masks: Tensor, bias: bool = True):
        super().__init__(masks)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        nn.init.uniform_(self.weight, -self.bound, self.bound)
        self.init_bias(bias)

    def dense_weight(self, k: int) -> Tensor:
        return self.weight * self.float_mask(k)

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
    """One mask ``[1, out, in]``; the parameter ``live_weight`` holds the weights it keeps.

    ``live_index`` (the flat positions of the mask's ones) is derived from the mask, so it is
    not stored: the stored mask is checked against the config on load like any derived
    buffer, and it is what an older artifact's dense weight is packed with
    (``pack_dense``). A seed gives the same live weights as the dense layout's draw.
    """

    def __init__(self, masks: Tensor, bias: bool = True):
        if masks.shape[0] != 1:
            raise ValueError(f"PackedLinear takes one mask, got {masks.shape[0]}")
        super().__init__(masks)
        mask = masks[0]
        self.register_buffer("live_index", mask.reshape(-1).nonzero().squeeze(1),
                             persistent=False)
        self.live_weight = nn.Parameter(live_init(mask, self.bound))
        self.init_bias(bias)

    def dense_weight(self, k: int) -> Tensor:
        flat = self.live_weight.new_zeros(self.out_features * self.in_features)
        flat = flat.index_copy_(0, self.live_index, self.live_weight)
        return flat.view(self.out_features, self.in_features)


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
    """The ``live_weight`` of a dense ``[out, in]`` weight under one mask ``[out, in]``: its
    entries where the mask is true, in row-major order (the order of ``live_index``)."""
    return weight[mask]
