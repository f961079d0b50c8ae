"""``Dataset``: a named dataset of the catalog (built in, or registered by a plugin)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

    from zoo.data.source import Examples

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """A named dataset.

    ``loader(split, root)`` returns the whole split as a tensor: float32 ``[N, D]`` for
    continuous data, int64 ``[N, *shape]`` in ``0..levels-1`` for discrete data. A dataset
    whose training examples are re-drawn every epoch (binarized MNIST) returns the
    underlying probabilities for ``"train"`` and sets ``per_epoch(x, generator)`` to draw
    them; the trainer calls it once per pass over the data.
    """

    name: str
    kind: Literal["continuous", "discrete"]
    shape: tuple[int, ...]
    loader: Callable[[str, Path], torch.Tensor]
    levels: int | None = None
    description: str = ""
    per_epoch: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    # Checks the dataset's files cheaply (headers and sizes), so that a command refuses bad
    # files in one line before it prints or starts anything; None: nothing to check.
    check_files: Callable[[Path], None] | None = None
    # Each split's labels, ``[N]`` int64 in ``0..len(classes)-1``, row for row with the
    # examples, for a dataset that carries them (digits, MNIST); ``classes`` names them.
    labels: Callable[[str, Path], torch.Tensor] | None = None
    classes: tuple[str, ...] = ()

    def check(self, root: str | Path | None = None) -> None:
        """Raise ``DataError`` naming the first bad file of this dataset, if any."""
        if self.check_files is None:
            return
        from zoo.paths import data_dir

        self.check_files(Path(root) if root is not None else data_dir())

    def load(self, split: str, root: str | Path | None = None) -> torch.Tensor:
        """Load ``split`` ("train" or "test"); ``root`` defaults to ``$ZOO_DATA``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        from zoo.paths import data_dir

        return self.loader(split, Path(root) if root is not None else data_dir())

    def examples(self, split: str, root: str | Path | None = None) -> Examples:
        """``split`` on the one data path: the trainer, ``zoo eval`` and ``zoo score`` read this.

        The fingerprint a checkpoint records is the protocol's name: the data is fixed by it.
        """
        from zoo.data.source import Examples, TensorSource

        x = self.load(split, root)
        redraw = self.per_epoch if split == "train" else None
        labels = None
        if self.labels is not None:
            from zoo.paths import data_dir

            labels = TensorSource(self.labels(split, Path(root) if root is not None
                                              else data_dir()), f"labels of {self.name}")
        return Examples(TensorSource(x, f"dataset {self.name} ({split})"), self.kind, self.shape,
                        redraw=redraw, fingerprint=f"dataset:{self.name}:{split}",
                        context=labels, context_kind="label" if labels is not None else None,
                        context_names=self.classes)

    def draw(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The examples to train on for one epoch (``x`` itself unless re-drawn per epoch)."""
        return x if self.per_epoch is None else self.per_epoch(x, generator)


