"""One rule for reading 8-bit pictures as a model's levels, and the PNGs of ``--complete``.

A PNG or JPEG holds 256 grey (or colour) values ``v``. A model of ``C`` levels takes level
``round(v * (C - 1) / 255)``: the inverse of how zoo draws level ``l`` in a picture
(``round(l * 255 / (C - 1))``, ``zoo.pictures.levels_to_uint8``), so a picture zoo wrote
reads back as the levels it shows. For ``C = 256`` the rule is the identity. ``zoo score``
and ``zoo eval`` on image folders, and ``zoo sample --complete``, all use it
(docs/data.md, "Images and levels").

The given image and the mask of a completion are read here too: through the same guard
against decompression bombs as image folders (``zoo.data.images.open_image``), as grey or
RGB to match the model's channels, and refused when their size is not the model's unless
``resize`` asks for scaling (which is then reported).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.data.source import Source

#: Pillow modes for a model's channel count.
MODES = {1: "L", 3: "RGB"}


def from_8bit(values: Tensor, levels: int) -> Tensor:
    """8-bit values (0..255, any integer dtype) as levels ``0..levels-1`` (int64)."""
    values = values.to(torch.int64)
    if levels == 256:
        return values
    return torch.round(values.double() * (levels - 1) / 255.0).long()


#: The most levels read off pictures' greys: a grid finer than 4 greys a step would take
#: almost any set of greys for one.
MOST_PICTURE_LEVELS = 64


def levels_in_use(present: Any) -> int:
    """The levels pictures of 8-bit greys (``present``: bool ``[256]``, the greys that occur)
    were drawn at: the fewest ``C`` (up to ``MOST_PICTURE_LEVELS``) whose evenly spaced greys
    ``l * 255 / (C - 1)`` each occurring grey lies within one grey of (rounded, or truncated
    to an integer), and that ``from_8bit``'s ``round(v * (C - 1) / 255)`` keeps apart: 17
    for sklearn's digits drawn as zoo draws them or scaled by ``255 / 16``, 2 for black and
    white; else 256, when the greys are on no coarse grid (greys 0..16 stored as they are
    would all read as near black)."""
    values = torch.nonzero(torch.as_tensor(present)).reshape(-1).double()
    for levels in range(max(2, len(values)), MOST_PICTURE_LEVELS + 1):
        read = torch.round(values * (levels - 1) / 255.0)
        off = (values - read * 255.0 / (levels - 1)).abs()
        if bool((off < 1.0).all()) and len(torch.unique(read)) == len(values):
            return levels
    return 256


class PictureLevels(Source):
    """An 8-bit picture source read as ``levels`` by ``from_8bit``: what training reads when
    the pictures use fewer levels than 256 (``levels_in_use``), so that training, ``zoo
    score`` and ``zoo eval`` read a picture the same way."""

    def __init__(self, base: Source, levels: int):
        self.base, self.levels = base, levels
        self.name, self.shape, self.columns = base.name, base.shape, base.columns
        self.dtype = np.dtype(np.int64)

    def __len__(self) -> int:
        return len(self.base)

    def read(self, index: np.ndarray) -> Tensor:
        return from_8bit(self.base.read(index), self.levels)

    def check_decodable(self) -> None:
        self.base.check_decodable()

    def fingerprint(self) -> str:
        return f"{self.base.fingerprint()}:levels={self.levels}"


def is_8bit_images(source: Any) -> bool:
    """Whether a data source holds 8-bit pictures (an image folder, an Arrow image column)."""
    from zoo.data.images import ImageFolderSource

    return isinstance(source, ImageFolderSource) or getattr(source, "image", None) is not None


def _open_sized(path: Path, shape: tuple[int, ...], mode: str, *, resize: bool,
                resample: int | None, what: str) -> tuple[Any, str | None]:
    """The picture at ``path`` converted to ``mode`` at the model's size: a picture of
    another size is refused unless ``resize`` (then scaled, and a note says so)."""
    from zoo.data.images import open_image
    from zoo.errors import DataError

    height, width = shape[-2], shape[-1]
    try:
        with open_image(path) as img:
            picture = img.convert(mode)
    except DataError as exc:  # a decompression bomb, never decoded
        raise DataError(f"{exc}; the model takes {width}x{height} images") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's decoding errors
        raise DataError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None
    note = None
    if picture.size != (width, height):
        got = f"{picture.size[0]}x{picture.size[1]}"
        if not resize:
            raise ValueError(f"{path}: the {what} is {got} pixels (width x height), but the "
                             f"model takes {width}x{height}; pass --resize to scale it")
        picture = picture.resize((width, height), resample)
        note = f"{path}: {what} resized from {got} to {width}x{height} pixels"
    return picture, note


def read_png_levels(path: Path, shape: tuple[int, ...], levels: int, *,
                    resize: bool = False) -> tuple[Tensor, str | None]:
    """The given image of a completion as levels of ``shape`` ``[C, H, W]``, and a note when
    it was resized."""
    mode = MODES.get(shape[0]) if len(shape) == 3 else None
    if mode is None:
        raise ValueError(f"{path}: the model takes images of shape {list(shape)}; a picture "
                         "fits one of 1 (grey) or 3 (RGB) channels")
    picture, note = _open_sized(path, shape, mode, resize=resize, resample=None, what="image")
    pixels = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    pixels = pixels.reshape(shape[-2], shape[-1], shape[0]).permute(2, 0, 1)
    return from_8bit(pixels, levels).reshape(shape), note


def read_png_mask(path: Path, shape: tuple[int, ...], *,
                  resize: bool = False) -> tuple[Tensor, str | None]:
    """A mask picture (grey >= 128 is known) as bools of ``shape``; a pixel known is known in
    every channel. Resizing, when asked, takes the nearest pixel."""
    from PIL import Image

    picture, note = _open_sized(path, shape, "L", resize=resize, resample=Image.NEAREST,
                                what="mask")
    grey = torch.frombuffer(bytearray(picture.tobytes()), dtype=torch.uint8)
    known = (grey >= 128).reshape(shape[-2], shape[-1])
    return known.expand(shape).clone(), note
