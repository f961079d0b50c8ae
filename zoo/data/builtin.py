"""The four built-in datasets (their protocols: docs/data-protocols.md).

The protocols are fixed: every number zoo reports uses them. Each loader returns a whole
split as one tensor; ``Dataset.examples`` serves it through the one data path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from zoo.data.dataset import Dataset
from zoo.data.mnist_files import (  # noqa: F401  (gunzip: re-exported)
    check_images,
    gunzip,
    image_file,
    read_images,
    read_labels,
)
from zoo.errors import DataError
from zoo.hookspecs import hookimpl

if TYPE_CHECKING:
    import torch

# --- built-in loaders -------------------------------------------------------------------

MOONS_SIZE = {"train": 20000, "test": 20000}
MOONS_SEED = {"train": 0, "test": 1}


def load_moons(split: str, root: Path) -> torch.Tensor:
    """sklearn's two moons, noise 0.1: train n=20000 seed 0, test n=20000 seed 1."""
    import torch
    from sklearn.datasets import make_moons

    x, _ = make_moons(MOONS_SIZE[split], noise=0.1, random_state=MOONS_SEED[split])
    return torch.as_tensor(x, dtype=torch.float32)


def load_digits(split: str, root: Path) -> torch.Tensor:
    """sklearn's bundled 8x8 digits as int 0..16; a fixed permutation gives 1437 train, 360 test."""
    import torch
    from sklearn.datasets import load_digits as sk_load_digits

    images = torch.as_tensor(sk_load_digits().images, dtype=torch.int64).unsqueeze(1)
    return _digits_split(images, split)


def load_digit_labels(split: str, root: Path) -> torch.Tensor:
    """The digit (0..9) of each image of ``load_digits``'s split, in the same order."""
    import torch
    from sklearn.datasets import load_digits as sk_load_digits

    return _digits_split(torch.as_tensor(sk_load_digits().target, dtype=torch.int64), split)


def _digits_split(rows: torch.Tensor, split: str) -> torch.Tensor:
    import torch

    order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    return rows[order[:1437]] if split == "train" else rows[order[1437:]]


MNIST_IMAGES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
MNIST_LABELS = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def load_mnist(split: str, root: Path) -> torch.Tensor:
    """MNIST's official split as int64 [N, 1, 28, 28] in 0..255.

    Reads ``root/MNIST/raw/{train,t10k}-images-idx3-ubyte`` (or its ``.gz``, decompressed
    into ``$ZOO_HOME/cache/mnist``, never beside the data: the data folder may be read-only)
    with zoo's IDX reader (``zoo.data.mnist_files``), which names the file and what is
    wrong with it. torchvision's ``MNIST`` class is not used: it also wants the label files,
    and it would ``torch.load`` a legacy ``MNIST/processed`` folder.
    """
    path, shown = _mnist_file(split, Path(root))
    return read_images(path, shown_as=shown)


def load_mnist_labels(split: str, root: Path) -> torch.Tensor:
    """MNIST's labels (0..9) of ``split``, from ``root/MNIST/raw`` as for the images."""
    raw = Path(root) / "MNIST" / "raw"
    name = MNIST_LABELS[split]
    path = image_file(raw, name)
    if path is None:
        raise DataError(f"MNIST labels not found: looked for {name} (or {name}.gz) in {raw}")
    return read_labels(path, shown_as=raw / name if path.parent == raw else raw / f"{name}.gz")


def check_mnist(root: Path) -> None:
    """Both splits' image files exist and have MNIST's header and length (no pixels read)."""
    for split in MNIST_IMAGES:
        check_images(*_mnist_file(split, Path(root)))


def _mnist_file(split: str, root: Path) -> tuple[Path, Path]:
    """The readable file of ``split``'s images and the name errors show (the user's file)."""
    raw = Path(root) / "MNIST" / "raw"
    name = MNIST_IMAGES[split]
    path = image_file(raw, name)
    if path is None:
        raise DataError(
            f"MNIST not found: looked for {name} (or {name}.gz) in {raw}. Download it on "
            "a machine with internet with "
            f"`python -c \"import torchvision; torchvision.datasets.MNIST('{root}', download=True)\"` "
            "and copy the folder over, or set ZOO_DATA to a folder that holds MNIST/raw."
        )
    return path, (raw / name if path.parent == raw else raw / f"{name}.gz")


def read_mnist_images(path: Path) -> torch.Tensor:
    """The images of an MNIST IDX file as int64 ``[N, 1, 28, 28]``."""
    return read_images(Path(path))


def load_binarized_mnist(split: str, root: Path) -> torch.Tensor:
    """MNIST/255 as Bernoulli probabilities; the test split is drawn once with seed 0."""
    import torch

    probs = load_mnist(split, root).float() / 255.0
    if split == "train":
        return probs
    return torch.bernoulli(probs, generator=torch.Generator().manual_seed(0)).long()


def draw_binary(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One Bernoulli draw of every pixel: the binarized-MNIST training set of one epoch."""
    import torch

    return torch.bernoulli(probs, generator=generator).long()


BUILTIN = (
    Dataset("moons", "continuous", (2,), load_moons,
            description="sklearn two moons, noise 0.1 (D=2)"),
    Dataset("digits", "discrete", (1, 8, 8), load_digits, levels=17,
            description="sklearn 8x8 digits, 17 levels (offline)",
            labels=load_digit_labels, classes=DIGIT_CLASSES),
    Dataset("mnist", "discrete", (1, 28, 28), load_mnist, levels=256,
            description="MNIST via torchvision, 256 levels", check_files=check_mnist,
            labels=load_mnist_labels, classes=DIGIT_CLASSES),
    Dataset("binarized-mnist", "discrete", (1, 28, 28), load_binarized_mnist, levels=2,
            description="MNIST binarized by Bernoulli draws, re-drawn every epoch",
            per_epoch=draw_binary, check_files=check_mnist,
            labels=load_mnist_labels, classes=DIGIT_CLASSES),
)


@hookimpl
def zoo_register_datasets(register):
    for dataset in BUILTIN:
        register(dataset)
