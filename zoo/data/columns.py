"""Tables as people have them: which columns a model of a table takes, and what each is.

``zoo train --data T.csv`` and later ``zoo score`` / ``zoo eval --data`` read a table
through ``choose``, so that a model sees the same columns every time:

- ``--columns a,b,c`` keeps those columns (by header name, or 0-based index), in that order;
  ``--drop-columns`` leaves some out. Training records the choice in the artifact
  (``source.columns``) and scoring applies it to the scored file.
- A column that is a row index (``1..n`` or ``0..n-1`` in order, or a header such as
  ``rownames``, ``id``, ``index``, ``Unnamed: 0``) is left out with a one-line warning when
  training, unless ``--columns`` keeps it: it describes the file, not the data.
- Missing values (empty cells, ``NA``, ``NaN``) are refused, naming the first row and
  column; ``--drop-missing`` drops such rows when training and says how many.
- A non-numeric column is refused, naming it, unless it is left out.
- Training refuses a constant column (it has no density), a single row, fewer rows than
  columns, every column constant.
- Columns on a grid (integers, or a fixed number of decimals) get that grid's step
  (``grid_steps``): a flow dequantizes them with uniform noise of one step, so it cannot
  gain by putting spikes on the grid.

``gaussian_nll`` is the baseline training prints beside the model's validation NLL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data.source import ArraySource, Source
from zoo.data.tabular import Table
from zoo.errors import DataError

#: Header names that say "this column numbers the rows" (lower case).
INDEX_NAMES = frozenset({"", "rownames", "row.names", "row_names", "id", "index", "idx",
                         "unnamed: 0", "row", "rowid", "row_id", "obs", "#"})
#: The finest grid looked for: values with up to this many decimals.
MAX_DECIMALS = 3


@dataclass(frozen=True)
class ColumnChoice:
    """What the user asked for: ``columns`` to keep (None: all), ``drop`` to leave out, and
    whether rows with a missing value are dropped (training only)."""

    columns: tuple[str, ...] | None = None
    drop: tuple[str, ...] = ()
    drop_missing: bool = False

    @classmethod
    def parse(cls, columns: str | Sequence[str] | None = None,
              drop: str | Sequence[str] | None = None, drop_missing: bool = False) -> ColumnChoice:
        """From ``--columns a,b,c`` / ``--drop-columns`` text (or lists of names)."""
        return cls(_names(columns) if columns is not None else None,
                   _names(drop) if drop is not None else (), drop_missing)

    @property
    def given(self) -> bool:
        return self.columns is not None or bool(self.drop) or self.drop_missing


def _names(value: str | Sequence[str]) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if not names:
        raise DataError(f"no column names in {value!r}: expected a,b,c")
    return names


@dataclass
class Chosen:
    """A table's chosen columns as a source, with what was decided on the way."""

    source: ArraySource
    columns: list[str]
    dropped_rows: int = 0
    notes: list[str] = field(default_factory=list)
    grid: list[float] | None = None


def choose(table: Table, choice: ColumnChoice | None = None, *, training: bool = False,
           recorded: Sequence[str] | None = None) -> Chosen:
    """The columns of ``table`` a model takes, as a compact source.

    ``recorded`` is the choice a trained model recorded (scoring: those columns, by name, no
    other decision). ``training`` adds the decisions only training makes: a row index is
    left out unless chosen, ``drop_missing`` drops rows, and the table must be one a density
    can be fitted to.
    """
    from zoo.data.tabular import to_source

    choice = choice or ColumnChoice()
    notes: list[str] = []
    if recorded is not None and not table.header:
        # No header to find names in: the columns in their order (the model checks the count).
        keep = list(range(table.values.shape[1]))
    elif recorded is not None:
        keep = [_find(table, name, "the model was trained on column") for name in recorded]
    elif choice.columns is not None:
        keep = [_find(table, name, "--columns") for name in choice.columns]
    else:
        keep = list(range(table.values.shape[1]))
    for name in choice.drop:
        index = _find(table, name, "--drop-columns")
        if index in keep:
            keep.remove(index)
    if len(set(keep)) != len(keep):
        raise DataError(f"{table.path}: --columns names a column twice")
    if training and recorded is None and choice.columns is None:
        for index in list(keep):
            why = _row_index(table, index)
            if why is not None and len(keep) > 1:
                keep.remove(index)
                notes.append(f"{table.path}: column {table.column(index)} looks like a row "
                             f"index ({why}): left out (keep it with --columns)")
    if not keep:
        raise DataError(f"{table.path}: no columns left to model")
    for index in keep:
        if index in table.text:
            line, cell = table.text[index]
            raise DataError(f"{table.path}: line {line}, column {table.column(index)}: "
                            f"{_clip(cell)!r} is not a number; the column is not numeric "
                            f"(leave it out with --drop-columns {_ref(table, index)}, or "
                            "choose columns with --columns)")
    values = table.values[:, keep] if keep != list(range(table.values.shape[1])) else table.values
    absent = np.isnan(values)
    dropped = 0
    if absent.any():
        rows = absent.any(1)
        if not (training and choice.drop_missing):
            r = int(np.argmax(rows))
            c = keep[int(np.argmax(absent[r]))]
            cell = table.missing.get(c, (None, ""))
            shown = cell[1] if cell[0] == r and cell[1] else ("an empty cell" if cell[0] == r
                                                             else "a missing value")
            hint = ("drop such rows with --drop-missing" if training
                    else "fill it in or drop the row: scores keep the input's rows")
            raise DataError(f"{table.path}: row {r}, column {table.column(c)}: {shown} is a "
                            f"missing value ({hint})")
        dropped = int(rows.sum())
        table = Table(table.path, table.values[~rows], table.header, table.text, {})
        notes.append(f"{table.path}: dropped {dropped} row(s) with a missing value "
                     f"({len(table.values)} left)")
    names = [table.header[i] if table.header and table.header[i] else str(i) for i in keep]
    if training:
        _check_fittable(table, keep)
    source = to_source(table, keep)
    return Chosen(source, names, dropped, notes, grid_of(table.values[:, keep]))


