"""A ``Source``: examples kept in their stored form, read by index, converted per batch.

Every kind of data zoo trains on or scores (a built-in dataset in memory, a memory-mapped
``.npy``, a CSV parsed once, a folder of images, an Arrow table) is a ``Source``. It keeps
the stored dtype (uint8 stays uint8) and reads only the rows it is asked for; ``Examples``
turns those rows into what a model takes (float32 ``[B, D]`` or int64 ``[B, *shape]``),
one batch at a time. This is the one data path: the trainer, ``zoo score`` and ``zoo eval``
all read through it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

Kind = Literal["continuous", "discrete"]

#: Data in a file with more rows than this is shuffled without a permutation of every row.
PERMUTED_SPLIT_ROWS = 1 << 20
#: numpy dtypes torch cannot index or convert everywhere: widened to int64 per batch.
_WIDEN = {np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.uint64)}


def as_index(index: Any) -> np.ndarray:
    """An int64 numpy index array from a tensor, range or sequence."""
    if isinstance(index, Tensor):
        return index.detach().cpu().numpy().astype(np.int64, copy=False)
    return np.asarray(index, dtype=np.int64)


def compact_index(index: Any) -> np.ndarray:
    """``as_index``, but an int32 index (``torch.randperm(..., dtype=torch.int32)``) stays
    int32, without a copy: a split of 10 GB of images holds millions of row numbers."""
    if isinstance(index, Tensor) and index.dtype == torch.int32:
        return index.detach().cpu().numpy()
    if isinstance(index, np.ndarray) and index.dtype == np.int32:
        return index
    return as_index(index)


def rows_to_tensor(rows: np.ndarray) -> Tensor:
    """numpy rows as a tensor, widening the dtypes torch does not handle everywhere, and in
    native byte order (torch takes no big-endian array; numpy converts it)."""
    if not rows.dtype.isnative:
        rows = rows.astype(rows.dtype.newbyteorder("="))
    if rows.dtype in _WIDEN:
        rows = rows.astype(np.int64)
    elif rows.dtype == np.bool_:
        rows = rows.astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(rows))


class Source:
    """Examples of one stored shape and dtype; subclasses implement ``__len__`` and ``read``.

    ``name`` is what messages call the data (a path, ``hf-dataset:...``); ``columns`` names
    the features of tabular data (a CSV header), so that errors can say which column.
    """

    name: str = "data"
    shape: tuple[int, ...] = ()
    dtype: np.dtype = np.dtype(np.float32)
    columns: tuple[str, ...] | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, index: np.ndarray) -> Tensor:
        """The examples at ``index`` (in that order), ``[len(index), *shape]``, stored dtype."""
        raise NotImplementedError

    def take(self, index: Any) -> Tensor:
        return self.read(as_index(index))

    def chunks(self, size: int = 1 << 16) -> Iterator[tuple[int, Tensor]]:
        """``(first_row, rows)`` over the whole source in order, ``size`` rows at a time."""
        for start in range(0, len(self), size):
            yield start, self.read(np.arange(start, min(start + size, len(self))))

    def check_decodable(self) -> None:
        """Refuse, before training, examples that are stored but cannot be read (a truncated
        image). Nothing to do for sources whose rows are plain numbers."""

    def subset(self, index: Any) -> Source:
        """The examples at ``index`` as a source of their own (a view: nothing is read)."""
        return Subset(self, compact_index(index))

    def row_numbers(self, index: np.ndarray) -> np.ndarray:
        """Where the examples at ``index`` are in the data as stored (for messages)."""
        return index

    def without(self, held: np.ndarray) -> Source:
        """Every example but those at ``held`` (sorted, distinct), in order (a view)."""
        return Complement(self, held)

    def fingerprint(self) -> str:
        """A digest of the contents: a checkpoint records it and refuses other data on resume."""
        h = hashlib.sha256(f"{self.dtype.str}{list(self.shape)}{len(self)}".encode())
        for _, rows in self.chunks():
            h.update(np.ascontiguousarray(rows.numpy()).tobytes())
        return h.hexdigest()

    def describe(self) -> str:
        return f"{self.name}: {len(self)} examples of shape {list(self.shape)}, {self.dtype.name}"


class TensorSource(Source):
    """Examples held in memory as one tensor (built-in datasets, tensors and arrays passed in)."""

    def __init__(self, x: Tensor, name: str = "tensor", *, columns: tuple[str, ...] | None = None):
        if x.dim() < 1:
            raise ValueError(f"{name}: expected one example per row, got a scalar")
        self.x = x
        self.name = name
        self.shape = tuple(x.shape[1:])
        self.dtype = np.dtype(str(x.dtype).removeprefix("torch.")) if x.dtype != torch.bfloat16 \
            else np.dtype(np.float32)
        self.columns = columns

    def __len__(self) -> int:
        return len(self.x)

    def read(self, index: np.ndarray) -> Tensor:
        return self.x[torch.from_numpy(index).to(self.x.device)]

    def take(self, index: Any) -> Tensor:
        # Index with a tensor on the data's own device: no round trip through numpy.
        if isinstance(index, Tensor):
            return self.x[index.to(self.x.device)]
        return super().take(index)

    def chunks(self, size: int = 1 << 16) -> Iterator[tuple[int, Tensor]]:
        for start in range(0, len(self), size):
            yield start, self.x[start : start + size]

    def check_decodable(self) -> None:
        """Refuse, before training, examples that are stored but cannot be read (a truncated
        image). Nothing to do for sources whose rows are plain numbers."""

    def subset(self, index: Any) -> Source:
        # In memory already: gather now, as the trainer always did (same numbers, same speed).
        idx = index if isinstance(index, Tensor) else torch.from_numpy(as_index(index))
        return TensorSource(self.x[idx.to(self.x.device).long()], self.name,
                            columns=self.columns)

    def to(self, device: torch.device) -> TensorSource:
        return TensorSource(self.x.to(device), self.name, columns=self.columns)


class ArraySource(Source):
    """A numpy array or memory map: rows are copied out only when read."""

    def __init__(self, array: np.ndarray, name: str, *, columns: tuple[str, ...] | None = None,
                 digest: Callable[[], str] | None = None):
        if array.ndim < 1:
            raise ValueError(f"{name}: expected one example per row, got a scalar")
        self.array = array
        self.name = name
        self.shape = tuple(int(s) for s in array.shape[1:])
        self.dtype = array.dtype
        self.columns = columns
        self._digest = digest

    def __len__(self) -> int:
        return len(self.array)

    def read(self, index: np.ndarray) -> Tensor:
        return rows_to_tensor(self.array[index])

    def fingerprint(self) -> str:
        return self._digest() if self._digest is not None else super().fingerprint()


class Subset(Source):
    """Some rows of another source, by index (the training or hold-out part of user data)."""

    def __init__(self, base: Source, index: np.ndarray):
        self.base, self.index = base, index
        self.name, self.shape, self.dtype, self.columns = base.name, base.shape, base.dtype, base.columns

    def __len__(self) -> int:
        return len(self.index)

    def read(self, index: np.ndarray) -> Tensor:
        return self.base.read(self.index[index].astype(np.int64, copy=False))

    def row_numbers(self, index: np.ndarray) -> np.ndarray:
        return self.base.row_numbers(self.index[index].astype(np.int64, copy=False))

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.base.fingerprint().encode())
        h.update(self.index.tobytes())
        return h.hexdigest()


class Complement(Source):
    """Every row of another source but the ``held`` ones (sorted and distinct), in order:
    the training part of data too large to hold a permutation of every row. It keeps only
    the held-out row numbers; training position ``i`` is row ``i + #{held j: held[j] - j <= i}``."""

    def __init__(self, base: Source, held: np.ndarray):
        self.base, self.held = base, np.asarray(held, dtype=np.int64)
        self._gaps = self.held - np.arange(len(self.held))
        self.name, self.shape, self.dtype, self.columns = base.name, base.shape, base.dtype, base.columns

    def __len__(self) -> int:
        return len(self.base) - len(self.held)

    def _rows(self, index: np.ndarray) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        return index + np.searchsorted(self._gaps, index, side="right")

    def read(self, index: np.ndarray) -> Tensor:
        return self.base.read(self._rows(index))

    def row_numbers(self, index: np.ndarray) -> np.ndarray:
        return self.base.row_numbers(self._rows(index))

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"without" + self.base.fingerprint().encode())
        h.update(self.held.tobytes())
        return h.hexdigest()


