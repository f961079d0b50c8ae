"""Conditional models on the user's data: reading each example's context the way training
did, and classifying by Bayes' rule (``zoo classify``).

A model records what its context is (``classes`` or ``context`` names in its config) and,
in its artifact, where training read it from (a table's ``label_column``); ``zoo score``,
``zoo eval --data`` and ``zoo classify`` read it again from the same columns or subfolders,
or from ``--labels FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from zoo.errors import DataError

if TYPE_CHECKING:
    from zoo.data.source import Source
    from zoo.plugin.model import ZooModel


def data_contexts(model: ZooModel, data: Any, source: Source, *, labels: Any = None,
                  required: bool = False) -> Tensor | None:
    """The contexts of ``data``'s examples for ``model``, row for row, or None.

    ``labels``: a ``.npy`` path, an array or a tensor (``--labels``). Otherwise a table's
    given columns (by the names the model records) or its label column, or an image
    folder's subfolders. A label model scored on data without labels gets None (its
    marginal ``p(x)``), unless ``required`` (``zoo classify`` checking accuracy does not
    need them; ``eval`` does not either). A vector model without its columns is an error."""
    from zoo.data import contexts
    from zoo.data.images import ImageFolderSource

    spec = model.context_spec
    if not spec:
        if labels is not None:
            raise DataError("this model is unconditional: it takes no labels")
        return None
    found = None
    if labels is not None:
        found = (contexts.from_labels_file(labels) if isinstance(labels, (str, Path))
                 else contexts.from_values(labels, "labels",
                                           spec.names if spec.kind == "label" else None))
    elif _is_csv(data) and spec.kind == "vector":
        from zoo.data.columns import ColumnChoice, choose
        from zoo.data.tabular import read_table

        table = read_table(Path(data).expanduser())
        missing = [n for n in spec.names if n not in (table.header or [])]
        if missing:
            raise DataError(f"{data}: no column {missing[0]!r}: this model is conditional on "
                            f"{', '.join(spec.names)}, read from those columns")
        found = contexts.DataContext(choose(table, ColumnChoice(spec.names),
                                            recorded=spec.names).source, "vector", spec.names,
                                     "given columns")
    elif _is_csv(data) and label_column_of(model) in _header(data):
        found = contexts.label_column(data, label_column_of(model), len(source), spec.names)
    elif isinstance(source, ImageFolderSource):
        found = contexts.image_folder_labels(source, spec.names)
    if found is None:
        if spec.kind == "vector" or required:
            raise DataError(f"{getattr(source, 'name', data)}: this model is conditional on "
                            f"{spec.describe()}, and the data carries none (pass --labels, or "
                            "the columns or subfolders training read)")
        return None
    if found.kind != spec.kind:
        raise DataError(f"{found.origin}: gives {found.kind}s; this model is conditional on "
                        f"{spec.describe()}")
    values = found.source.read(_all(len(found.source)))
    if len(values) != len(source):
        raise DataError(f"{found.origin}: {len(values)} contexts for {len(source)} examples")
    return values.long().reshape(-1) if spec.kind == "label" else values.float()


def label_column_of(model: ZooModel) -> str | None:
    """The table column a label-conditional model's labels were read from, if any."""
    record = getattr(getattr(model, "artifact", None), "source", None) or {}
    column = record.get("label_column") if isinstance(record, dict) else None
    return str(column) if column is not None else None


def _header(data: Any) -> list[str]:
    """A CSV's first line (its header, when it has one)."""
    import csv

    with open(Path(data).expanduser(), newline="", encoding="utf-8-sig") as f:
        return [c.strip() for c in next(csv.reader(f), [])]


def _is_csv(data: Any) -> bool:
    return isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".csv"


def _all(n: int) -> Any:
    import numpy as np

    return np.arange(n)


@dataclass
class Classification:
    """``zoo classify``: each example's class by Bayes' rule, ``argmax_y log p(x|y) + log
    p(y)``, its posterior ``log p(y|x)`` ``[N, K]``, and the accuracy when the true labels
    are known."""

    predictions: Tensor
    log_posterior: Tensor
    classes: tuple[str, ...]
    accuracy: float | None = None

    def line(self) -> str:
        n = len(self.predictions)
        if self.accuracy is None:
            return f"classified {n} examples into {len(self.classes)} classes"
        return (f"accuracy {self.accuracy:.4f} ({round(self.accuracy * n)} of {n}) over "
                f"{len(self.classes)} classes, by Bayes' rule on the model's log p(x | y) "
                "+ log p(y)")


@torch.no_grad()
def classify(model: ZooModel, x: Tensor, labels: Tensor | None = None, *,
             batch_size: int = 1024) -> Classification:
    """Classify examples ``x`` (as the model takes them) with a label-conditional model."""
    spec = model.context_spec
    if spec.kind != "label":
        raise ValueError("classify needs a label-conditional model (one trained with labels: "
                         "an image folder of class subfolders, --labels or --label-column); "
                         f"this one is conditional on {spec.describe()}")
    prior = model.class_log_prior().detach().double().cpu()
    was_training = model.training
    model.eval()
    try:
        parts = []
        for batch in x.split(batch_size):
            batch = batch.to(model.device)
            scores = torch.stack([
                model.log_likelihood(batch, context=torch.full((len(batch),), k,
                                                               dtype=torch.long,
                                                               device=model.device))
                .double().cpu() for k in range(spec.size)], dim=1)
            parts.append(scores + prior)
    finally:
        model.train(was_training)
    joint = torch.cat(parts) if parts else torch.zeros(0, spec.size, dtype=torch.float64)
    posterior = joint - torch.logsumexp(joint, dim=1, keepdim=True)
    predictions = posterior.argmax(dim=1)
    accuracy = None
    if labels is not None and len(labels):
        accuracy = float((predictions == labels.cpu()).double().mean())
    return Classification(predictions, posterior, spec.names, accuracy)

