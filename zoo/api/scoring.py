"""Scoring the user's data with a trained model: ``zoo.score``, ``zoo score``, ``zoo eval --data``.

One log-density in nats per example, in input order, read from the data's storage batch by
batch. Every batch is checked first (NaN/inf, non-integers, values outside the model's
levels: the error names the row and column), and the feature count must match the model.
The anomaly threshold is the training data's 1st-percentile log-density, recorded in the
artifact's metrics by ``zoo train --data``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

    from zoo.infer.evaluation import Evaluation
    from zoo.plugin.model import ZooModel

OUTPUT_FORMATS = (".csv", ".npy")
#: The artifact metric ``zoo train --data`` records: the 1st percentile of log p(x) over
#: training examples, below which ``zoo score`` counts an example as unusual.
THRESHOLD_METRIC = "train_log_prob_p01"
#: Values a scoring batch may produce per example dimension and level (a discrete model's
#: logits are ``[B, D, levels]``): 2**24 floats keep one batch's activations near 64 MB.
BATCH_BUDGET = 1 << 24
MAX_BATCH = 4096


def default_batch(config: Any) -> int:
    """A scoring batch size that bounds memory: 4096 vectors, ~80 MNIST images at 256 levels."""
    size = math.prod(getattr(config, "shape", (1,))) * (getattr(config, "levels", None) or 1)
    return max(1, min(MAX_BATCH, BATCH_BUDGET // max(1, size)))


def as_model(model_or_name: Any) -> ZooModel:
    from zoo.plugin.model import ZooModel

    if isinstance(model_or_name, ZooModel):
        return model_or_name
    from zoo.api import load

    return load(model_or_name)


def score(model_or_name: Any, data: Any, *, batch_size: int | None = None,
          split: str | None = None, labels: Any = None) -> Tensor:
    """``log p(x)`` in nats of every example of ``data``, in input order (float64 ``[N]``).

    ``model_or_name`` is a model, a catalog name, ``hf-hub:ORG/REPO`` or an artifact folder;
    ``data`` is anything ``zoo.fit`` takes. ``batch_size`` defaults to ``default_batch``.
    A conditional model scores ``log p(x | context)`` with each example's context read as
    training read it (``zoo.api.conditioning.data_contexts``; ``labels`` gives them), and a
    label model whose data carries no labels scores the marginal ``log p(x)``.
    """
    import torch

    from zoo.api.conditioning import data_contexts
    from zoo.infer.evaluation import NOISE_SEED

    model = as_model(model_or_name)
    read = model_batches(model, data, batch_size=batch_size, split=split)
    contexts = data_contexts(model, data, read.source, labels=labels)
    was_training = model.training
    model.eval()
    out = []
    # A dequantized model scores levels by its bound, with the evaluation's fixed noise.
    generator = torch.Generator().manual_seed(NOISE_SEED)
    try:
        with torch.no_grad():
            for start, x in read.batches:
                given = ({} if contexts is None else
                         {"context": contexts[start:start + len(x)].to(model.device)})
                out.append(model.log_likelihood(x.to(model.device), generator=generator,
                                                **given).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@dataclass
class Reading:
    """``data`` read for a model: its source, and ``(first_row, batch)`` as the model takes
    them (checked, 8-bit pictures as the model's levels), read as iterated."""

    source: Any
    batches: Iterator[tuple[int, Tensor]]


def model_batches(model: ZooModel, data: Any, *, batch_size: int | None = None,
                  split: str | None = None) -> Reading:
    """The one way scoring reads user data for a model: a table with the columns the model
    was trained on, the values checked batch by batch, naming the row and column."""
    from zoo.data.checks import check_batch
    from zoo.data.columns import open_table
    from zoo.data.image_levels import from_8bit, is_8bit_images
    from zoo.data.infer import for_model
    from zoo.data.open import open_data
    from zoo.plugin.registry import get_family

    batch_size = batch_size or default_batch(model.config)
    kind = get_family(model.family).data_kind_of(model.config)
    # A table is read with the columns the model was trained on (recorded in the artifact).
    chosen = open_table(data, recorded=recorded_columns(model))
    source = chosen.source if chosen is not None else open_data(data, split=split)
    examples = for_model(source, kind, tuple(model.config.shape))
    levels = getattr(model.config, "levels", None)
    # 8-bit pictures are read as a model's levels by one rule everywhere (zoo.data.image_levels).
    pictures = kind == "discrete" and levels is not None and is_8bit_images(source)

    def batches() -> Iterator[tuple[int, Tensor]]:
        for start, rows in source.chunks(batch_size):
            if pictures:
                rows = from_8bit(rows, levels)
            check_batch(rows, start, name=source.name, columns=source.columns, kind=kind,
                        levels=levels)
            yield start, examples.convert(rows)

    return Reading(source, batches())


def recorded_columns(model: ZooModel) -> list[str] | None:
    """The table columns ``zoo train --data`` chose for ``model`` (None: every column)."""
    artifact = getattr(model, "artifact", None)
    source = getattr(artifact, "source", None) or {}
    columns = source.get("columns") if isinstance(source, dict) else None
    return [str(c) for c in columns] if isinstance(columns, list) else None


def grid_note(model: ZooModel) -> str | None:
    """The line that says a table model's NLL is a bound for its columns on a grid."""
    grid = getattr(model.config, "grid", None)
    if not grid or not any(step > 0 for step in grid):
        return None
    names = recorded_columns(model) or [str(i) for i in range(len(grid))]
    on = ", ".join(f"{n!r} (step {s:g})" for n, s in zip(names, grid) if s > 0)
    return (f"columns on a grid: {on}; they are dequantized with uniform noise of one step, "
            "so the NLL is an upper bound for the recorded values, comparable with a density "
            "over bins of that width")


def evaluate_data(model_or_name: Any, data: Any, *, batch_size: int | None = None,
                  split: str | None = None, labels: Any = None) -> Evaluation:
    """Mean NLL (nats per example) of ``data`` with its standard error, and bits/dim
    (``log p(x | context)`` for a conditional model: see ``score``)."""
    from zoo.infer.evaluation import summarize

    model = as_model(model_or_name)
    log_p = score(model, data, batch_size=batch_size, split=split, labels=labels)
    # A dequantized model's scores are bounds: its mean NLL is an upper bound ("≤").
    return summarize(-log_p, math.prod(model.config.shape),
                     bound=bool(getattr(model, "likelihood_bound", False)))


def threshold_of(model: ZooModel) -> float | None:
    """The training data's 1st-percentile log-density, if the artifact recorded it."""
    metrics = getattr(model, "metrics", None) or {}
    artifact = getattr(model, "artifact", None)
    if artifact is not None:
        metrics = {**getattr(artifact, "metrics", {}), **metrics}
    value = metrics.get(THRESHOLD_METRIC)
    return None if value is None else float(value)


@dataclass(frozen=True)
class Summary:
    n: int
    threshold: float | None
    below: int

    @property
    def fraction_below(self) -> float | None:
        return None if self.threshold is None or not self.n else self.below / self.n

    def line(self) -> str:
        if self.threshold is None:
            return (f"{self.n} examples scored; the model records no training threshold "
                    "(train it with `zoo train --data` to get one)")
        return (f"{self.below} of {self.n} examples ({100 * (self.fraction_below or 0):.2f}%) "
                f"score below the training data's 1st percentile ({self.threshold:.4f} nats)")


def auroc(reference: Tensor, scores: Tensor) -> float:
    """The probability that a reference example scores above an example of ``scores`` (ties
    count half): the area under the ROC curve of ``log p`` as a detector of the scored data
    against the reference. 0.5: log p does not tell them apart; 1: every reference example
    scores above every scored one. From the ranks (Mann-Whitney), in O(n log n)."""
    import torch

    both = torch.cat([reference.double(), scores.double()])
    order = torch.argsort(both, stable=True)
    ranks = torch.empty_like(both)
    ranks[order] = torch.arange(1, len(both) + 1, dtype=torch.float64)
    # Tied values share the mean of their ranks.
    values, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, ranks)
    ranks = (sums / counts)[inverse]
    n_ref, n = len(reference), len(scores)
    if not n_ref or not n:
        raise ValueError("AUROC needs reference and scored examples")
    u = float(ranks[:n_ref].sum()) - n_ref * (n_ref + 1) / 2
    return u / (n_ref * n)


