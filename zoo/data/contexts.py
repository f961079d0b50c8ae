"""The context user data carries, row for row: labels or given columns.

Where it comes from:

- a folder of images with one subfolder per class (torchvision's ``ImageFolder`` layout):
  each image's subfolder is its label, and the subfolder names are the class names;
- ``--labels labels.npy`` (or ``context=`` in Python): an integer array is one label per
  example, a float array ``[N, d]`` a context vector;
- a table's ``--given a,b`` columns (the context vector; the model learns the other
  columns given them), or its ``--label-column c`` (any values, text included: each
  distinct value is a class).

``DataContext.attach`` puts it beside the examples (``Examples.context``), which is how the
trainer, ``zoo eval`` and ``zoo score`` read it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zoo.data.source import ArraySource, Examples, Source
from zoo.errors import DataError


@dataclass
class DataContext:
    """Contexts row for row with the data: ``kind``, and the class or feature ``names``."""

    source: Source
    kind: Literal["label", "vector"]
    names: tuple[str, ...]
    #: Where they came from, for the line ``zoo train`` prints.
    origin: str

    def attach(self, examples: Examples) -> Examples:
        if len(self.source) != len(examples):
            raise DataError(f"{self.origin}: {len(self.source)} contexts for "
                            f"{len(examples)} examples of {examples.name}")
        return Examples(examples.source, examples.kind, examples.shape, redraw=examples.redraw,
                        context=self.source, context_kind=self.kind, context_names=self.names)

    def describe(self) -> str:
        if self.kind == "label":
            shown = ", ".join(self.names[:10]) + (", ..." if len(self.names) > 10 else "")
            return f"{len(self.names)} classes from {self.origin} ({shown})"
        return f"{len(self.names)} given values from {self.origin} ({', '.join(self.names)})"


def from_values(values: Any, origin: str, classes: Sequence[str] | None = None) -> DataContext:
    """Contexts given as an array or tensor: integers are labels ``0..K-1`` (class names
    ``classes``, or the numbers), floats a vector per row (``[N]`` or ``[N, d]``)."""
    import torch

    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) \
        else np.asarray(values)
    if array.dtype.kind in "iub":
        labels = array.reshape(-1).astype(np.int64)
        if labels.size and labels.min() < 0:
            raise DataError(f"{origin}: label {int(labels.min())} is negative; labels are "
                            "class indices 0..K-1")
        count = int(labels.max()) + 1 if labels.size else 0
        names = tuple(classes) if classes is not None else tuple(str(k) for k in range(count))
        if count > len(names):
            raise DataError(f"{origin}: label {count - 1} is not one of the {len(names)} classes")
        if len(names) < 2:
            raise DataError(f"{origin}: labels need at least two classes, got {len(names)}")
        return DataContext(ArraySource(labels, origin), "label", names, origin)
    if array.dtype.kind != "f":
        raise DataError(f"{origin}: contexts must be numbers (integer labels or real "
                        f"values), got {array.dtype}")
    vectors = array.reshape(len(array), -1).astype(np.float32)
    if not np.isfinite(vectors).all():
        row, col = np.argwhere(~np.isfinite(vectors))[0]
        raise DataError(f"{origin}: row {row}, column {col}: {vectors[row, col]} is not a "
                        "finite number")
    names = tuple(f"c{i}" for i in range(vectors.shape[1]))
    return DataContext(ArraySource(vectors, origin), "vector", names, origin)


def from_labels_file(path: str | Path) -> DataContext:
    """``--labels FILE``: a ``.npy`` of integer labels (or float context rows)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file (--labels takes a .npy of labels)")
    if path.suffix.lower() != ".npy":
        raise DataError(f"{path}: --labels takes a .npy file, one label per example")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({' '.join(str(exc).split())})") \
            from None
    return from_values(array, str(path))


def from_image_folder(source: Any) -> DataContext | None:
    """The labels of an ``ImageFolder`` layout: every image one folder below the top, in
    subfolders named after the classes (at least two). None when the images are not laid
    out that way (all at the top, or at mixed depths). A class folder without images is an
    error: it names a class the model could never learn."""
    root = Path(source.name)
    parts = [f.relative_to(root).parts for f in source.files]
    if any(len(p) < 2 for p in parts):
        return None
    classes = sorted({p[0] for p in parts})
    empty = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in classes
                   and not d.name.startswith("."))
    if empty:
        raise DataError(f"{root / empty[0]}: a class folder with no .png or .jpg images "
                        "(every subfolder of an image folder is a class)")
    if len(classes) < 2:
        return None
    index = {name: k for k, name in enumerate(classes)}
    labels = np.array([index[p[0]] for p in parts], dtype=np.int64)
    return DataContext(ArraySource(labels, f"{root} (subfolders)"), "label", tuple(classes),
                       f"the subfolders of {root}")


