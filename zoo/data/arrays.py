"""Array files: ``.npy`` (memory-mapped) and ``.safetensors`` (one tensor, memory-mapped).

Both keep the stored dtype and read rows on demand, so a file larger than memory trains in
bounded memory. Whole-file passes (the value checks, the fingerprint) read the file in
plain chunks rather than through the map, so that they do not leave the whole file
resident in this process.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from zoo.data.source import ArraySource, TensorSource, rows_to_tensor
from zoo.errors import DataError

CHUNK_BYTES = 64 << 20
RELEASE_ABOVE = 64 << 20  # mapped files larger than this release their pages after each read
RELEASE_ROWS = 256  # ... and after every this many rows of a longer read


def file_digest(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


class MappedSource(ArraySource):
    """A C-ordered array mapped from a file at ``offset``; scans read the file in chunks."""

    def __init__(self, path: Path, dtype: np.dtype, shape: tuple[int, ...], offset: int):
        array = np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset, order="C")
        super().__init__(array, str(path), digest=lambda: file_digest(path))
        self.path, self.offset = path, offset
        # Rows are read at random: no read-ahead. And a page the kernel maps for a row stays
        # mapped, counted in this process's RSS, until released: with the page cache's large
        # folios one row maps ~0.5 MB, so a few thousand random rows would map a whole file.
        raw = getattr(array, "_mmap", None)
        self._release = raw if raw is not None and array.nbytes > RELEASE_ABOVE else None
        if raw is not None and hasattr(mmap, "MADV_RANDOM"):
            raw.madvise(mmap.MADV_RANDOM)

    def read(self, index: np.ndarray) -> Tensor:
        if self._release is None or not hasattr(mmap, "MADV_DONTNEED"):
            return super().read(index)
        if len(index) <= RELEASE_ROWS:
            return self._read_released(index)
        # A few thousand scattered rows (a validation batch) would map most of the file
        # before the release: read them RELEASE_ROWS at a time.
        return torch.cat([self._read_released(index[i : i + RELEASE_ROWS])
                          for i in range(0, len(index), RELEASE_ROWS)])

    def _read_released(self, index: np.ndarray) -> Tensor:
        rows = super().read(index)  # a copy: the mapped pages are no longer needed
        # Unmaps this process's view of the file (~40 us); the page cache keeps the data.
        self._release.madvise(mmap.MADV_DONTNEED)
        return rows

    def chunks(self, size: int = 1 << 16) -> Iterator[tuple[int, Tensor]]:
        row_bytes = max(1, self.dtype.itemsize * int(np.prod(self.shape, dtype=np.int64)))
        size = max(1, min(size, CHUNK_BYTES // row_bytes))
        with open(self.path, "rb") as f:
            for start in range(0, len(self), size):
                n = min(size, len(self) - start)
                f.seek(self.offset + start * row_bytes)
                rows = np.fromfile(f, dtype=self.dtype, count=n * row_bytes // self.dtype.itemsize)
                yield start, rows_to_tensor(rows.reshape(n, *self.shape))


def read_npy(path: Path) -> ArraySource:
    """A ``.npy`` file of any integer, float or bool dtype, memory-mapped."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{path}: not a readable .npy file ({_short(exc)})") from None
    _check_dtype(path, dtype)
    _check_shape(path, shape)
    if len(shape) < 1:
        raise DataError(f"{path}: holds a single value; expected one example per row")
    # Python integers: numpy's int64 product of (2**32, 2**32) wraps round to 0.
    need = offset + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size < need:
        raise DataError(f"{path}: truncated .npy file: {size} bytes, but its header describes "
                        f"{list(shape)} {dtype.name} ({need} bytes)")
    if shape[0] == 0:
        raise DataError(f"{path}: no examples (shape {list(shape)})")
    if fortran and len(shape) > 1:
        # Rows are not contiguous in a Fortran-ordered file: map it the numpy way.
        array = np.load(path, mmap_mode="r")
        return ArraySource(array, str(path), digest=lambda: file_digest(path))
    return MappedSource(path, dtype, tuple(shape), offset)


def _check_shape(path: Path, shape: object) -> None:
    """A header's shape must be a sequence of non-negative integers: numpy's header reader
    takes ``(-1, 2)``, and the error numpy gives later names no file."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise DataError(f"{path}: the header's shape {list(shape) if isinstance(shape, tuple) else shape!r} "
                        "is not a list of non-negative integers")


def _check_dtype(path: Path, dtype: np.dtype) -> None:
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise DataError(f"{path}: dtype {dtype} is not numbers; expected an integer, float "
                        "or bool array")


SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                      "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4",
                      "U64": "<u8", "BOOL": "?"}
MAX_HEADER = 100_000_000


def read_safetensors(path: Path) -> ArraySource | TensorSource:
    """A ``.safetensors`` file holding exactly one tensor, memory-mapped (bf16 is read whole)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than its 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER, size - 8):
                raise ValueError(f"header length {length} is larger than the file")
            text = f.read(length).decode("utf-8")
        try:
            header = json.loads(text)
        except RecursionError:  # Python's parser recurses; 100,000 brackets exhaust it
            raise ValueError("its header is nested too deeply") from None
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, OSError, struct.error) as exc:
        raise DataError(f"{path}: not a readable .safetensors file ({_short(exc)})") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if len(tensors) != 1:
        raise DataError(f"{path}: holds {len(tensors)} tensors ({', '.join(sorted(tensors)[:5])});"
                        " expected exactly one")
    (name, info), = tensors.items()
    try:
        code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                   for v in [*shape, begin, end]):
            raise ValueError  # a negative offset would read the file's own header as data
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: tensor {name!r} has a malformed header entry (shape and "
                        "data_offsets must be non-negative integers)") from None
    offset = 8 + length + begin
    if code != "BF16" and code not in SAFETENSORS_DTYPES:
        raise DataError(f"{path}: tensor {name!r} has dtype {code}; expected integers, floats or bool")
    itemsize = 2 if code == "BF16" else np.dtype(SAFETENSORS_DTYPES[code]).itemsize
    need = math.prod(shape) * itemsize  # Python integers: no int64 wrap-round
    if end - begin != need or offset + need > size:
        raise DataError(f"{path}: truncated or inconsistent: tensor {name!r} {shape} {code} needs "
                        f"{need} bytes at offset {offset}, the file has {size}")
    if not shape:
        raise DataError(f"{path}: tensor {name!r} is a single value; expected one example per row")
    if shape[0] == 0:
        raise DataError(f"{path}: no examples (shape {shape})")
    if code == "BF16":  # numpy has no bfloat16: read whole, with safetensors
        from safetensors.torch import load_file

        try:
            return TensorSource(load_file(str(path))[name], str(path))
        except Exception as exc:  # noqa: BLE001  (SafetensorError is no public class)
            raise DataError(f"{path}: not a readable .safetensors file ({_short(exc)})") from None
    return MappedSource(path, np.dtype(SAFETENSORS_DTYPES[code]), tuple(shape), offset)



def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
