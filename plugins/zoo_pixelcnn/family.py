"""The ``pixelcnn`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from typing import Any

from zoo.plugin import Family, Images, image_budget
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

    def config_for_images(self, images: Images) -> dict[str, Any]:
        """``zoo train pixelcnn --data IMAGES``: a receptive field that follows the image
        (2 layers after a 5x5 first one on 8x8 digits, 5 after a 7x7 on 28x28, at most 8),
        32 channels, which a 2-core machine trains in minutes; residual blocks for black and
        white images (van den Oord et al.'s binarized PixelCNN), gated layers for more
        levels; dropout 0.3 on a few thousand images (``pixelcnn-digits``,
        ``pixelcnn-binarized-mnist-cpu``)."""
        keys: dict[str, Any] = {
            "variant": "plain" if images.levels == 2 else "gated", "channels": 32,
            "layers": max(2, min(8, images.side // 5)),
            "first_kernel": 5 if images.side < 16 else 7, "head_channels": 32}
        if images.few:
            keys["dropout"] = 0.3
        return keys

    def recipe_for_images(self, images: Images) -> dict[str, Any]:
        """30 passes over a few thousand images; 5 over many, up to the CPU-tier entry's
        8,000 steps of 32 images."""
        if images.few:
            return image_budget(images, batch_size=64, lr=0.003, epochs=30,
                                steps_at_mnist=1000, evals=12)
        return image_budget(images, batch_size=32, lr=0.002, epochs=5, steps_at_mnist=8000,
                            evals=8, warmup_steps=200, grad_clip=1.0)

    def inert_config_keys(self, config: PixelCNNConfig) -> dict[str, str]:
        """Keys that leave the model unchanged (for the conformance kit's ``config_keys``)."""
        inert = {"dropout": "used in training only"}
        if config.inputs != "embedding":
            inert["embedding_dim"] = "used only with inputs: embedding"
        return inert
