"""``open_data``: whatever the user hands zoo, as a ``Source``.

A path (``.csv``, ``.npy``, ``.safetensors``, ``.parquet``, a folder of images, a dataset
saved with ``datasets.save_to_disk``), ``hf-dataset:ORG/NAME[@REV]``, a tensor, a numpy
array, or a ``torch.utils.data.Dataset``. Errors are ``DataError`` and name the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from zoo.data.arrow import HUB_DATA_PREFIX
from zoo.data.source import Source, TensorSource
from zoo.errors import DataError

READERS = (".csv", ".npy", ".safetensors", ".parquet")


def open_data(data: Any, *, split: str | None = None) -> Source:
    """``data`` as a ``Source`` that reads its rows on demand, in the stored dtype.

    ``split`` picks a split of a ``DatasetDict`` (saved to disk or from the Hub); the default
    is ``train``, or the only split there is.
    """
    if isinstance(data, Source):
        return data
    if isinstance(data, Tensor):
        return TensorSource(data.detach(), "tensor")
    if isinstance(data, np.ndarray):
        from zoo.data.source import ArraySource

        if data.dtype.kind not in "biuf":
            raise DataError(f"array of dtype {data.dtype} is not numbers")
        return ArraySource(data, "array")
    if isinstance(data, torch.utils.data.Dataset):
        return DatasetSource(data)
    if isinstance(data, str) and data.startswith(HUB_DATA_PREFIX):
        from zoo.data.arrow import read_hub

        return read_hub(data, split)
    if isinstance(data, (str, os.PathLike)):
        return open_path(Path(data).expanduser(), split)
    raise DataError(f"cannot read data from a {type(data).__name__}: pass a path, "
                    "hf-dataset:ORG/NAME, a tensor, a numpy array or a torch Dataset")


def open_path(path: Path, split: str | None = None) -> Source:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        from zoo.data.arrow import is_saved_dataset, read_saved

        if is_saved_dataset(path):
            return read_saved(path, split)
        from zoo.data.images import ImageFolderSource

        return ImageFolderSource(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise DataError(f"{path}: cannot read {suffix or 'files without a suffix'}; zoo reads "
                        f"{', '.join(READERS)}, folders of images and saved datasets")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if suffix == ".csv":
        from zoo.data.columns import read_csv

        return read_csv(path)
    if suffix == ".npy":
        from zoo.data.arrays import read_npy

        return read_npy(path)
    if suffix == ".safetensors":
        from zoo.data.arrays import read_safetensors

        return read_safetensors(path)
    from zoo.data.arrow import read_parquet

    return read_parquet(path)


class DatasetSource(Source):
    """A map-style ``torch.utils.data.Dataset``: item ``i`` (or its first element) is example ``i``."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset
        self.name = type(dataset).__name__
        try:
            self.n = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise DataError(f"{self.name}: a Dataset without len() (an iterable dataset) cannot be "
                            "shuffled; pass a map-style Dataset") from None
        if self.n == 0:
            raise DataError(f"{self.name}: no examples")
        first = self._item(0)
        self.shape = tuple(first.shape)
        self.dtype = np.dtype(str(first.dtype).removeprefix("torch."))

    def _item(self, i: int) -> Tensor:
        item = self.dataset[i]
        if isinstance(item, (tuple, list)):
            item = item[0]  # (example, label) pairs: the label is not modelled
        return torch.as_tensor(item)

    def __len__(self) -> int:
        return self.n

    def read(self, index: np.ndarray) -> Tensor:
        items = [self._item(int(i)) for i in index]
        for i, item in zip(index, items):
            if tuple(item.shape) != self.shape:
                raise DataError(f"{self.name}: item {int(i)} has shape {list(item.shape)}, "
                                f"item 0 has {list(self.shape)}")
        return torch.stack(items)
