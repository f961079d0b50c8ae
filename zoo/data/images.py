"""A folder of PNG/JPEG images: grey ``[1, H, W]`` or RGB ``[3, H, W]``, uint8 (256 levels).

Files are found recursively (so a class-per-folder layout works too) and taken in sorted
order of their paths: that order is the input order of ``zoo score``. Only the headers are
read when the folder is opened (sizes and colour modes must agree); pixels are decoded per
batch, with Pillow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from torch import Tensor

from zoo.data.source import Source, rows_to_tensor
from zoo.errors import DataError

SUFFIXES = {".png", ".jpg", ".jpeg"}
#: Pillow modes read as grey (one channel) or colour (three); alpha is dropped.
GREY = {"1": "L", "L": "L", "LA": "L"}
COLOUR = {"RGB": "RGB", "RGBA": "RGB", "P": "RGB", "CMYK": "RGB", "YCbCr": "RGB"}


def image_files(folder: Path) -> list[Path]:
    """The images under ``folder``, sorted by path. Symbolic links to folders are followed
    (a class folder linked from elsewhere is data too: skipping it silently trained on 5 of
    35 images); a folder reached twice, through a link cycle, is read once."""
    import os

    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back to a folder already walked
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        found += [Path(root) / f for f in files if Path(f).suffix.lower() in SUFFIXES]
    return sorted(p for p in found if p.is_file())


def open_image(file: Path):
    """``PIL.Image.open(file)``, with an image that Pillow would take for a decompression bomb
    (it warns from 89 million pixels, and refuses from twice that) refused in one line naming
    the file, before anything is decoded; a 0.9 MB PNG can hold 30000x30000 pixels."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(file)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        reason = " ".join(str(exc).split()).split(", could be")[0]
        raise DataError(f"{file}: the image is too large to read safely ({reason})") from None


class ImageFolderSource(Source):
    """Every image under a folder, one example each."""

    def __init__(self, folder: Path):
        from PIL import UnidentifiedImageError

        files = image_files(folder)
        if not files:
            raise DataError(f"{folder}: no .png or .jpg images in this folder")
        first: tuple[Path, tuple[int, int], str] | None = None
        for file in files:
            try:
                with open_image(file) as im:
                    size, mode = im.size, im.mode
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{file}: not a readable image ({' '.join(str(exc).split())})") from None
            channels = GREY.get(mode) or COLOUR.get(mode)
            if channels is None:
                raise DataError(f"{file}: image mode {mode} is not 8-bit grey or RGB")
            if first is None:
                first = (file, size, channels)
                continue
            if size != first[1]:
                raise DataError(
                    f"{folder}: images of different sizes: {first[0].name} is "
                    f"{first[1][0]}x{first[1][1]}, {file.name} is {size[0]}x{size[1]} (width x height)")
            if channels != first[2]:
                raise DataError(f"{folder}: grey and colour images mixed: {first[0].name} is "
                                f"{first[2]}, {file.name} is {channels}")
        assert first is not None
        (width, height), self.mode = first[1], first[2]
        self.files = files
        self.name = str(folder)
        self.shape = (1 if self.mode == "L" else 3, height, width)
        self.dtype = np.dtype(np.uint8)

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: np.ndarray) -> Tensor:
        out = np.empty((len(index), *self.shape), dtype=np.uint8)
        for i, j in enumerate(index.tolist()):
            try:
                with open_image(self.files[j]) as im:
                    pixels = np.asarray(im.convert(self.mode))
            except (OSError, SyntaxError, ValueError) as exc:  # Pillow's decoding errors
                raise DataError(f"{self.files[j]}: cannot decode ({' '.join(str(exc).split())})") from None
            out[i] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        return rows_to_tensor(out)

    def check_decodable(self) -> None:
        """Decode every image once, so that a truncated file among thousands is found before
        the first training step, not after the training, when the metrics are computed."""
        for start in range(0, len(self), 256):
            self.read(np.arange(start, min(start + 256, len(self))))

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for file in self.files:
            h.update(file.name.encode() + b"\0" + file.read_bytes())
        return h.hexdigest()