def read_csv(path: Path) -> ArraySource:
    """The rows of a CSV file as a source of shape ``[D]``: every column, every cell a number
    (``choose`` is the form that chooses columns and drops rows)."""
    from zoo.data.tabular import read_table

    return choose(read_table(path)).source


def _find(table: Table, name: str, where: str) -> int:
    """The index of a column named by header name, or by 0-based index."""
    if table.header and name in table.header:
        return table.header.index(name)
    if name.lstrip("-").isdigit() and 0 <= int(name) < table.values.shape[1] and (
            not table.header or name not in table.header):
        return int(name)
    have = ", ".join(repr(h) for h in table.header) if table.header else \
        f"0..{table.values.shape[1] - 1} (no header)"
    raise DataError(f"{table.path}: {where} {name!r}: no such column; the columns are {have}")


def _ref(table: Table, index: int) -> str:
    return table.header[index] if table.header and table.header[index] else str(index)


def _row_index(table: Table, index: int) -> str | None:
    """Why column ``index`` looks like a row index, or None."""
    name = table.header[index].strip().lower() if table.header else None
    if name is not None and name in INDEX_NAMES:
        return f"its header is {table.header[index]!r}"
    column = table.values[:, index]
    n = len(column)
    if n < 3 or np.isnan(column).any():
        return None
    for start in (0, 1):
        if column[0] == start and np.array_equal(column, np.arange(start, start + n)):
            return f"{start}..{start + n - 1} in order"
    return None


def _check_fittable(table: Table, keep: list[int]) -> None:
    values = table.values[:, keep]
    n, d = values.shape
    if n == 1:
        raise DataError(f"{table.path}: a single row; a density needs many rows (and more "
                        "rows than columns)")
    if n < d:
        raise DataError(f"{table.path}: {n} rows but {d} columns; fewer rows than columns "
                        "cannot be fitted (choose columns with --columns)")
    constant = [i for i, j in enumerate(keep)
                if np.all(values[:, i] == values[0, i]) and np.isfinite(values[0, i])]
    if len(constant) == d:
        raise DataError(f"{table.path}: every column is constant; there is no density to fit")
    if constant:
        i = constant[0]
        raise DataError(f"{table.path}: column {table.column(keep[i])} is constant (every row "
                        f"is {values[0, i]:.6g}): it has no density (leave it out with "
                        f"--drop-columns {_ref(table, keep[i])})")


def grid_of(values: np.ndarray) -> list[float]:
    """Each column's grid step, 0 for a continuous column.

    A column is on a grid when every value has at most ``MAX_DECIMALS`` decimals (integers
    included), read off float64 values parsed from text: the step is ``10**-decimals``. A
    constant column has no grid (it is refused for training anyway).
    """
    steps: list[float] = []
    for column in np.asarray(values, dtype=np.float64).T:
        column = column[np.isfinite(column)]
        step = 0.0
        if len(column) and column.max() > column.min():
            for decimals in range(MAX_DECIMALS + 1):
                scaled = column * 10.0**decimals
                tolerance = 1e-6 * np.maximum(1.0, np.abs(scaled) * 1e-6)
                if np.all(np.abs(scaled - np.round(scaled)) <= tolerance):
                    step = 10.0**-decimals
                    break
        steps.append(step)
    return steps


