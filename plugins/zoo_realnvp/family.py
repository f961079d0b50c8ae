"""The ``realnvp`` family: how to build a model from its config (no torch at import)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from zoo.plugin import Family, Images, image_budget
from zoo_realnvp.config import IMAGE_ONLY, MAX_WHITEN, TABLE_KEYS, VECTOR_ONLY, RealNVPConfig


class RealNVPFamily(Family):
    """Real-valued non-volume-preserving flow (Dinh et al., 2017).

    ``data_kind`` is ``"continuous"``: ``log_prob`` is a density of float values. A config
    with ``levels`` fits discrete images through uniform dequantization: its models score
    and sample integer levels, and the NLL they report is an upper bound
    (``likelihood_bound``).
    """

    name = "realnvp"
    data_kind = "continuous"
    Config = RealNVPConfig
    description = "RealNVP affine coupling flow for continuous vectors and images"
    contexts = ("label", "vector")

    def likelihood_bound(self, config: Any) -> bool:
        cfg = self.parse_config(config)
        return cfg.levels is not None or any(step > 0 for step in cfg.grid or ())

    def data_kind_of(self, config: Any) -> str:
        """``"discrete"`` with ``levels`` (dequantized integer images), else continuous."""
        return "discrete" if self.parse_config(config).levels is not None else "continuous"

    def config_dict(self, config: RealNVPConfig) -> dict[str, Any]:
        """The stored config without the fields the other shape ignores: a vector model's
        ``config.json`` stays exactly what it was before image flows existed."""
        data = super().config_dict(config)
        for name in (VECTOR_ONLY if config.is_image else IMAGE_ONLY):
            data.pop(name, None)
        for name, default in TABLE_KEYS.items():
            if data.get(name, default) == default:
                data.pop(name, None)
        return data

    def config_for_table(self, rows: int, columns: int) -> dict[str, Any]:
        """The config ``zoo train realnvp --data TABLE`` starts from (``zoo.data.columns``
        decides ``grid``): standardized columns, so a spline's box [-4, 4] covers the bulk of
        every column, and spline couplings, which fit skewed and multimodal columns that
        affine couplings need many layers for; a network that grows with the rows, because a
        few hundred rows overfit a wide one (the training split's early stopping guards it),
        and fewer couplings past 20,000 rows, where the step's cost bounds the run."""
        hidden = 32 if rows < 500 else 64 if rows < 20_000 else 96
        couplings = max(4, min(8 if rows < 20_000 else 6, 2 * columns))
        return {"standardize": True, "coupling": "spline", "bins": 8, "spline_bound": 4.0,
                "couplings": couplings, "hidden": hidden, "layers": 2}

    def table_alternatives(self, rows: int, columns: int) -> list[dict[str, Any]]:
        """Configs worth training beside ``config_for_table``'s, the better one on the
        validation rows kept: the full-covariance map (``whiten``) on tables of a few
        columns or more. It wins where a Gaussian's linear dependence is most of the
        structure (breast cancer, 30 columns: 3.3 nats better, where the diagonal map lost
        to the Gaussian by 3.3) and loses on small tables whose shape is not linear (iris,
        wine: 0.7 and 2.9 nats worse), so neither can be the default alone. Past 20,000 rows
        the second run would not fit the time budget."""
        if rows >= 20_000 or not 3 <= columns <= MAX_WHITEN:
            return []
        return [{"whiten": True}]

    def config_for_images(self, images: Images) -> dict[str, Any]:
        """``zoo train realnvp --data IMAGES``: the multi-scale flow of ``realnvp-digits`` and
        ``realnvp-mnist-cpu`` (one residual block of 16 channels in every coupling), with a
        third scale from 32 pixels a side, where two squeezes leave 8x8 maps."""
        return {"scales": 2 if images.side < 32 else 3, "blocks": 1, "hidden": 16}

    def recipe_for_images(self, images: Images) -> dict[str, Any]:
        """About 75 passes over a few thousand images; 3 over many, up to the CPU-tier
        entry's 5,000 steps of 32 images."""
        if images.few:
            return image_budget(images, batch_size=64, lr=0.003, epochs=75,
                                steps_at_mnist=1500, evals=6)
        return image_budget(images, batch_size=32, lr=0.002, epochs=3, steps_at_mnist=5000,
                            evals=5, warmup_steps=100, grad_clip=100.0)

    def create(self, config: RealNVPConfig):
        if config.is_image:
            from zoo_realnvp.multiscale import MultiScaleRealNVP

            return MultiScaleRealNVP(config)
        from zoo_realnvp.model import RealNVP

        return RealNVP(config)

    def upgrade_tensors(self, config: RealNVPConfig, tensors: dict[str, Any]) -> dict[str, Any]:
        """Vector flows stored before their coupling networks were stacked load as they were
        (``zoo_realnvp.model.stacked_layout``)."""
        if config.is_image:
            return tensors
        from zoo_realnvp.model import stacked_layout

        return stacked_layout(config, tensors)

    def inert_config_keys(self, config: RealNVPConfig) -> dict[str, str]:
        """Keys this config does not use (for the conformance kit's ``config_keys`` check)."""
        if config.is_image:
            inert = {k: "used only by vectors (images use scales and blocks)"
                     for k in ("couplings", "layers", "masks", "mask_seed", "coupling", "bins",
                               "spline_bound")}
            if config.levels is None:
                inert["alpha"] = "used only with levels (the logit preprocessing)"
            return inert
        from zoo_realnvp.model import split_halves

        alternate = split_halves(replace(config, masks="alternate"))
        drawn = split_halves(replace(config, masks="random"))
        inert = {}
        if all(a.equal(b) for a, b in zip(alternate, drawn)):
            inert["masks"] = (f"mask_seed {config.mask_seed} splits the {config.shape[0]} "
                              "coordinates into the even and odd ones too")
        if config.masks == "alternate":
            inert["mask_seed"] = "used only with masks: random"
        inert["standardize"] = ("starts as the identity; training sets it from the rows")
        if config.grid is None or not any(step > 0 for step in config.grid):
            inert["grid"] = "no column on a grid"
        if config.coupling != "spline":
            inert["bins"] = inert["spline_bound"] = "used only with coupling: spline"
        else:
            inert["scale_bound"] = "used only with coupling: affine"
        return inert
