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

    def frozen(self, table: Tensor | None = None) -> FrozenConv:
        """A detached copy of the masked kernel, for incremental evaluation; with ``table``
        (an embedding ``[L, E]``) folded in, for one-hot inputs (``forward_embedded``)."""
        weight = self.masked_weight().detach()
        if table is not None:
            weight = torch.einsum("oehw,le->olhw", weight, table.detach())
        rows, cols = self.box
        centre = self.mask[self.mask.shape[0] // 2, cols].nonzero().flatten()
        span = (int(centre.min()), int(centre.max())) if len(centre) else None
        return FrozenConv(weight, self.bias.detach(), self.offset, span)


class RowCache:
    """The last ``A + 1`` rows of a feature map, for incremental evaluation.

    Channels-last ``[n, A + 1, W + 2P, channels]``: the current image row is cache row
    ``A``, the row ``d`` above it is row ``A - d``, and image column ``c`` is cache column
    ``c + P``. Everything outside the image is zero, which is exactly the zero padding the
    full convolution sees (``P`` is at least half the largest kernel, ``A`` at least the
    rows above the centre that the kernel reading the map reaches; ``A = 0`` for a map
    only ever read on the current row, such as the gated horizontal stack). Channels last
    makes a run of pixels of one row a contiguous block, a matrix operand without a copy;
    keeping only ``A + 1`` rows keeps the memory of a sampler at that of a few feature maps.

    The cache is only ever written in place, so views into it stay valid: ``slots[j]`` is
    pixel ``j`` of the current row ``[n, channels]``, made once, which the steppers write
    with ``out=`` and read back without indexing at every pixel. A map with ``A = 0`` is
    never cleared: a step only reads the pixels of the row that have been written in it,
    to its left, and the zero padding.
    """

    def __init__(self, n: int, width: int, pad: int, channels: int, like: Tensor,
                 above: int | None = None):
        self.pad, self.width = pad, width
        self.above = pad if above is None else above
        self.data = like.new_zeros(n, self.above + 1, width + 2 * pad, channels)
        self.current = self.data[:, -1]  # [n, W + 2P, channels]
        self.slots = self.current[:, pad : pad + width].unbind(1)
        self.rows = self.data.unbind(1)

    def next_row(self) -> None:
        """Move on to the next image row (the new current row starts as zeros): each row
        copied onto the one above it, top first, so no copy reads a row already replaced."""
        if self.above:
            for upper, lower in zip(self.rows, self.rows[1:]):
                upper.copy_(lower)
            self.current.zero_()

    def set(self, j: int, value: Tensor) -> None:
        """Set pixel ``j`` of the current row to ``value`` ``[n, channels]``."""
        self.slots[j].copy_(value)

    def set_row(self, values: Tensor) -> None:
        """Set the whole current row to ``values`` ``[n, W, channels]``."""
        self.current[:, self.pad : self.pad + self.width] = values


class FrozenConv:
    """A masked convolution evaluated along one row of a ``RowCache``, or at one pixel.

    The kernel is the mask's bounding box, which never reaches below the centre row, so
    only the current row and the ones above are read. At one pixel the output splits into
    the part from the rows above, known for the whole row once the sampler enters it
    (``above_row``, one matrix product per row, bias included), and the part from the
    pixels to the left on the current row, one matrix product with ``current_t`` of a
    contiguous patch (``patches``): ``addmm(above[:, j], patches[j], current_t)``.
    """

    def __init__(self, weight: Tensor, bias: Tensor, offset: tuple[int, int],
                 center_cols: tuple[int, int] | None = None):
        self.weight = weight.contiguous()
        self.bias = bias
        self.rows, self.cols = weight.shape[-2:]
        self.dr, self.dc = offset
        # Does the box reach the centre row (its last row)? Then split it.
        reaches = self.dr + self.rows - 1 == 0 and center_cols is not None
        above = self.weight[:, :, :-1] if reaches else self.weight
        #: The kernel, and its rows above the centre, as [rows * cols * in, out] matrices.
        self.weight_t = channels_last_matrix(self.weight)
        self.above_t = channels_last_matrix(above) if above.shape[2] else None
        c0, c1 = center_cols if reaches else (0, -1)
        #: The centre row's kernel columns c0..c1 (relative to the box), as [cols * in, out].
        centre = self.weight[:, :, -1, c0 : c1 + 1]  # no columns when it does not reach
        self.current_t = centre.permute(2, 1, 0).flatten(0, 1).contiguous()
        self.current_offset, self.current_cols = self.dc + c0, c1 - c0 + 1

    def row(self, cache: RowCache) -> Tensor:
        """The outputs ``[n, W, out]`` along the current row (the whole kernel)."""
        return self.strip_product(cache, self.weight_t)

    def above_row(self, cache: RowCache) -> Tensor:
        """The outputs' part from the rows above, bias included: ``[n, W, out]``, or ``[out]``
        when the kernel only reads the current row."""
        if self.above_t is None:
            return self.bias
        return self.strip_product(cache, self.above_t)

    def above_row_into(self, cache: RowCache, out: Tensor) -> Tensor:
        """``above_row`` written into ``out`` ``[n, W, out]`` (a view whose first two
        dimensions merge, such as the leading channels of a wider buffer)."""
        if self.above_t is None:
            return out.copy_(self.bias.expand_as(out))
        return self.strip_product(cache, self.above_t, out)

    def strip_product(self, cache: RowCache, weight_t: Tensor,
                      out: Tensor | None = None) -> Tensor:
        """A convolution along the row as one matrix product: every pixel's patch (rows,
        columns, channels) a row of a matrix, times the kernel as ``[rows * cols * in, out]``.
        (A convolution call on a strip this small costs far more than the product.) With
        ``out`` ``[n, W, out]``, the product is written there."""
        rows = weight_t.shape[0] // (self.cols * self.weight.shape[1])
        r, c = cache.above + self.dr, cache.pad + self.dc
        n, width = cache.data.shape[0], cache.width
        strip = cache.data[:, r : r + rows, c : c + width + self.cols - 1]
        patches = strip.unfold(2, self.cols, 1).permute(0, 2, 1, 4, 3)  # [n, W, rows, cols, in]
        if out is not None:
            torch.addmm(self.bias, patches.reshape(n * width, -1), weight_t,
                        out=out.view(n * width, -1))
            return out
        product = torch.addmm(self.bias, patches.reshape(n * width, -1), weight_t)
        return product.view(n, width, -1)

    def patches(self, cache: RowCache) -> list[Tensor]:
        """Per pixel ``j`` of the current row, its left patch ``[n, cols * in]``: views."""
        start = cache.pad + self.current_offset
        return [cache.current[:, start + j : start + j + self.current_cols].flatten(1)
                for j in range(cache.width)]


def channels_last_matrix(weight: Tensor) -> Tensor:
    """A kernel ``[out, in, rows, cols]`` as the matrix ``[rows * cols * in, out]``."""
    return weight.permute(2, 3, 1, 0).reshape(-1, weight.shape[0]).contiguous()


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
