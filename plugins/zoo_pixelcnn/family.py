"""The ``pixelcnn`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from zoo.family import Family
from zoo_pixelcnn.config import PixelCNNConfig


class PixelCNNFamily(Family):
    """PixelCNN (van den Oord et al., 2016): causal convolutions over images, exact log p."""

    name = "pixelcnn"
    data_kind = "discrete"
    Config = PixelCNNConfig
    description = "PixelCNN (plain or gated) for discrete single-channel images"

    def create(self, config: PixelCNNConfig):
        from zoo_pixelcnn.model import PixelCNN

        return PixelCNN(config)
