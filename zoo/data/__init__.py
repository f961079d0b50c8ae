"""Data: the built-in datasets and the user's own files, on one path.

- ``Dataset`` (``zoo.data.dataset``): a named dataset of the catalog; ``BUILTIN`` holds the
  four fixed protocols (``zoo.data.builtin``).
- ``open_data`` (``zoo.data.open``): a path, ``hf-dataset:ORG/NAME[@REV]``, tensor, array or
  ``torch.utils.data.Dataset`` as a ``Source`` (``zoo.data.source``) that keeps its stored
  dtype and reads rows by index.
- ``zoo.data.infer`` decides shape and levels for a family; ``zoo.data.checks`` refuses bad
  values naming the row and column.

This package imports no torch at import time (``zoo list`` loads it to register datasets).
"""

from __future__ import annotations

from zoo.data.builtin import (  # noqa: F401  (the built-in plugin's hook, and its loaders)
    BUILTIN,
    draw_binary,
    gunzip,
    load_binarized_mnist,
    load_digits,
    load_mnist,
    load_moons,
    read_mnist_images,
    zoo_register_datasets,
)
from zoo.data.dataset import SPLITS, Dataset  # noqa: F401

__all__ = ["Dataset", "BUILTIN", "SPLITS"]
