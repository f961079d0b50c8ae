"""Value checks that name the place: row (0-based) and column of the first bad value.

``scan`` makes one pass over a source before training (NaN/inf, integers, the range);
``check_batch`` checks each batch a trained model is about to score (``zoo score``/``eval``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from zoo.data.source import Source
from zoo.errors import DataError


def place(name: str, columns: tuple[str, ...] | None, shape: tuple[int, ...], row: int,
          flat: int) -> str:
    """``NAME: row R, column C`` for vectors (with the header's name), or the position in an image."""
    if len(shape) <= 1:
        label = str(flat)
        if columns and flat < len(columns) and columns[flat]:
            label += f" ({columns[flat]!r})"
        return f"{name}: row {row}, column {label}"
    coords = [int(c) for c in np.unravel_index(flat, shape)]
    return f"{name}: row {row}, position {coords}"


def first_bad(bad: np.ndarray) -> tuple[int, int]:
    """(row, flat position within the row) of the first true entry of ``bad`` ``[N, ...]``."""
    flat = bad.reshape(len(bad), -1)
    row = int(np.argmax(flat.any(axis=1)))
    return row, int(np.argmax(flat[row]))


@dataclass
class Stats:
    """What one pass over the values found (``None``: not looked at)."""

    low: float | None = None
    high: float | None = None
    integral: bool = True


def scan(source: Source, *, integers: bool = False) -> Stats:
    """Refuse NaN and inf; find the range; with ``integers``, refuse non-integer values too."""
    stats = Stats()
    is_float = source.dtype.kind == "f"
    for start, rows in source.chunks():
        values = rows.numpy()
        if is_float:
            bad = ~np.isfinite(values)
            if bad.any():
                row, flat = first_bad(bad)
                value = values[row].reshape(-1)[flat]
                raise DataError(f"{place(source.name, source.columns, source.shape, start + row, flat)}"
                                f": {value} (NaN and infinite values cannot be modelled)")
            if integers:
                frac = values != np.floor(values)
                if frac.any():
                    row, flat = first_bad(frac)
                    value = values[row].reshape(-1)[flat]
                    raise DataError(
                        f"{place(source.name, source.columns, source.shape, start + row, flat)}: "
                        f"{value} is not an integer, and this family models discrete levels")
        if values.size:
            low, high = float(values.min()), float(values.max())
            stats.low = low if stats.low is None else min(stats.low, low)
            stats.high = high if stats.high is None else max(stats.high, high)
    return stats


def find_value(source: Source, test) -> str:
    """The place of the first value for which ``test(values)`` is true (for messages)."""
    for start, rows in source.chunks():
        bad = test(rows.numpy())
        if bad.any():
            row, flat = first_bad(bad)
            return place(source.name, source.columns, source.shape, start + row, flat)
    return source.name


def check_batch(batch: Tensor, start: int, *, name: str, columns: tuple[str, ...] | None,
                kind: str, levels: int | None) -> None:
    """Refuse what a model cannot score, naming the row: NaN/inf, non-integers for discrete
    levels, or values outside the model's levels. ``batch`` holds rows as stored."""
    shape = tuple(batch.shape[1:])
    if batch.is_floating_point():
        bad = ~torch.isfinite(batch)
        if kind == "discrete":
            bad |= batch != torch.floor(batch)
        if bool(bad.any()):
            row, flat = first_bad(bad.cpu().numpy())
            value = batch[row].reshape(-1)[flat].item()
            why = ("NaN and infinite values cannot be scored" if kind == "continuous"
                   else "the model takes integer levels")
            raise DataError(f"{place(name, columns, shape, start + row, flat)}: {value} ({why})")
    if kind == "continuous":
        return
    assert levels is not None
    if not batch.is_floating_point():
        # uint8 against levels 256: the comparison would wrap the bound to 0 in uint8.
        batch = batch.to(torch.int64)
    bad = (batch < 0) | (batch >= levels)
    if bool(bad.any()):
        row, flat = first_bad(bad.cpu().numpy())
        value = batch[row].reshape(-1)[flat].item()
        raise DataError(f"{place(name, columns, shape, start + row, flat)}: value {value} is outside "
                        f"the model's levels 0..{levels - 1}")
