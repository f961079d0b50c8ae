"""CSV files: numeric columns, header optional, parsed once into a compact array.

A first line with any cell that is not a number is the header (its cells name the
columns in error messages). Every other line must have as many fields as the first, and
every cell must be a number (``nan`` and ``inf`` parse, and are refused later by
``zoo.data.checks`` with their row and column). Values that are all integers are kept as
int64 (usable as discrete levels), anything else as float32: the precision models compute in.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from zoo.data.source import ArraySource
from zoo.errors import DataError

INT_LIMIT = 2**53  # float64 holds every integer up to here exactly


def _parse(cells: list[str]) -> list[float] | None:
    try:
        return [float(c) for c in cells]
    except ValueError:
        return None


def read_csv(path: Path) -> ArraySource:
    """The rows of a CSV file as a source of shape ``[D]``; errors name the line and column."""
    rows: list[list[float]] = []
    header: list[str] | None = None
    width = 0
    first_line = 0
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for line, cells in enumerate(csv.reader(f), start=1):
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank lines (a trailing newline) carry no example
                values = _parse(cells)
                if not width:
                    width, first_line = len(cells), line
                    if values is None:
                        header = [c.strip() for c in cells]
                        continue
                elif len(cells) != width:
                    raise DataError(f"{path}: line {line} has {len(cells)} fields, but line "
                                    f"{first_line} has {width} (a ragged CSV)")
                if values is None:
                    column, cell = next((i, c) for i, c in enumerate(cells) if _parse([c]) is None)
                    raise DataError(f"{path}: line {line}, column {_column(header, column)}: "
                                    f"{_clip(cell)!r} is not a number")
                rows.append(values)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{path}: no rows of data" + (" (only a header)" if header else ""))
    array = np.asarray(rows, dtype=np.float64)
    finite = np.isfinite(array)
    if finite.all() and np.all(array == np.round(array)) and np.abs(array).max() < INT_LIMIT:
        array = array.astype(np.int64)
    else:
        array = array.astype(np.float32)
        # float32 overflow would turn a finite value into inf: refuse it with its place.
        over = np.isinf(array) & finite
        if over.any():
            r, c = (int(i[0]) for i in np.nonzero(over))
            raise DataError(f"{path}: row {r}, column {_column(header, c)}: "
                            f"{rows[r][c]:.6g} does not fit in float32")
    return ArraySource(array, str(path), columns=tuple(header) if header else None)


def _column(header: list[str] | None, index: int) -> str:
    if header and index < len(header) and header[index]:
        return f"{index} ({header[index]!r})"
    return str(index)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
