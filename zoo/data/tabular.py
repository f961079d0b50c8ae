"""CSV files: numeric columns, header optional, parsed once into a compact array.

A first line with any cell that is neither a number nor a missing value is the header (its
cells name the columns in error messages); a UTF-8 byte-order mark before it is not part of
it. Every other line must have as many fields as the first. Cells that are empty, ``NA``,
``NaN`` (and the like) are missing values, and cells that are not numbers make their column
non-numeric: ``read_table`` keeps both, as NaN, so that ``zoo.data.columns`` can name them,
leave non-numeric columns out (``--columns``) or drop rows (``--drop-missing``).
``zoo.data.columns.read_csv`` is the strict form: every column, every cell a number.

Rows are gathered in blocks of float64 arrays rather than as Python lists of floats (about
16x the file's size in memory), so reading costs about twice the file's size at its peak.
Values that are all integers are kept as int64 (usable as discrete levels), anything else
as float32: the precision models compute in.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.data.source import ArraySource
from zoo.errors import DataError

INT_LIMIT = 2**53  # float64 holds every integer up to here exactly
#: Cells that mean "no value here" (compared case-insensitively, after stripping spaces).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?", "-nan", "#n/a"})
#: Rows gathered as Python floats before they become one float64 block.
BLOCK_ROWS = 1 << 14


@dataclass
class Table:
    """A CSV as read: every column as float64 (NaN where a cell is missing or not a number).

    ``text`` maps a non-numeric column to its first such cell, ``(line, cell)``; ``missing``
    maps a column to its first missing cell, ``(row, cell)`` (rows 0-based, as in every
    message about values). ``grid`` is filled by ``zoo.data.columns``.
    """

    path: Path
    values: np.ndarray
    header: list[str] | None
    text: dict[int, tuple[int, str]] = field(default_factory=dict)
    missing: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path)

    def column(self, index: int) -> str:
        """How messages name column ``index``: ``1 ('y')``, or ``1`` without a header."""
        return _column(self.header, index)


def _parse(cells: list[str]) -> list[float] | None:
    try:
        return [float(c) for c in cells]
    except ValueError:
        return None


def _cell(text: str) -> float | None:
    """A cell's number; NaN for a missing value; None for text."""
    if text.strip().lower() in MISSING:
        return float("nan")
    try:
        return float(text)
    except ValueError:
        return None


def read_table(path: Path) -> Table:
    """The rows of a CSV file, keeping missing and non-numeric cells for ``zoo.data.columns``
    to judge; errors (ragged lines, duplicated header names) name the line or column."""
    blocks: list[np.ndarray] = []
    rows: list[list[float]] = []
    header: list[str] | None = None
    text: dict[int, tuple[int, str]] = {}
    missing: dict[int, tuple[int, str]] = {}
    width = first_line = count = 0
    try:
        # utf-8-sig: a byte-order mark is not part of the first cell (issue 24, item 11).
        with open(path, newline="", encoding="utf-8-sig") as f:
            for line, cells in enumerate(csv.reader(f), start=1):
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank lines (a trailing newline) carry no example
                values = _parse(cells)
                if not width:
                    width, first_line = len(cells), line
                    if values is None and any(_cell(c) is None for c in cells):
                        header = [c.strip() for c in cells]
                        _check_header(path, header)
                        continue
                elif len(cells) != width:
                    raise DataError(f"{path}: line {line} has {len(cells)} fields, but line "
                                    f"{first_line} has {width} (a ragged CSV)")
                if values is None:
                    values = []
                    for i, c in enumerate(cells):
                        v = _cell(c)
                        if v is None:
                            text.setdefault(i, (line, c))
                            v = float("nan")
                        elif v != v and i not in missing:
                            missing[i] = (count, c.strip())
                        values.append(v)
                elif i_nan := [i for i, v in enumerate(values) if v != v]:
                    for i in i_nan:
                        missing.setdefault(i, (count, cells[i].strip()))
                rows.append(values)
                count += 1
                if len(rows) == BLOCK_ROWS:
                    blocks.append(np.asarray(rows, dtype=np.float64))
                    rows = []
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if rows:
        blocks.append(np.asarray(rows, dtype=np.float64))
    del rows
    if not blocks:
        raise DataError(f"{path}: no rows of data" + (" (only a header)" if header else ""))
    values = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    return Table(path, values, header, text, missing)


def _check_header(path: Path, header: list[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name and name in seen:
            raise DataError(f"{path}: the header names column {name!r} twice (columns "
                            f"{seen[name]} and {i}); give each column its own name")
        seen.setdefault(name, i)


def to_source(table: Table, keep: list[int]) -> ArraySource:
    """Columns ``keep`` of ``table`` as a compact source: int64 when every value is an
    integer, else float32 (a finite value that overflows float32 is refused by place)."""
    array = table.values[:, keep] if keep != list(range(table.values.shape[1])) else table.values
    header = [table.header[i] for i in keep] if table.header else None
    finite = np.isfinite(array)
    if finite.all() and np.all(array == np.round(array)) and np.abs(array).max() < INT_LIMIT:
        out = array.astype(np.int64)
    else:
        out = array.astype(np.float32)
        # float32 overflow would turn a finite value into inf: refuse it with its place.
        over = np.isinf(out) & finite
        if over.any():
            r, c = (int(i[0]) for i in np.nonzero(over))
            raise DataError(f"{table.path}: row {r}, column {table.column(keep[c])}: "
                            f"{array[r, c]:.6g} does not fit in float32")
    return ArraySource(out, str(table.path), columns=tuple(header) if header else None)


def _column(header: list[str] | None, index: int) -> str:
    if header and index < len(header) and header[index]:
        return f"{index} ({header[index]!r})"
    return str(index)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
