"""MNIST's IDX files: found, decompressed into a cache, checked and read.

MNIST is distributed as four gzipped IDX files, and the data folder that holds them is often
read-only (a shared mount, CI). So a ``.gz`` is never decompressed beside itself: it goes to
``$ZOO_HOME/cache/mnist/`` under a name that carries the archive's size and modification
time, through a temporary name and an atomic rename, and the next load reads that copy. A
plain IDX file in the data folder is read where it is.

The reader is zoo's own (numpy on the bytes, no torchvision): it checks what makes a file
MNIST images (the IDX magic of unsigned-byte 3-d data, 28x28 images, as many bytes as the
header promises) and names the file and the first thing that is wrong, in one line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import DataError

if TYPE_CHECKING:
    import torch

IMAGE_MAGIC = 0x00000803  # IDX: two zero bytes, 0x08 (unsigned byte), 3 dimensions
LABEL_MAGIC = 0x00000801  # the same for 1-d label files: a common mix-up, named as such
HEADER_BYTES = 16
SIDE = 28


def cache_dir() -> Path:
    """Where decompressed MNIST files are kept: ``$ZOO_HOME/cache/mnist``."""
    from zoo.paths import home

    return home() / "cache" / "mnist"


def image_file(raw: Path, name: str) -> Path | None:
    """The readable IDX file for ``name`` in ``raw``: the plain file when present, else the
    ``.gz`` decompressed into the cache; ``None`` when neither exists."""
    plain, gz = raw / name, raw / f"{name}.gz"
    if plain.is_file():
        return plain
    if gz.is_file():
        return cached_gunzip(gz)
    return None


def cached_gunzip(gz: Path) -> Path:
    """``gz`` decompressed into :func:`cache_dir`, reused while the archive is unchanged.

    The cached name holds a digest of the archive's resolved path, size and modification
    time, so a replaced archive is decompressed again rather than read stale.
    """
    stat = gz.stat()
    key = hashlib.sha256(f"{gz.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    target = cache_dir() / f"{gz.name[:-3]}.{key[:16]}"
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache folder {target.parent} to decompress "
                        f"{gz.name}: {exc.strerror or exc}; set ZOO_HOME to a writable folder") from None
    return gunzip(gz, target)


def gunzip(source: Path, target: Path) -> Path:
    """Decompress ``source`` to ``target`` through a temporary name in the same folder."""
    import gzip
    import shutil
    import zlib

    part = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with gzip.open(source, "rb") as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out)
    except EOFError:
        part.unlink(missing_ok=True)
        raise DataError(f"{source} is truncated: the gzip stream ends early") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        part.unlink(missing_ok=True)
        raise DataError(f"{source} is not a valid gzip file: {exc}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


def check_images(path: Path, shown_as: Path | None = None) -> None:
    """Check an IDX image file's header and length without reading its pixels."""
    with open(path, "rb") as f:
        head = f.read(HEADER_BYTES)
        size = f.seek(0, os.SEEK_END)
    _check_header(head, size, shown_as or path)


def _check_header(data: bytes, size: int, name: Path) -> int:
    """The image count of an IDX image file whose first bytes are ``data`` and whose
    length is ``size``; ``DataError`` naming ``name`` and the first thing wrong."""
    if data[:4] == LABEL_MAGIC.to_bytes(4, "big"):
        raise DataError(f"{name} is an IDX label file, not MNIST images (magic 0x{LABEL_MAGIC:08x})")
    if size < HEADER_BYTES:
        raise DataError(f"{name} is not an MNIST image file: {size} bytes, shorter than "
                        f"the {HEADER_BYTES}-byte IDX header")
    magic, count, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != IMAGE_MAGIC:
        raise DataError(f"{name} is not an MNIST image file: IDX magic 0x{magic:08x}, "
                        f"expected 0x{IMAGE_MAGIC:08x}")
    if (rows, cols) != (SIDE, SIDE):
        raise DataError(f"{name} is not MNIST: its images are {rows}x{cols}, expected {SIDE}x{SIDE}")
    expected = HEADER_BYTES + count * SIDE * SIDE
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise DataError(f"{name} is {what}: the header promises {count} images "
                        f"({expected} bytes), the file has {size} bytes")
    return count


def read_images(path: Path, shown_as: Path | None = None) -> torch.Tensor:
    """The images of an MNIST IDX image file as int64 ``[N, 1, 28, 28]``.

    ``shown_as`` is the name errors use (the ``.gz`` a cached copy came from), so the
    message points at the file the user has, not at the cache.
    """
    import numpy as np
    import torch

    data = path.read_bytes()
    count = _check_header(data[:HEADER_BYTES], len(data), shown_as or path)
    pixels = np.frombuffer(data, dtype=np.uint8, offset=HEADER_BYTES)
    return torch.from_numpy(pixels.astype(np.int64)).view(count, 1, SIDE, SIDE)


def read_labels(path: Path, shown_as: Path | None = None) -> torch.Tensor:
    """The labels of an MNIST IDX label file (magic 2049) as int64 ``[N]`` in ``0..9``."""
    import numpy as np
    import torch

    name = shown_as or path
    data = path.read_bytes()
    if len(data) < 8 or int.from_bytes(data[:4], "big") != LABEL_MAGIC:
        raise DataError(f"{name} is not an MNIST label file (IDX magic 0x{LABEL_MAGIC:08x})")
    count = int.from_bytes(data[4:8], "big")
    if len(data) != 8 + count:
        raise DataError(f"{name}: the header promises {count} labels, the file has "
                        f"{len(data) - 8}")
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if labels.size and int(labels.max()) > 9:
        raise DataError(f"{name}: label {int(labels.max())} is not a digit 0..9")
    return torch.from_numpy(labels.astype(np.int64))
