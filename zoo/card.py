"""The model card (``README.md``) of an artifact, with front matter the Hub understands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zoo.artifacts import ArtifactConfig


def model_card(cfg: ArtifactConfig) -> str:
    """A model card for ``cfg``: YAML front matter (``library_name: zoo``, tags, data, metrics)."""
    from huggingface_hub import ModelCardData

    title = cfg.name or f"{cfg.family} model"
    data = ModelCardData(
        library_name="zoo",
        license="mit",
        tags=["zoo", cfg.family, "density-estimation", "exact-likelihood"],
        datasets=[cfg.dataset] if cfg.dataset else None,
        metrics=sorted(cfg.metrics) or None,
        model_name=title,
    )
    front = data.to_yaml()
    if cfg.metrics:
        rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in sorted(cfg.metrics.items()))
        metrics = f"| metric | value |\n| --- | --- |\n{rows}\n"
    else:
        metrics = "Not evaluated.\n"
    usage = cfg.name or "PATH/TO/ARTIFACT"
    return (
        f"---\n{front}\n---\n\n# {title}\n\n{cfg.description or 'A zoo model.'}\n\n"
        f"- family: `{cfg.family}`\n- dataset: `{cfg.dataset or 'unknown'}`\n\n"
        f"## Metrics (test split, nats per example)\n\n{metrics}\n"
        f"## Use\n\n```python\nimport zoo\n\nmodel = zoo.load({usage!r})\n"
        f"x = model.sample(16)\nlog_p = model.log_prob(x)\n```\n"
    )
