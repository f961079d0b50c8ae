"""Arrow data through the ``datasets`` library: parquet files, datasets saved to disk, and
``hf-dataset:ORG/NAME[@REV]`` from the Hub (through the HF cache; ``HF_HUB_OFFLINE`` and
``HF_DATASETS_OFFLINE`` are honoured by ``datasets`` itself).

``datasets`` memory-maps its Arrow files, so rows are read on demand. Which columns are the
examples: an ``Image`` column if there is one (other columns, such as labels, are ignored);
else a single array column (``Array2D``/``Array3D``/fixed-length sequences); else every
numeric scalar column, side by side, as ``[D]`` vectors named by their column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from zoo.data.source import Source, rows_to_tensor
from zoo.errors import DataError

HUB_DATA_PREFIX = "hf-dataset:"
SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
NUMERIC = ("int", "uint", "float", "bool")


def _datasets():
    try:
        import datasets
    except ImportError:
        raise DataError("reading parquet and Hugging Face datasets needs the `datasets` library: "
                        "pip install 'genzoo[data]'") from None
    datasets.disable_progress_bars()
    return datasets


def is_saved_dataset(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in SAVED_MARKERS)


def pick_split(data: Any, where: str, split: str | None) -> Any:
    """One split of a ``DatasetDict``: ``split``, else ``train``, else the only one."""
    if not hasattr(data, "keys"):
        return data
    names = list(data.keys())
    want = split or ("train" if "train" in names else (names[0] if len(names) == 1 else None))
    if want not in names:
        raise DataError(f"{where}: has splits {', '.join(names)}; "
                        f"{'no split ' + repr(split) if split else 'say which one'}")
    return data[want]


def read_parquet(path: Path) -> ArrowSource:
    """A parquet file, read with pyarrow into an in-memory Arrow table (its columns
    decompressed) and wrapped as a ``datasets.Dataset``, whose features come from the file's
    schema. ``Dataset.from_parquet`` would write an uncompressed Arrow copy of the data into
    ``HF_HOME/datasets`` (1000 times a small file's size), and lock files there on failure:
    scoring a file must write nothing."""
    datasets = _datasets()
    try:
        import pyarrow.parquet as pq
        from datasets.table import InMemoryTable

        ds = datasets.Dataset(InMemoryTable(pq.read_table(str(path), memory_map=True)))
    except DataError:
        raise
    except Exception as exc:  # pyarrow's and datasets' errors have no common base
        raise DataError(f"{path}: not a readable parquet file ({_short(exc)})") from None
    return ArrowSource(ds, str(path))


def read_saved(folder: Path, split: str | None = None) -> ArrowSource:
    try:
        data = _datasets().load_from_disk(str(folder))
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{folder}: not a readable saved dataset ({_short(exc)})") from None
    return ArrowSource(pick_split(data, str(folder), split), str(folder))


def parse_hub_name(spec: str) -> tuple[str, str | None]:
    """``hf-dataset:ORG/NAME[@REV]`` -> (``ORG/NAME``, revision or None)."""
    from zoo.names import check_repo_id

    body = spec[len(HUB_DATA_PREFIX):]
    repo, _, revision = body.partition("@")
    try:
        check_repo_id(repo)
    except Exception as exc:
        raise DataError(f"{spec}: {exc}") from None
    return repo, revision or None


def read_hub(spec: str, split: str | None = None) -> ArrowSource:
    """A dataset repository of the Hub, through ``datasets.load_dataset`` and its cache."""
    repo, revision = parse_hub_name(spec)
    try:
        data = _datasets().load_dataset(repo, revision=revision)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{spec}: cannot load the dataset ({_short(exc)})") from None
    return ArrowSource(pick_split(data, spec, split), spec)


class ArrowSource(Source):
    """Rows of a ``datasets.Dataset`` (memory-mapped Arrow), as ``[D]`` vectors, arrays or images."""

    def __init__(self, ds: Any, name: str):
        self.name = name
        features = ds.features
        images = [k for k, f in features.items() if type(f).__name__ == "Image"]
        numeric = [k for k, f in features.items()
                   if type(f).__name__ == "Value" and f.dtype.startswith(NUMERIC)]
        arrays = [k for k, f in features.items()
                  if type(f).__name__ in ("Array2D", "Array3D", "Array4D", "Sequence", "List")]
        if len(ds) == 0:
            raise DataError(f"{name}: no examples")
        self.image = images[0] if images else None
        if self.image is not None:
            self.cols = [self.image]
        elif len(arrays) == 1 and not numeric:
            self.cols = arrays
        elif numeric:
            self.cols = numeric
            self.columns = tuple(numeric)
        else:
            raise DataError(f"{name}: no numeric, array or image columns "
                            f"(columns: {', '.join(features) or 'none'})")
        self.ds = ds.select_columns(self.cols)
        if self.image is None:
            self.ds = self.ds.with_format("numpy")
        first = self.read(np.array([0]))
        self.shape = tuple(first.shape[1:])
        self.dtype = np.dtype(str(first.dtype).removeprefix("torch."))

    def __len__(self) -> int:
        return len(self.ds)

    def read(self, index: np.ndarray) -> Tensor:
        rows = self.ds[index.tolist()]
        if self.image is not None:
            out = [self._pixels(im) for im in rows[self.image]]
            if len({a.shape for a in out}) > 1:
                raise DataError(f"{self.name}: images of different sizes in column {self.image!r}")
            return rows_to_tensor(np.stack(out))
        if len(self.cols) == 1 and self.columns is None:
            values = rows[self.cols[0]]
            if values.dtype == object:
                raise DataError(f"{self.name}: column {self.cols[0]!r} holds arrays of different shapes")
            return rows_to_tensor(np.asarray(values))
        return rows_to_tensor(np.stack([np.asarray(rows[c]) for c in self.cols], axis=1))

    @staticmethod
    def _pixels(image: Any) -> np.ndarray:
        mode = "L" if image.mode in ("1", "L", "LA") else "RGB"
        pixels = np.asarray(image.convert(mode))
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)

    def fingerprint(self) -> str:
        # datasets' own digest of the table and the transforms that made it.
        return f"arrow:{self.ds._fingerprint}"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
