"""The masked convolution computes only its mask's bounding box, padded unevenly: the same map
as the full masked kernel with ``k // 2`` padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from zoo_pixelcnn.layers import MaskedConv2d, raster_mask, vertical_mask


def horizontal(k: int, include_center: bool) -> torch.Tensor:
    """A 1 x k mask: the columns left of the centre (and the centre)."""
    mask = torch.zeros(1, k)
    mask[0, : k // 2 + (1 if include_center else 0)] = 1.0
    return mask


MASKS = {
    "type A 7x7": raster_mask(7, 7, include_center=False),
    "type B 3x3": raster_mask(3, 3, include_center=True),
    "vertical, rows above": vertical_mask(3, 5, include_center_row=False),
    "vertical, with the centre row": vertical_mask(5, 3, include_center_row=True),
    "horizontal, left of the centre": horizontal(5, include_center=False),
    "horizontal, with the centre": horizontal(3, include_center=True),
    # Uneven both ways: a box right of the centre, above it (pads right more than left).
    "above, right of the centre": torch.tensor([[0.0, 0.0, 1.0, 1.0, 1.0]] + [[0.0] * 5] * 4),
}


@pytest.mark.parametrize("name", list(MASKS))
def test_the_cropped_box_is_the_full_masked_kernel(name):
    mask = MASKS[name]
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, mask).double()
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    kh, kw = mask.shape
    want = F.conv2d(x, conv.weight * mask.double(), conv.bias, padding=(kh // 2, kw // 2))
    got = conv(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-12)
