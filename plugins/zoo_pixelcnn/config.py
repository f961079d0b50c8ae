"""The ``pixelcnn`` family's config: validated before anything is allocated (no torch at import).

Both the family (``family.py``) and the model (``model.py``) import it; neither imports the other's
module at import time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoo.plugin import ConfigError, ContextFields, bounds, check_shape_field, context_parameters

#: Upper limits checked before anything is allocated.
MAX_SIDE = 4096
MAX_PIXELS = 1 << 22
MAX_PARAMETERS = 1_000_000_000


@dataclass(frozen=True)
class PixelCNNConfig(ContextFields):
    """A PixelCNN over single-channel images of ``shape = [1, H, W]`` with ``levels`` values.

    Pixels are modelled in raster order; every pixel gets ``levels`` logits (a softmax) from
    a stack of masked convolutions that only see the pixels before it.

    - ``variant``: ``plain`` (van den Oord et al., 2016a: a ``first_kernel`` type-A masked
      convolution, then ``layers`` residual blocks 1x1 -> ``kernel`` type-B -> 1x1; it has
      the well-known blind spot up and to the right) or ``gated`` (van den Oord et al.,
      2016b: a vertical stack that sees the rows above and a horizontal stack that sees the
      pixels to the left, joined by 1x1 links, with tanh x sigmoid gates; no blind spot).
    - ``channels``: width of the residual stream; ``head_channels``: width of the 1x1
      output head before the ``levels``-way logits.
    - ``inputs``: how a pixel value enters the network: ``embedding`` (a learned
      ``embedding_dim``-vector per level) or ``scaled`` (one channel, value mapped to
      [-1, 1], which suits many ordered levels).
    - ``dropout`` inside every block, during training only.
    - ``classes`` / ``context`` (``zoo.plugin.context``): a conditional PixelCNN, as in van
      den Oord et al. 2016b: a learned linear map of the context is added inside every
      gate (vertical and horizontal stacks; for ``plain``, before every masked
      convolution's activation). The context is the same at every pixel, so causality in
      the image is untouched.
    """

    shape: tuple[int, ...]
    levels: int = field(metadata=bounds(2, 65536))
    variant: Literal["plain", "gated"] = "gated"
    channels: int = field(default=64, metadata=bounds(2, 4096))
    layers: int = field(default=8, metadata=bounds(0, 256))
    first_kernel: int = field(default=7, metadata=bounds(3, 31))
    kernel: int = field(default=3, metadata=bounds(3, 31))
    head_channels: int = field(default=64, metadata=bounds(1, 8192))
    inputs: Literal["embedding", "scaled"] = "embedding"
    embedding_dim: int = field(default=16, metadata=bounds(1, 4096))
    dropout: float = field(default=0.0, metadata=bounds(0.0, 0.9))

    def validate(self) -> None:
        check_shape_field(self.shape, max_elements=MAX_PIXELS)
        self.validate_context()
        if len(self.shape) != 3 or self.shape[0] != 1:
            raise ConfigError(
                f"shape: pixelcnn models single-channel images, expected [1, H, W], "
                f"got {list(self.shape)}"
            )
        if max(self.shape[1:]) > MAX_SIDE:
            raise ConfigError(f"shape: height and width must be at most {MAX_SIDE}, "
                              f"got {list(self.shape)}")
        for name in ("first_kernel", "kernel"):
            if getattr(self, name) % 2 == 0:
                raise ConfigError(f"{name}: must be odd (a kernel is centred on its pixel), "
                                  f"got {getattr(self, name)}")
        params = self.parameter_count()
        if params > MAX_PARAMETERS:
            raise ConfigError(f"config describes about {params:.3g} parameters, more than "
                              f"{MAX_PARAMETERS:.0e}")

    @property
    def input_channels(self) -> int:
        return self.embedding_dim if self.inputs == "embedding" else 1

    def parameter_count(self) -> int:
        """The number of parameters the config describes (computed without building it)."""
        e, h, k0, k = self.input_channels, self.channels, self.first_kernel, self.kernel
        head = h * self.head_channels + self.head_channels + self.head_channels * self.levels
        head += self.levels
        embed = self.levels * e if self.inputs == "embedding" else 0
        if self.variant == "plain":
            b = max(1, h // 2)
            first = e * h * k0 * k0 + h
            block = h * b + b + b * b * k * k + b + b * h + h
        else:
            first = e * 2 * h * (k0 * k0 + k0) + 4 * h + 4 * h * h + 2 * h
            block = h * 2 * h * (k * k + k) + 4 * h + 4 * h * h + 2 * h + h * h + h
        return (embed + first + self.layers * block + head
                + context_parameters(self, sum(self.context_widths())))

    def context_widths(self) -> list[int]:
        """The widths the context is added to, layer by layer (first layer first): both
        stacks' gate inputs (gated), or each masked convolution's outputs (plain)."""
        h = self.channels
        if self.variant == "plain":
            return [h] + [max(1, h // 2)] * self.layers
        return [4 * h] * (self.layers + 1)
