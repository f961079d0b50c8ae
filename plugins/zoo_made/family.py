"""The ``made`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from typing import Any

from zoo.plugin import Family, Images, image_budget
from zoo_made.config import MADEConfig

#: One-hot inputs up to this many values an image (pixels x levels); embedded beyond it,
#: where a one-hot first layer would hold hundreds of millions of weights (28x28 at 256).
ONE_HOT_INPUTS = 8192
#: An ensemble of orderings up to this many pixels an image: its masks, and the sampler's
#: float64 products of each, cost the ensemble's size times a network's memory (a 28x28
#: ensemble of 8 samples in 1.5 GB).
ENSEMBLE_PIXELS = 256


class MADEFamily(Family):
    """Masked Autoencoder for Distribution Estimation (Germain et al., 2015)."""

    name = "made"
    data_kind = "discrete"
    Config = MADEConfig
    description = "MADE masked autoregressive MLP for discrete images (C levels)"
    contexts = ("label", "vector")
    # Artifacts written before these keys existed: two logits per binary position, and the
    # first Bernoulli heads read each bit as 0 or 1.
    added_config_keys = {"head": "categorical", "bit_inputs": "binary"}

    def create(self, config: MADEConfig):
        from zoo_made.model import MADE

        return MADE(config)

    def config_for_images(self, images: Images) -> dict[str, Any]:
        """``zoo train made --data IMAGES``: a Bernoulli logit per pixel for two levels, and
        embedded inputs with a rank-8 output for many levels on large images (``made-mnist-
        cpu``); for a few thousand images, dropout 0.5, which they overfit without, and on
        small images an order-agnostic ensemble of 8 orderings (``made-digits``); for many,
        one natural ordering of 500 units (``made-binarized-mnist-cpu``, as Germain et
        al.'s)."""
        keys: dict[str, Any] = {"hidden": [512] if images.few else [500]}
        if images.levels == 2:
            keys["head"] = "bernoulli"
        elif images.pixels * images.levels > ONE_HOT_INPUTS:
            keys.update(inputs="embedding", embedding_dim=8, output_rank=8)
        if images.few:
            keys["dropout"] = 0.5
            if images.pixels <= ENSEMBLE_PIXELS:
                keys.update(ordering="random", masks=8, mask_training="sample")
        return keys

    def recipe_for_images(self, images: Images) -> dict[str, Any]:
        """About 75 passes over a few thousand images; over many, 50 passes of binary
        images or 3 of many levels, up to 20,000 and 5,000 steps: made-mnist-cpu's budget,
        and less than made-binarized-mnist-cpu's 24,000, since images binarized once (not
        drawn again every epoch, as the entry's are) gain less from the last passes."""
        if images.few:
            return image_budget(images, batch_size=64, lr=0.003, epochs=75,
                                steps_at_mnist=3000, evals=15)
        if images.levels == 2:
            return image_budget(images, batch_size=100, lr=0.002, epochs=50,
                                steps_at_mnist=20_000, evals=10)
        return image_budget(images, batch_size=32, lr=0.002, epochs=3, steps_at_mnist=5000,
                            evals=5, warmup_steps=100, grad_clip=1.0)

    def upgrade_tensors(self, config: MADEConfig, tensors: dict[str, Any]) -> dict[str, Any]:
        """Artifacts written before hold each one-mask layer's dense ``weight`` [out, in],
        or its ``live_weight`` and ``bias``; today's MADE holds the live entries of them all
        in one flat parameter, ``packed`` (``zoo_made.layers``), which
        ``pack_stored_weights`` builds from either. Ensembles are unchanged."""
        from zoo_made.model import pack_stored_weights

        return pack_stored_weights(config, tensors)

    def inert_config_keys(self, config: MADEConfig) -> dict[str, str]:
        """Keys that leave the model unchanged (for the conformance kit's ``config_keys``)."""
        inert = {"dropout": "used in training only", "mask_training": "used in training only"}
        if config.inputs != "embedding":
            inert["embedding_dim"] = "used only with inputs: embedding"
        if not config.bernoulli:
            inert["head"] = "auto and categorical are the same head except for two levels"
        if not config.bernoulli or config.inputs == "embedding":
            inert["bit_inputs"] = "used only by a bernoulli head with one-hot inputs"
        return inert