def summarize_scores(scores: Tensor, threshold: float | None) -> Summary:
    below = 0 if threshold is None else int((scores < threshold).sum())
    return Summary(len(scores), threshold, below)


def check_output(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: scores are written as {' or '.join(OUTPUT_FORMATS)}")


def csv_text(scores: Tensor) -> str:
    return "log_prob\n" + "".join(f"{v:.10g}\n" for v in scores.tolist())


def write_scores(scores: Tensor, path: Path) -> None:
    """``.csv`` (a ``log_prob`` column) or ``.npy`` (float64), written atomically."""
    import numpy as np

    check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        if path.suffix.lower() == ".npy":
            with open(part, "wb") as f:
                np.save(f, scores.numpy())
        else:
            part.write_text(csv_text(scores))
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def plot_scores(scores: Tensor, threshold: float | None, path: Path) -> None:
    """A histogram of per-example log-densities, the training 1st percentile marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = scores.numpy()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    try:
        ax.hist(values, bins=min(100, max(10, int(math.sqrt(len(values))))), color="#4c72b0")
        if threshold is not None:
            ax.axvline(threshold, color="#c44e52", linestyle="--",
                       label=f"training 1st percentile ({threshold:.3g})")
            ax.legend(loc="upper left", frameon=False)
        ax.set_xlabel("log p(x) (nats)")
        ax.set_ylabel("examples")
        ax.set_title(f"{len(values)} examples scored")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part.png")
        try:
            fig.savefig(part)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
    finally:
        plt.close(fig)
