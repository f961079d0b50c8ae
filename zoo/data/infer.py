"""What a family's config must say to fit a source: ``shape``, and ``levels`` for discrete data.

- Continuous families get vectors: ``shape = [D]`` with ``D`` the values per example.
- Discrete families get the stored shape, with a channel added to ``[H, W]`` images
  (``[1, H, W]``). ``levels`` comes from the dtype's range (uint8: 256, bool: 2) or else
  from the largest value (``max + 1``); values must be integers from 0.
- A ``shape`` or ``levels`` the user gives wins, if the data fits it.

``fit_data`` also checks the values training needs checked (NaN, inf, non-integers,
negative values, values outside the levels are refused with their row and column) and
returns a line that says what it decided, which ``zoo train`` prints. Data of up to
``FULL_PASS_BYTES`` gets one pass over every value before training. Larger data gets a
bounded look before training (``zoo.data.checks.glance``: 8,192 rows spread over the file),
so that the first step comes as soon on 10 GB as on 0.3 GB, and its examples check every
batch as the trainer reads it (``zoo.data.checks.RowCheck``): a bad value deep in the file
is refused with its row and column at the step that reads it, before anything is written.
``levels`` read off the look (the largest value seen, plus one) says so in the note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from zoo.data.checks import RowCheck, find_value, glance, glanced_rows, scan
from zoo.data.image_levels import PictureLevels, is_8bit_images, levels_in_use
from zoo.data.source import Examples, Kind, Source
from zoo.errors import DataError

#: Levels read off the dtype alone (no pass over the values needed).
DTYPE_LEVELS = {np.dtype(np.uint8): 256, np.dtype(np.bool_): 2}
#: Data stored in more bytes than this gets a bounded look before training, and its values
#: are checked batch by batch as training reads them, instead of a pass over every value.
FULL_PASS_BYTES = 64 << 20


def stored_bytes(source: Source) -> int:
    return len(source) * math.prod(source.shape) * source.dtype.itemsize


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
    # Small data: every value now. Large data: a look now, every batch as training reads it.
    whole = stored_bytes(source) <= FULL_PASS_BYTES
    pieces = None if whole else list(glance(source))
    looked = "" if whole else (f"; values checked in a sample of {glanced_rows(source)} rows "
                               "now and in every batch as training reads it")
    if kind == "continuous":
        if source.dtype.kind == "f":
            scan(source, pieces=pieces)  # integers cannot be NaN; floats are checked
        check = None if whole or source.dtype.kind != "f" else RowCheck("continuous")
        return DataFit({"shape": list(shape)}, Examples(source, kind, shape, check=check),
                       f"{head} -> continuous, shape {list(shape)}"
                       + (looked if check is not None else ""))
    given = overrides.get("levels")
    if isinstance(given, int) and given < 256 and is_8bit_images(source):
        source = PictureLevels(source, given)  # read as the levels, as scoring reads them
    from_dtype = DTYPE_LEVELS.get(source.dtype)
    check = None
    if given is None and source.dtype == np.uint8:
        levels, why, source, check = levels_used(source, pieces)
        looked = looked if check is not None else ""
    elif from_dtype is not None and (given is None or (isinstance(given, int) and given >= from_dtype)):
        levels, why = (from_dtype, f"the range of {source.dtype.name}") if given is None else \
            (given, "as given")
        looked = ""  # every value the dtype holds fits
    else:
        stats = scan(source, integers=True, pieces=pieces)
        low, high = int(stats.low or 0), int(stats.high or 0)
        if low < 0:
            raise DataError(f"{find_value(source, lambda v: v < 0, pieces)}: {low} is negative; "
                            "discrete levels are 0, 1, ..., levels-1")
        if given is None:
            levels = max(2, high + 1)
            why = (f"the largest value is {high}" if whole else
                   f"the largest value in the sample is {high}; a larger one further on is "
                   "refused when training reads it: -c levels=N sets the levels")
        else:
            levels, why = given, "as given"
            if isinstance(given, int) and high >= given:
                raise DataError(f"{find_value(source, lambda v: v >= given, pieces)}: value "
                                f"{high} is outside levels 0..{given - 1} (levels={given})")
        if not whole and isinstance(levels, int):
            check = RowCheck("discrete", levels)
    return DataFit({"shape": list(shape), "levels": levels},
                   Examples(source, kind, shape, check=check),
                   f"{head} -> discrete, shape {list(shape)}, levels {levels} ({why}){looked}")


def levels_used(source: Source, pieces: list[Any] | None
                ) -> tuple[int, str, Source, RowCheck | None]:
    """The levels of uint8 data, from the values it uses rather than the dtype's 256, since
    sizes and budgets follow them (``Family.config_for_images``): the largest value + 1
    (digits 0..16 as uint8: 17; black and white: 2), and for 8-bit pictures the fewest levels
    that keep their greys apart (``zoo.data.image_levels``), read as those levels. With only
    a look at large data, 256 unless the values seen stay below 128 (then checked batch by
    batch, as for other integer types), so that a rare bright value cannot stop a long run.
    Returns the levels, why, the source as the model reads it, and the batch check."""
    pictures = is_8bit_images(source)
    stats = scan(source, pieces=pieces, greys=pictures and pieces is None)
    high = int(stats.high or 0)
    if pictures:
        if pieces is not None or stats.present is None:
            return 256, "the range of 8-bit pictures", source, None
        levels = levels_in_use(stats.present)
        if levels == 256:
            return 256, "the pictures' greys need all 256 8-bit levels", source, None
        return (levels, f"the pictures use {int(stats.present.sum())} greys, read as "
                f"round(v * {levels - 1} / 255)", PictureLevels(source, levels), None)
    if pieces is not None and high >= 128:
        return 256, "the range of uint8", source, None
    levels = max(2, high + 1)
    if pieces is None:
        return levels, f"the largest value is {high}", source, None
    return (levels, f"the largest value in the sample is {high}; a larger one further on is "
            "refused when training reads it: -c levels=N sets the levels", source,
            RowCheck("discrete", levels))


def for_model(source: Source, kind: Kind, shape: tuple[int, ...]) -> Examples:
    """``source`` as input to a trained model of ``shape``: the feature count must match."""
    if math.prod(source.shape) != math.prod(shape):
        raise DataError(f"{source.name}: examples have {math.prod(source.shape)} values "
                        f"(shape {list(source.shape)}), but the model takes shape {list(shape)} "
                        f"({math.prod(shape)} values)")
    return Examples(source, kind, shape)
