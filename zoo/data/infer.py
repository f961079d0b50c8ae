"""What a family's config must say to fit a source: ``shape``, and ``levels`` for discrete data.

- Continuous families get vectors: ``shape = [D]`` with ``D`` the values per example.
- Discrete families get the stored shape, with a channel added to ``[H, W]`` images
  (``[1, H, W]``). ``levels`` comes from the dtype's range (uint8: 256, bool: 2) or else
  from the largest value (``max + 1``); values must be integers from 0.
- A ``shape`` or ``levels`` the user gives wins, if the data fits it.

``fit_data`` also makes the one pass over the values that training needs first (NaN, inf,
non-integers, negative values are refused with their row and column) and returns a line
that says what it decided, which ``zoo train`` prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.data.checks import find_value, scan
from zoo.data.source import Examples, Kind, Source
from zoo.errors import DataError

#: Levels read off the dtype alone (no pass over the values needed).
DTYPE_LEVELS = {np.dtype(np.uint8): 256, np.dtype(np.bool_): 2}


@dataclass
class DataFit:
    """The config keys the data decides, the examples as the model will see them, and why."""

    config: dict[str, Any]
    examples: Examples
    note: str


def model_shape(source: Source, kind: Kind) -> tuple[int, ...]:
    if kind == "continuous":
        return (math.prod(source.shape),)
    if len(source.shape) == 2:
        return (1, *source.shape)
    return source.shape


def reshaped(source: Source, kind: Kind, shape: Any) -> tuple[int, ...]:
    """The user's ``shape`` if it holds as many values as an example, else an error."""
    if shape is None:
        return model_shape(source, kind)
    try:
        want = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise DataError(f"shape: expected a list of sizes, got {shape!r}") from None
    if math.prod(want) != math.prod(source.shape):
        raise DataError(f"{source.name}: examples have {math.prod(source.shape)} values "
                        f"(shape {list(source.shape)}), which do not fill shape {list(want)}")
    return want


def fit_data(source: Source, kind: Kind, overrides: Mapping[str, Any] | None = None) -> DataFit:
    """Decide ``shape`` (and ``levels``) for a ``kind`` family and check every value once."""
    overrides = dict(overrides or {})
    shape = reshaped(source, kind, overrides.get("shape"))
    head = f"{source.name}: {len(source)} examples of {list(source.shape)} {source.dtype.name}"
    source.check_decodable()  # a truncated image is found now, not after the training
    if kind == "continuous":
        if source.dtype.kind == "f":
            scan(source)  # integers cannot be NaN; floats are checked before any step
        return DataFit({"shape": list(shape)}, Examples(source, kind, shape),
                       f"{head} -> continuous, shape {list(shape)}")
    given = overrides.get("levels")
    from_dtype = DTYPE_LEVELS.get(source.dtype)
    if from_dtype is not None and (given is None or (isinstance(given, int) and given >= from_dtype)):
        levels, why = (from_dtype, f"the range of {source.dtype.name}") if given is None else \
            (given, "as given")
    else:
        stats = scan(source, integers=True)
        low, high = int(stats.low or 0), int(stats.high or 0)
        if low < 0:
            raise DataError(f"{find_value(source, lambda v: v < 0)}: {low} is negative; discrete "
                            "levels are 0, 1, ..., levels-1")
        if given is None:
            levels, why = max(2, high + 1), f"the largest value is {high}"
        else:
            levels, why = given, "as given"
            if isinstance(given, int) and high >= given:
                raise DataError(f"{find_value(source, lambda v: v >= given)}: value {high} is "
                                f"outside levels 0..{given - 1} (levels={given})")
    return DataFit({"shape": list(shape), "levels": levels}, Examples(source, kind, shape),
                   f"{head} -> discrete, shape {list(shape)}, levels {levels} ({why})")


def for_model(source: Source, kind: Kind, shape: tuple[int, ...]) -> Examples:
    """``source`` as input to a trained model of ``shape``: the feature count must match."""
    if math.prod(source.shape) != math.prod(shape):
        raise DataError(f"{source.name}: examples have {math.prod(source.shape)} values "
                        f"(shape {list(source.shape)}), but the model takes shape {list(shape)} "
                        f"({math.prod(shape)} values)")
    return Examples(source, kind, shape)
