"""Causal masks and the masked convolution, plus the per-position form the fast sampler uses.

A mask is a ``[kh, kw]`` 0/1 tensor over a kernel centred on its output pixel. In raster
order, the pixels a kernel may read are the rows above the centre and, on the centre row,
the columns to the left of it (type A) or up to and including it (type B, for layers whose
input at the centre already only depends on earlier pixels). The gated variant's vertical
stack reads whole rows: strictly above the centre (first layer) or up to the centre row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def raster_mask(kh: int, kw: int, *, include_center: bool) -> Tensor:
    """Rows above the centre, and the centre row left of (type A) or up to (type B) it."""
    mask = torch.zeros(kh, kw)
    ch, cw = kh // 2, kw // 2
    mask[:ch, :] = 1.0
    mask[ch, : cw + (1 if include_center else 0)] = 1.0
    return mask


def vertical_mask(kh: int, kw: int, *, include_center_row: bool) -> Tensor:
    """Whole rows above the centre row (and the centre row itself when asked)."""
    mask = torch.zeros(kh, kw)
    mask[: kh // 2 + (1 if include_center_row else 0), :] = 1.0
    return mask


class MaskedConv2d(nn.Module):
    """A 2-D convolution whose kernel is multiplied by a fixed mask at every call.

    The mask is applied functionally (``F.conv2d(x, weight * mask)``), never written into the
    weights, so the optimiser cannot leak a masked weight back in; it is a buffer, so it is
    saved with the model. The output has the input's size, as with ``padding = k // 2``.

    Only the bounding box of the mask's non-zero entries is convolved (a causal mask is
    zero below its centre row, a 1xk horizontal mask right of its centre), with the padding
    shifted to match: the same function as the full masked kernel, with the multiplications
    by zero left out.
    """

    def __init__(self, in_channels: int, out_channels: int, mask: Tensor):
        super().__init__()
        kh, kw = mask.shape
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"kernel sizes must be odd, got {kh}x{kw}")
        if mask[kh // 2 + 1 :].any():
            raise ValueError("a causal mask must be zero below its centre row")
        if not mask.any():
            raise ValueError("a mask must let at least one input through")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.register_buffer("mask", mask.clone().float())
        rows, cols = mask.nonzero().unbind(1)
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
        #: Kernel rows and columns that can be non-zero, and where they sit from the centre.
        self.box = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        self.offset = (r0 - kh // 2, c0 - kw // 2)
        # F.pad order (left, right, top, bottom); a negative bottom pad crops the last rows.
        self.padding = (kw // 2 - c0, c1 - kw // 2, kh // 2 - r0, r1 - kh // 2)
        # PyTorch's default conv initialisation, with the fan-in the mask actually lets in.
        bound = 1.0 / math.sqrt(max(1.0, in_channels * float(mask.sum())))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def masked_weight(self) -> Tensor:
        """The masked kernel, cut to the mask's bounding box."""
        rows, cols = self.box
        return self.weight[:, :, rows, cols] * self.mask[rows, cols]

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(F.pad(x, self.padding), self.masked_weight(), self.bias)

    def forward_embedded(self, onehot: Tensor, table: Tensor) -> Tensor:
        """``forward(e)`` for the embedded image ``e = table[x]``, from ``x``'s one-hot
        ``[B, L, H, W]`` and the embedding table ``[L, E]``.

        The convolution is linear in its input, so the table folds into the kernel: ``L``
        input channels instead of ``E``, and no gradient for the (constant) one-hot. Zero
        padding of the one-hot is zero padding of ``e``: the same function.
        """
        kernel = torch.einsum("oehw,le->olhw", self.masked_weight(), table)
        return F.conv2d(F.pad(onehot, self.padding), kernel, self.bias)

    def frozen(self) -> FrozenConv:
        """A detached copy of the masked kernel, for incremental evaluation."""
        return FrozenConv(self.masked_weight().detach(), self.bias.detach(), self.offset)


class RowCache:
    """The last ``P + 1`` rows of a feature map, for incremental evaluation.

    Channels-last ``[n, P + 1, W + 2P, channels]``: the current image row is cache row
    ``P``, the row ``d`` above it is row ``P - d``, and image column ``c`` is cache column
    ``c + P``. Everything outside the image is zero, which is exactly the zero padding the
    full convolution sees (``P`` is at least half the largest kernel). Channels last makes
    a patch a few contiguous runs of memory, cheap to gather at every step; keeping only
    ``P + 1`` rows keeps the memory of a sampler at that of a few feature maps.
    """

    def __init__(self, n: int, width: int, pad: int, channels: int, like: Tensor):
        self.pad, self.width = pad, width
        self.data = like.new_zeros(n, pad + 1, width + 2 * pad, channels)

    def next_row(self) -> None:
        """Move on to the next image row (the new current row starts as zeros)."""
        if self.pad:
            self.data[:, :-1] = self.data[:, 1:].clone()
        self.data[:, -1] = 0

    def set(self, j: int, value: Tensor) -> None:
        """Set pixel ``j`` of the current row to ``value`` ``[n, channels]``."""
        self.data[:, self.pad, j + self.pad] = value

    def set_row(self, values: Tensor) -> None:
        """Set the whole current row to ``values`` ``[n, W, channels]``."""
        self.data[:, self.pad, self.pad : self.pad + self.width] = values


class FrozenConv:
    """A masked convolution evaluated at one pixel or along one row of a ``RowCache``.

    The kernel is the mask's bounding box, which never reaches below the centre row, so
    only the current row and the ones above are read.
    """

    def __init__(self, weight: Tensor, bias: Tensor, offset: tuple[int, int]):
        self.weight = weight.contiguous()
        # Matches a channels-last patch [n, rows, cols, in] flattened.
        self.affine = Affine(self.weight.permute(0, 2, 3, 1).flatten(1), bias)
        self.bias = bias
        self.rows, self.cols = weight.shape[-2:]
        self.dr, self.dc = offset

    def at(self, cache: RowCache, j: int) -> Tensor:
        """The output ``[n, out]`` at pixel ``j`` of the current row."""
        r, c = cache.pad + self.dr, cache.pad + self.dc + j
        patch = cache.data[:, r : r + self.rows, c : c + self.cols]
        return self.affine(patch.reshape(patch.shape[0], -1))

    def row(self, cache: RowCache) -> Tensor:
        """The outputs ``[n, W, out]`` along the current row."""
        r, c = cache.pad + self.dr, cache.pad + self.dc
        strip = cache.data[:, r : r + self.rows, c : c + cache.width + self.cols - 1]
        out = F.conv2d(strip.permute(0, 3, 1, 2), self.weight, self.bias)  # [n, out, 1, W]
        return out[:, :, 0].transpose(1, 2)


class Affine:
    """``x @ weight.T + bias`` for a batch of vectors, with the transpose made once."""

    def __init__(self, weight: Tensor, bias: Tensor):
        self.weight_t = weight.detach().t().contiguous()
        self.bias = bias.detach()

    def __call__(self, x: Tensor) -> Tensor:
        return torch.addmm(self.bias, x, self.weight_t)


def pointwise(layer: nn.Conv2d) -> Affine:
    """A 1x1 convolution as an affine map of one pixel's channels."""
    return Affine(layer.weight.flatten(1), layer.bias)