def distinct_rows(n: int, k: int, generator: torch.Generator) -> np.ndarray:
    """``k`` distinct row numbers below ``n``, drawn uniformly with ``generator``, sorted:
    memory in ``k``, not ``n`` (``torch.randperm(n)`` of 10 GB of images is 100 MB)."""
    k = min(k, n)
    picked = torch.empty(0, dtype=torch.int64)
    while len(picked) < k:
        draw = torch.randint(n, (2 * (k - len(picked)) + 16,), generator=generator)
        picked = torch.unique(torch.cat([picked, draw]))
    # The distinct values of uniform draws are a uniform subset of their size: so is any
    # uniform choice of k of them.
    keep = torch.randperm(len(picked), generator=generator)[:k]
    return picked[keep].sort().values.numpy()


class Examples:
    """A source as a model sees it: batches of float32 ``[B, D]`` or int64 ``[B, *shape]``.

    The stored rows are reshaped to ``shape`` (same number of elements) and converted batch
    by batch, so a uint8 file is never widened as a whole. ``redraw(x, generator)``, when set,
    re-draws the examples once per epoch (binarized MNIST's Bernoulli draws); ``fingerprint``
    names the data for checkpoints (built-in datasets use their protocol name).
    ``check(source, rows, row_numbers)``, when set, checks every batch of stored rows as it
    is read (``zoo.data.checks.RowCheck``: data too large for a pass before training).
    """

    def __init__(self, source: Source, kind: Kind, shape: tuple[int, ...] | None = None, *,
                 redraw: Callable[[Tensor, torch.Generator], Tensor] | None = None,
                 fingerprint: str | None = None, context: Source | None = None,
                 context_kind: Literal["label", "vector"] | None = None,
                 context_names: tuple[str, ...] = (),
                 check: Callable[[Source, Tensor, Callable[[], np.ndarray]], None] | None = None):
        self.source, self.kind = source, kind
        self.check = check
        self.shape = tuple(shape) if shape is not None else source.shape
        self.redraw = redraw
        self._fingerprint = fingerprint
        if context is not None and len(context) != len(source):
            raise ValueError(f"{len(context)} contexts for {len(source)} examples of "
                             f"{source.name}")
        #: Each example's context, row for row (labels ``[N]`` or vectors ``[N, d]``), when
        #: the data carries one: its kind, and the class or feature names.
        self.context, self.context_kind = context, context_kind if context is not None else None
        self.context_names = tuple(context_names)

    def _like(self, source: Source, context: Source | None, **kwargs: Any) -> Examples:
        """Examples of ``source`` with this data's kind, shape and context description."""
        return Examples(source, self.kind, self.shape, context=context,
                        context_kind=self.context_kind, context_names=self.context_names,
                        check=self.check, **kwargs)

    def without_context(self) -> Examples:
        """The examples alone (what a model's ``initialize_from_data`` reads)."""
        if self.context is None:
            return self
        return Examples(self.source, self.kind, self.shape, redraw=self.redraw,
                        fingerprint=self._fingerprint, check=self.check)

    def convert_context(self, rows: Tensor) -> Tensor:
        """Stored contexts to what a model takes: int64 labels or float32 vectors."""
        if self.context_kind == "label":
            return rows.reshape(-1).long()
        return rows.reshape(len(rows), -1).float()

    def take_context(self, index: Any) -> Tensor | None:
        """The contexts of the examples at ``index`` (None when the data carries none)."""
        if self.context is None:
            return None
        return self.convert_context(self.context.take(index))

    def context_batches(self, size: int) -> Iterator[Tensor]:
        """Every context in order, ``size`` at a time (nothing when there is none)."""
        if self.context is None:
            return
        for _, rows in self.context.chunks(size):
            yield self.convert_context(rows)

    def pairs(self, size: int) -> Iterator[tuple[int, Tensor, Tensor | None]]:
        """``(first_row, batch, contexts)`` over every example in order."""
        for start, batch in self.batches(size):
            contexts = (None if self.context is None
                        else self.take_context(np.arange(start, start + len(batch))))
            yield start, batch, contexts

    def __len__(self) -> int:
        return len(self.source)

    @property
    def name(self) -> str:
        return self.source.name

    def convert(self, rows: Tensor) -> Tensor:
        """Stored rows to model input: reshaped, float32 (continuous) or int64 (discrete)."""
        if tuple(rows.shape[1:]) != self.shape:
            rows = rows.reshape(len(rows), *self.shape)
        want = torch.float32 if self.kind == "continuous" else torch.int64
        if self.redraw is not None and self.kind == "discrete" and rows.is_floating_point():
            return rows  # probabilities, drawn per epoch before they are used
        return rows if rows.dtype == want else rows.to(want)

    def take(self, index: Any) -> Tensor:
        rows = self.source.take(index)
        if self.check is not None:
            self.check(self.source, rows, lambda: self.source.row_numbers(as_index(index)))
        return self.convert(rows)

    def batches(self, size: int) -> Iterator[tuple[int, Tensor]]:
        """``(first_row, batch)`` over every example in order."""
        for start, rows in self.source.chunks(size):
            if self.check is not None:
                index = np.arange(start, start + len(rows))
                self.check(self.source, rows, lambda index=index: self.source.row_numbers(index))
            yield start, self.convert(rows)

    def subset(self, index: Any) -> Examples:
        context = None if self.context is None else self.context.subset(index)
        return self._like(self.source.subset(index), context, redraw=self.redraw,
                          fingerprint=None)

    def without(self, held: np.ndarray) -> Examples:
        """Every example but those at ``held`` (sorted, distinct): ``Source.without``."""
        context = None if self.context is None else self.context.without(held)
        return self._like(self.source.without(held), context, redraw=self.redraw,
                          fingerprint=None)

    def drawn(self, generator: torch.Generator) -> Examples:
        """This epoch's examples: re-drawn when the data says so, else these very ones."""
        if self.redraw is None:
            return self
        if not isinstance(self.source, TensorSource):
            raise TypeError("only in-memory data can be re-drawn per epoch")
        x = self.redraw(self.source.x, generator)
        return self._like(TensorSource(x, self.source.name), self.context)

    def to(self, device: torch.device | None) -> Examples:
        """In-memory data moves to ``device`` once (batches are gathered there); files stay."""
        if device is None or not isinstance(self.source, TensorSource):
            return self
        context = self.context
        if isinstance(context, TensorSource):
            context = context.to(device)
        return self._like(self.source.to(device), context, redraw=self.redraw,
                          fingerprint=self._fingerprint)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            digest = self.source.fingerprint()
            if self.context is not None:
                digest = hashlib.sha256((digest + self.context.fingerprint()).encode()).hexdigest()
            self._fingerprint = digest
        return self._fingerprint

    def tensor(self) -> Tensor:
        """Every example at once (small data only: tests, the built-in test splits)."""
        return self.take(np.arange(len(self)))