def image_folder_labels(source: Any, classes: Sequence[str]) -> DataContext | None:
    """Labels of an image folder scored by a model of ``classes``: each subfolder must be
    one of them (``zoo score``/``zoo eval`` read the context as training did). None when
    the images are not laid out in class subfolders."""
    found = from_image_folder(source)
    if found is None:
        return None
    index = {name: k for k, name in enumerate(classes)}
    unknown = [name for name in found.names if name not in index]
    if unknown:
        raise DataError(f"{Path(source.name) / unknown[0]}: {unknown[0]!r} is not a class of "
                        f"this model (classes: {', '.join(classes[:20])})")
    remap = np.array([index[name] for name in found.names], dtype=np.int64)
    labels = remap[found.source.read(np.arange(len(found.source))).numpy()]
    return DataContext(ArraySource(labels, found.origin), "label", tuple(classes), found.origin)


def label_column(path: str | Path, column: str, rows: int,
                 classes: Sequence[str] | None = None) -> DataContext:
    """A CSV column as labels: each distinct value (text or number) a class, numbers in
    numeric order, text in sorted order; ``classes`` (a trained model's) fixes the order."""
    path = Path(path).expanduser()
    values = read_column(path, column)
    if len(values) != rows:
        raise DataError(f"{path}: --label-column {column}: {len(values)} values for {rows} "
                        "rows (rows dropped for missing values keep their label: drop them "
                        "from the file instead)")
    for row, value in enumerate(values):
        if not value:
            raise DataError(f"{path}: row {row}, column {column}: an empty label")
    if classes is None:
        distinct = set(values)
        try:
            ordered = sorted(distinct, key=float)
        except ValueError:
            ordered = sorted(distinct)
        classes = tuple(ordered)
        if len(classes) < 2:
            raise DataError(f"{path}: --label-column {column} holds one value, "
                            f"{classes[0]!r}; a label needs at least two classes")
    index = {name: k for k, name in enumerate(classes)}
    for row, value in enumerate(values):
        if value not in index:
            raise DataError(f"{path}: row {row}, column {column}: {value!r} is not a class of "
                            f"this model (classes: {', '.join(list(classes)[:20])})")
    labels = np.array([index[v] for v in values], dtype=np.int64)
    return DataContext(ArraySource(labels, f"{path} ({column})"), "label", tuple(classes),
                       f"column {column}")


def read_column(path: Path, column: str) -> list[str]:
    """The cells of one named column of a CSV with a header, stripped, blank lines skipped
    (as ``zoo.data.tabular.read_table`` skips them)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        lines = [cells for cells in csv.reader(f)
                 if cells and not (len(cells) == 1 and not cells[0].strip())]
    header = [c.strip() for c in lines[0]] if lines else []
    if column not in header:
        raise DataError(f"{path}: no column named {column!r} (columns: "
                        f"{', '.join(header[:20])})")
    i = header.index(column)
    return [cells[i].strip() for cells in lines[1:]]


def table_with_context(path: str | Path, choice: Any, given: Sequence[str] = (),
                       label: str | None = None, *, training: bool = True,
                       classes: Sequence[str] | None = None) -> tuple[Any, DataContext]:
    """A CSV's modelled columns (a ``zoo.data.columns.Chosen``) and its context: the
    ``given`` columns as a vector, or the ``label`` column as labels. The context's columns
    are never modelled; a missing value in them is refused like any other."""
    from zoo.data.columns import ColumnChoice, choose
    from zoo.data.tabular import read_table

    path = Path(path).expanduser()
    if given and label:
        raise DataError("--given and --label-column: a model takes one kind of context")
    choice = choice or ColumnChoice()
    if choice.drop_missing:
        raise DataError("--drop-missing with --given or --label-column: drop the rows from "
                        "the file instead, so that each row keeps its context")
    table = read_table(path)
    named = tuple(given) if given else (label,)
    header = table.header or []
    for name in named:
        if name not in header:
            flag = "--given" if given else "--label-column"
            raise DataError(f"{path}: {flag} {name}: no such column (columns: "
                            f"{', '.join(header[:20])})")
    keep = None if choice.columns is None else tuple(c for c in choice.columns
                                                     if c not in named)
    modelled = ColumnChoice(keep, tuple(choice.drop) + named, choice.drop_missing)
    chosen = choose(table, modelled, training=training)
    if label is not None:
        return chosen, label_column(path, label, len(chosen.source), classes)
    context = choose(table, ColumnChoice(named), recorded=named)
    origin = f"columns {', '.join(named)}"
    return chosen, DataContext(context.source, "vector", named, origin)
