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

import torch
from torch import Tensor

#: Pillow modes for a model's channel count.
MODES = {1: "L", 3: "RGB"}


def from_8bit(values: Tensor, levels: int) -> Tensor:
    """8-bit values (0..255, any integer dtype) as levels ``0..levels-1`` (int64)."""
    values = values.to(torch.int64)
    if levels == 256:
        return values
    return torch.round(values.double() * (levels - 1) / 255.0).long()


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
