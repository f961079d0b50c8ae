"""The ``pixelcnn`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from zoo.plugin import Family
from zoo_pixelcnn.config import PixelCNNConfig


class PixelCNNFamily(Family):
    """PixelCNN (van den Oord et al., 2016): causal convolutions over images, exact log p."""

    name = "pixelcnn"
    data_kind = "discrete"
    Config = PixelCNNConfig
    description = "PixelCNN (plain or gated) for discrete single-channel images"
    contexts = ("label", "vector")

    def create(self, config: PixelCNNConfig):
        from zoo_pixelcnn.model import PixelCNN

        return PixelCNN(config)

    def inert_config_keys(self, config: PixelCNNConfig) -> dict[str, str]:
        """Keys that leave the model unchanged (for the conformance kit's ``config_keys``)."""
        inert = {"dropout": "used in training only"}
        if config.inputs != "embedding":
            inert["embedding_dim"] = "used only with inputs: embedding"
        return inert