def describe_grid(columns: Sequence[str], grid: Sequence[float]) -> str:
    """``grid: 'a' step 1, 'b' step 0.01`` for the columns on a grid, or ''."""
    parts = [f"{name!r} step {step:g}" for name, step in zip(columns, grid) if step > 0]
    return "on a grid (dequantized with one step of uniform noise): " + ", ".join(parts) \
        if parts else ""


def gaussian_nll(train: np.ndarray, val: np.ndarray) -> float:
    """Mean NLL (nats per row) of ``val`` under the full-covariance Gaussian fitted by maximum
    likelihood to ``train``: the baseline a model of a table has to beat. A ridge of 1e-9 of
    each column's variance keeps a covariance of collinear columns invertible."""
    train = np.asarray(train, dtype=np.float64)
    val = np.asarray(val, dtype=np.float64)
    mean = train.mean(0)
    centered = train - mean
    cov = centered.T @ centered / len(train)
    cov = cov + np.diag(np.maximum(np.diag(cov), 1e-300) * 1e-9)
    chol = np.linalg.cholesky(cov)
    solved = np.linalg.solve(chol, (val - mean).T)
    d = train.shape[1]
    logdet = 2 * np.log(np.diag(chol)).sum()
    return float(0.5 * (solved**2).sum(0).mean() + 0.5 * logdet + 0.5 * d * math.log(2 * math.pi))


def jittered(rows: np.ndarray, grid: Sequence[float] | None, rng: np.random.Generator) -> np.ndarray:
    """``rows`` plus uniform noise of one step, centred, on every grid column (as the flow
    sees them), so that a baseline is scored on the same continuous values."""
    rows = np.asarray(rows, dtype=np.float64)
    if not grid or not any(s > 0 for s in grid):
        return rows
    step = np.asarray(grid, dtype=np.float64)
    return rows + (rng.random(rows.shape) - 0.5) * step


def read_rows(source: Source) -> np.ndarray:
    """Every row of a (small, tabular) source as float64 ``[N, D]``."""
    blocks = [rows.double().reshape(len(rows), -1).numpy() for _, rows in source.chunks()]
    return np.concatenate(blocks) if blocks else np.zeros((0, 0))


def open_table(data: Any, choice: ColumnChoice | None = None, *, training: bool = False,
               recorded: Sequence[str] | None = None,
               say: Callable[[str], None] | None = None) -> Chosen | None:
    """``choose`` on ``data`` when it is a CSV path; None for any other data (which has no
    columns to choose: ``--columns`` on it is an error)."""
    import os

    if isinstance(data, (str, os.PathLike)) and Path(data).suffix.lower() == ".csv":
        from zoo.data.tabular import read_table

        path = Path(data).expanduser()
        _check_file(path)
        chosen = choose(read_table(path), choice, training=training, recorded=recorded)
        if say is not None:
            for note in chosen.notes:
                say(note)
        return chosen
    if choice is not None and choice.given:
        raise DataError(f"{data}: --columns, --drop-columns and --drop-missing apply to CSV "
                        "tables")
    return None


def _check_file(path: Path) -> None:
    """What ``zoo.data.open`` says of a path that is not a readable file."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def table_budget(rows: int, val_fraction: float | None = None) -> dict[str, Any]:
    """Recipe keys for a table of ``rows`` rows: a training budget that follows the data.

    About 300 passes over a few hundred rows, fewer over many rows, within 1,500 to 3,000
    steps (a spline step on a 2-core machine bounds the run: 100,000 rows must train in
    minutes), in batches that grow with the rows up to 256; a validation pass every 1/40 of
    the run and early stopping after 8 passes without a better validation NLL (the best
    weights are kept). Small tables hold out a larger share for validation, so that the
    choice of weights is not made on a handful of rows; large ones at most 5,000 rows, so
    that validation stays a small part of the run. ``val_fraction`` given keeps its value.
    """
    val = val_fraction if val_fraction is not None else (
        0.2 if rows < 2_000 else max(0.02, min(0.1, 5_000 / rows)))
    train = max(1, int(rows * (1 - val)))
    batch = int(min(256, max(32, 2 ** round(math.log2(max(1, train / 8))))))
    epochs = 300 if train < 2_000 else 100 if train < 20_000 else 30
    steps = int(min(3_000, max(1_500, epochs * train / batch)))
    return {"steps": steps, "batch_size": batch, "val_fraction": val,
            "eval_every": max(10, steps // 40), "patience": 8, "lr": 2e-3,
            "warmup_steps": min(100, steps // 20)}
