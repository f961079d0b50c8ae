"""Value checks that name the place: row (0-based) and column of the first bad value.

``scan`` makes one pass over a source before training (NaN/inf, integers, the range), or
over a bounded sample of its rows (``glance``); ``check_batch`` checks each batch a trained
model is about to score (``zoo score``/``eval``), and ``RowCheck`` each batch the trainer
reads from data too large for the whole pass (``zoo.data.infer``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
    #: With ``greys``: which of the 256 uint8 values occur (bool ``[256]``).
    present: np.ndarray | None = None


#: A bounded look at a source: this many blocks of ``GLANCE_BLOCK`` consecutive rows.
GLANCE_BLOCKS = 16
GLANCE_BLOCK = 512


def glance(source: Source) -> Iterator[tuple[np.ndarray, Tensor]]:
    """``(row_numbers, rows)`` of at most ``GLANCE_BLOCKS * GLANCE_BLOCK`` rows: blocks of
    consecutive rows spread evenly from the first row to the last. Consecutive rows of a
    mapped file touch few pages; the rest of the file is never read."""
    n, blocks, block = len(source), GLANCE_BLOCKS, GLANCE_BLOCK
    if n <= blocks * block:
        yield from ((np.arange(start, start + len(rows)), rows) for start, rows in source.chunks())
        return
    for start in np.linspace(0, n - block, blocks).astype(np.int64):
        index = np.arange(start, start + block)
        yield index, source.read(index)


def glanced_rows(source: Source) -> int:
    return min(len(source), GLANCE_BLOCKS * GLANCE_BLOCK)


def scan(source: Source, *, integers: bool = False,
         pieces: Iterable[tuple[int | np.ndarray, Tensor]] | None = None,
         greys: bool = False) -> Stats:
    """Refuse NaN and inf; find the range; with ``integers``, refuse non-integer values too;
    with ``greys``, note which uint8 values occur (``Stats.present``, for pictures' levels).

    Over every row (``source.chunks()``), or over ``pieces``: ``(first row or row numbers,
    rows)``, such as ``glance(source)``."""
    stats = Stats()
    is_float = source.dtype.kind == "f"
    for first, rows in (source.chunks() if pieces is None else pieces):
        start = first if isinstance(first, int) else _Rows(first)
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
        if greys and values.dtype == np.uint8:
            seen = np.bincount(values.reshape(-1), minlength=256) > 0
            stats.present = seen if stats.present is None else stats.present | seen
        if values.size:
            low, high = float(values.min()), float(values.max())
            stats.low = low if stats.low is None else min(stats.low, low)
            stats.high = high if stats.high is None else max(stats.high, high)
    return stats


class _Rows:
    """Row numbers that ``start + row`` turns into the row'th of them (for ``place``)."""

    def __init__(self, numbers: np.ndarray):
        self.numbers = numbers

    def __add__(self, row: int) -> int:
        return int(self.numbers[row])


def find_value(source: Source, test, pieces: Iterable[tuple[int | np.ndarray, Tensor]] | None = None
               ) -> str:
    """The place of the first value for which ``test(values)`` is true (for messages)."""
    for first, rows in (source.chunks() if pieces is None else pieces):
        start = first if isinstance(first, int) else _Rows(first)
        bad = test(rows.numpy())
        if bad.any():
            row, flat = first_bad(bad)
            return place(source.name, source.columns, source.shape, start + row, flat)
    return source.name


def check_batch(batch: Tensor, start: int | _Rows, *, name: str,
                columns: tuple[str, ...] | None, kind: str, levels: int | None,
                verb: str = "scored") -> None:
    """Refuse what a model cannot score, naming the row: NaN/inf, non-integers for discrete
    levels, or values outside the model's levels. ``batch`` holds rows as stored; the row
    of ``batch[i]`` is ``start + i``."""
    shape = tuple(batch.shape[1:])
    if batch.is_floating_point():
        bad = ~torch.isfinite(batch)
        if kind == "discrete":
            bad |= batch != torch.floor(batch)
        if bool(bad.any()):
            row, flat = first_bad(bad.cpu().numpy())
            value = batch[row].reshape(-1)[flat].item()
            why = (f"NaN and infinite values cannot be {verb}" if kind == "continuous"
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


@dataclass(frozen=True)
class RowCheck:
    """The values of data too large for the whole pass before training, checked batch by
    batch as the trainer reads them (``zoo.data.source.Examples``): NaN and inf, and for
    discrete data non-integers and values outside ``0..levels-1``, refused with the row
    (the file's own row number) and column, at the step that reads them."""

    kind: str
    levels: int | None = None

    def __call__(self, source: Source, rows: Tensor, row_numbers: Callable[[], np.ndarray]) -> None:
        if self.kind == "continuous" and not rows.is_floating_point():
            return
        try:
            check_batch(rows, 0, name=source.name, columns=source.columns, kind=self.kind,
                        levels=self.levels)
        except DataError:
            # The message again, with the rows' places in the file rather than the batch.
            check_batch(rows, _Rows(row_numbers()), name=source.name, columns=source.columns,
                        kind=self.kind, levels=self.levels, verb="modelled")
            raise
