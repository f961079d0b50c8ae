"""The ``made`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from typing import Any

from zoo.plugin import Family
from zoo_made.config import MADEConfig


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

    def upgrade_tensors(self, config: MADEConfig, tensors: dict[str, Any]) -> dict[str, Any]:
        """Artifacts written before one-mask layers were packed hold each layer's dense
        ``weight`` [out, in]; today's layer holds only the live entries, ``live_weight``
        (``zoo_made.layers``), which this takes from the dense one. Ensembles are unchanged."""
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
