"""Scoring the user's data with a trained model: ``zoo.score``, ``zoo score``, ``zoo eval --data``.

One log-density in nats per example, in input order, read from the data's storage batch by
batch. Every batch is checked first (NaN/inf, non-integers, values outside the model's
levels: the error names the row and column), and the feature count must match the model.
Every artifact zoo trains records the distribution of its scores on training and held-out
examples (``log_prob``, ``zoo.artifact.scores``): a score's percentile against the training
examples (``percentiles``), the anomaly threshold (their 1st percentile; older own-data
artifacts have it as the metric ``train_log_prob_p01`` only), and the histograms of
``zoo score --plot`` come from it.
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
#: The CSV column of each score's percentile against the training examples.
PERCENTILE_COLUMN = "train_percentile"
#: Values a scoring batch may produce per example dimension and level (a discrete model's
#: logits are ``[B, D, levels]``): 2**24 floats keep one batch's activations near 64 MB.
BATCH_BUDGET = 1 << 24
MAX_BATCH = 4096
HISTOGRAM_BINS = 60  # bins of the --plot histograms, shared by every series


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
    from zoo.data.image_levels import from_8bit, is_8bit_images

    batch_size = batch_size or default_batch(model.config)
    source, examples = model_input(model, data, split=split)
    kind, levels = examples.kind, getattr(model.config, "levels", None)
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


def model_input(model: ZooModel, data: Any, *, split: str | None = None) -> tuple[Any, Any]:
    """``data`` as the model reads it: its source, and its examples in the model's shape (a
    table with the columns the model was trained on, recorded in the artifact)."""
    from zoo.data.columns import open_table
    from zoo.data.infer import for_model
    from zoo.data.open import open_data
    from zoo.plugin.registry import get_family

    kind = get_family(model.family).data_kind_of(model.config)
    chosen = open_table(data, recorded=recorded_columns(model))
    source = chosen.source if chosen is not None else open_data(data, split=split)
    return source, for_model(source, kind, tuple(model.config.shape))


def some_rows(model: ZooModel, data: Any, limit: int) -> Tensor:
    """Up to ``limit`` rows of ``data`` (every one when there are fewer, else a draw fixed
    by seed 0) as the model takes them: what ``zoo sample --data`` draws under the samples.
    Checked as ``score`` checks them (NaN, infinity)."""
    import torch

    from zoo.data.checks import check_batch

    source, examples = model_input(model, data)
    for start, rows in source.chunks():
        check_batch(rows, start, name=source.name, columns=source.columns, kind=examples.kind,
                    levels=getattr(model.config, "levels", None))
    pick = torch.arange(len(source))
    if len(source) > limit:
        pick = torch.randperm(len(source), generator=torch.Generator().manual_seed(0))[:limit]
        pick = pick.sort().values
    return examples.take(pick.numpy())


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


def distribution_of(model: ZooModel) -> dict[str, Any]:
    """The recorded distribution of the model's scores (``zoo.artifact.scores``; empty for
    a model trained before artifacts recorded it, or not loaded from an artifact)."""
    recorded = getattr(model, "log_prob_distribution", None)
    if recorded is None:
        recorded = getattr(getattr(model, "artifact", None), "log_prob", None)
    return dict(recorded or {})


def percentiles(model: ZooModel, scores: Tensor) -> Tensor | None:
    """Each score's percentile against the model's training examples: the percentage of
    them that score lower (None when the artifact records no training distribution)."""
    import torch

    from zoo.artifact.scores import percentiles as against

    recorded = distribution_of(model)
    if "train" not in recorded:
        return None
    return torch.tensor(against(recorded, "train", scores.tolist()), dtype=torch.float64)


def threshold_of(model: ZooModel) -> float | None:
    """The training data's 1st-percentile log-density, if the artifact recorded it."""
    from zoo.artifact.scores import quantile

    recorded = quantile(distribution_of(model), "train", 1.0)
    if recorded is not None:
        return recorded
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
            return (f"{self.n} examples scored; the model records no distribution of training "
                    "scores, so no percentiles or threshold (an artifact written before zoo "
                    "recorded one: train it again, or `zoo pull --force NAME` a catalog model)")
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


def auroc_line(reference: Tensor, scores: Tensor) -> str:
    """What ``zoo score --reference`` prints: the AUROC, and what it means."""
    return (f"AUROC {auroc(reference, scores):.4f} of {len(scores)} scored examples against "
            f"{len(reference)} reference examples (0.5: log p does not tell them apart; 1: "
            "every reference example scores higher)")


def summarize_scores(scores: Tensor, threshold: float | None) -> Summary:
    below = 0 if threshold is None else int((scores < threshold).sum())
    return Summary(len(scores), threshold, below)


def check_output(path: Path) -> None:
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"{path}: scores are written as {' or '.join(OUTPUT_FORMATS)}")


def csv_text(scores: Tensor, percent: Tensor | None = None) -> str:
    """The scores as CSV: a ``log_prob`` column, and ``train_percentile`` when given."""
    if percent is None:
        return "log_prob\n" + "".join(f"{v:.10g}\n" for v in scores.tolist())
    return f"log_prob,{PERCENTILE_COLUMN}\n" + "".join(
        f"{v:.10g},{p:.2f}\n" for v, p in zip(scores.tolist(), percent.tolist()))


def percentile_note(model: ZooModel) -> str:
    """What the ``train_percentile`` column is."""
    n = distribution_of(model)["train"]["n"]
    return (f"{PERCENTILE_COLUMN}: the percentage of the model's training examples that score "
            f"lower (against the distribution of {n} training examples the artifact records)")


def write_scores(scores: Tensor, path: Path, percent: Tensor | None = None) -> None:
    """``.csv`` (a ``log_prob`` column, and ``train_percentile`` when ``percent`` is given)
    or ``.npy`` (the scores, float64), written atomically."""
    import numpy as np

    check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        if path.suffix.lower() == ".npy":
            with open(part, "wb") as f:
                np.save(f, scores.numpy())
        else:
            part.write_text(csv_text(scores, percent))
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def plot_scores(scores: Tensor, model: ZooModel, path: Path, *,
                reference: Tensor | None = None, name: str = "scored data",
                reference_name: str = "reference data") -> None:
    """Histograms of the scored ``log p`` (and of the ``reference`` data's), with the
    distribution the artifact records for the model's training examples, over the same bins
    on one axis; the training 1st percentile marked."""
    import numpy as np

    from zoo import pictures
    from zoo.artifact.scores import fractions

    recorded = distribution_of(model)
    values = scores.numpy()[np.isfinite(scores.numpy())]
    other = None if reference is None else reference.numpy()[np.isfinite(reference.numpy())]
    ends = [values.min(), values.max()] if len(values) else []
    if other is not None and len(other):
        ends += [other.min(), other.max()]
    if "train" in recorded:
        ends += [recorded["train"]["quantiles"][0], recorded["train"]["quantiles"][-1]]
    low, high = (min(ends), max(ends)) if ends else (-1.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    series = [pictures.Histogram(f"{name}\n({len(values)} examples)", _binned(values, edges))]
    if other is not None:
        series.append(pictures.Histogram(f"{reference_name}\n({len(other)} examples)",
                                          _binned(other, edges)))
    if "train" in recorded:
        series.append(pictures.Histogram(
            f"training examples\n(recorded: {recorded['train']['n']})",
            fractions(recorded, "train", edges.tolist())))
    threshold = threshold_of(model)
    marks = [] if threshold is None else [(f"training 1st percentile\n({threshold:.4g})",
                                           threshold)]
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part.png")
    try:
        pictures.histograms(series, edges.tolist(), part, marks=marks, xlabel="log p(x) (nats)",
                            title=f"{len(scores)} examples scored")
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _binned(values: Any, edges: Any) -> list[float]:
    import numpy as np

    counts = np.histogram(values, edges)[0]
    return (counts / max(1, len(values))).tolist()


def classify_data(model: ZooModel, data: Any, *, labels: Any = None,
                  batch_size: int | None = None) -> Any:
    """``zoo classify NAME --data SOURCE``: read ``data`` as ``zoo score`` does (with its
    labels, when it carries them, for the accuracy) and classify every example."""
    import torch

    from zoo.api.conditioning import classify, data_contexts
    from zoo.errors import DataError

    read = model_batches(model, data, batch_size=batch_size)
    x = torch.cat([batch for _, batch in read.batches]) if len(read.source) else None
    if x is None:
        raise DataError(f"{data}: no examples to classify")
    truth = data_contexts(model, data, read.source, labels=labels)
    return classify(model, x, truth)
