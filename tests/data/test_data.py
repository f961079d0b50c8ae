"""Datasets: the fixed protocols of digits and moons, and MNIST read from IDX files.

MNIST cannot be downloaded here, so the tests write tiny IDX files (the real format: a
big-endian header, then uint8 pixels), plain or gzipped, under ``MNIST/raw`` of a temporary
data folder, and load them through zoo.data's ``mnist`` and ``binarized-mnist`` datasets,
which run torchvision's IDX reader on them.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch

import zoo
from zoo.data import mnist_files
from zoo.errors import DataError

IMAGE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
LABEL_FILES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}


def idx_images(images: torch.Tensor) -> bytes:
    """An IDX3 file: magic 0x00000803 (unsigned bytes, 3 dimensions), the sizes, the pixels."""
    n, h, w = images.shape
    return struct.pack(">IIII", 0x00000803, n, h, w) + images.to(torch.uint8).numpy().tobytes()


def idx_labels(labels: torch.Tensor) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.to(torch.uint8).numpy().tobytes()


def fake_images(n: int, seed: int) -> torch.Tensor:
    images = torch.randint(0, 256, (n, 28, 28), generator=torch.Generator().manual_seed(seed))
    images[:, 0, 0] = 0  # always off after binarisation
    images[:, 0, 1] = 255  # always on
    return images


def write_mnist(root: Path, *, compress: bool = False, sizes=None) -> dict[str, torch.Tensor]:
    """Write train and test IDX files (images and labels) under ``root/MNIST/raw``."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    sizes = sizes or {"train": 12, "test": 5}
    written = {}
    for seed, (split, n) in enumerate(sizes.items()):
        images = fake_images(n, seed)
        labels = torch.arange(n) % 10
        for name, blob in ((IMAGE_FILES[split], idx_images(images)),
                           (LABEL_FILES[split], idx_labels(labels))):
            if compress:
                (raw / f"{name}.gz").write_bytes(gzip.compress(blob))
            else:
                (raw / name).write_bytes(blob)
        written[split] = images
    return written


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_loads_idx_files(tmp_path, compress, split):
    written = write_mnist(tmp_path, compress=compress)
    x = zoo.get_dataset("mnist").load(split, root=tmp_path)
    assert x.dtype == torch.int64 and x.shape == (len(written[split]), 1, 28, 28)
    assert torch.equal(x[:, 0], written[split].long())
    if compress:  # decompressed into $ZOO_HOME's cache, never beside the data
        assert not (tmp_path / "MNIST" / "raw" / IMAGE_FILES[split]).exists()
        assert not list((tmp_path / "MNIST" / "raw").glob(".*part"))
        assert len(list(mnist_files.cache_dir().glob(f"{IMAGE_FILES[split]}.*"))) == 1


def test_mnist_is_found_through_zoo_data(tmp_path, monkeypatch):
    written = write_mnist(tmp_path)
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    assert torch.equal(zoo.get_dataset("mnist").load("test")[:, 0], written["test"].long())


def test_mnist_dataset_protocol():
    dataset = zoo.get_dataset("mnist")
    assert (dataset.kind, dataset.shape, dataset.levels) == ("discrete", (1, 28, 28), 256)


def test_binarized_mnist(tmp_path):
    written = write_mnist(tmp_path)
    dataset = zoo.get_dataset("binarized-mnist")
    assert (dataset.kind, dataset.shape, dataset.levels) == ("discrete", (1, 28, 28), 2)
    # Test split: drawn once, with generator seed 0, so every load is the same.
    test = dataset.load("test", root=tmp_path)
    assert test.dtype == torch.int64 and test.shape == (5, 1, 28, 28)
    assert set(test.unique().tolist()) <= {0, 1}
    assert torch.equal(test, dataset.load("test", root=tmp_path))
    expected = torch.bernoulli(written["test"].unsqueeze(1).float() / 255.0,
                               generator=torch.Generator().manual_seed(0)).long()
    assert torch.equal(test, expected)
    assert (test[:, 0, 0, 0] == 0).all() and (test[:, 0, 0, 1] == 1).all()
    # Train split: the probabilities, re-drawn every epoch by the trainer.
    probs = dataset.load("train", root=tmp_path)
    assert probs.is_floating_point() and torch.equal(probs[:, 0], written["train"] / 255.0)
    g = torch.Generator().manual_seed(0)
    first, second = dataset.draw(probs, g), dataset.draw(probs, g)
    assert first.dtype == torch.int64 and set(first.unique().tolist()) <= {0, 1}
    assert not torch.equal(first, second)
    assert (first[:, 0, 0, 1] == 1).all() and (second[:, 0, 0, 0] == 0).all()


@pytest.mark.parametrize("name", ["mnist", "binarized-mnist"])
def test_missing_mnist_says_where_and_how(tmp_path, name):
    with pytest.raises(DataError) as info:
        zoo.get_dataset(name).load("train", root=tmp_path)
    message = str(info.value)
    assert "MNIST not found" in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message
    assert "download=True" in message and "ZOO_DATA" in message


def test_only_the_split_that_is_asked_for_is_needed(tmp_path):
    write_mnist(tmp_path, sizes={"test": 3})
    assert len(zoo.get_dataset("mnist").load("test", root=tmp_path)) == 3
    with pytest.raises(DataError, match="MNIST not found"):
        zoo.get_dataset("mnist").load("train", root=tmp_path)


@pytest.mark.parametrize("blob", [
    b"",
    b"not an idx file at all",
    struct.pack(">IIII", 0x00000803, 10, 28, 28) + bytes(28 * 28),  # truncated: 1 of 10
    idx_images(torch.zeros(2, 14, 14)),  # the wrong image size
], ids=["empty", "garbage", "truncated", "14x14"])
def test_corrupt_idx_file_is_a_clear_error(tmp_path, blob):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / IMAGE_FILES["test"]).write_bytes(blob)
    with pytest.raises(DataError, match=IMAGE_FILES["test"]):
        zoo.get_dataset("mnist").load("test", root=tmp_path)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / f"{IMAGE_FILES['test']}.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(DataError, match="gzip"):
        zoo.get_dataset("mnist").load("test", root=tmp_path)
    assert not (raw / IMAGE_FILES["test"]).exists()
    assert not list(raw.glob(".*part"))


def test_digits_protocol():
    dataset = zoo.get_dataset("digits")
    assert (dataset.kind, dataset.shape, dataset.levels) == ("discrete", (1, 8, 8), 17)
    train, test = dataset.load("train"), dataset.load("test")
    assert train.shape == (1437, 1, 8, 8) and test.shape == (360, 1, 8, 8)
    assert train.dtype == test.dtype == torch.int64
    both = torch.cat([train, test])
    assert both.min() == 0 and both.max() == 16
    # The split is the fixed permutation of sklearn's 1797 images, so it never changes.
    from sklearn.datasets import load_digits

    images = torch.as_tensor(load_digits().images, dtype=torch.int64).unsqueeze(1)
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    assert torch.equal(train, images[order[:1437]]) and torch.equal(test, images[order[1437:]])


def test_moons_protocol():
    dataset = zoo.get_dataset("moons")
    assert (dataset.kind, dataset.shape) == ("continuous", (2,))
    train, test = dataset.load("train"), dataset.load("test")
    assert train.shape == test.shape == (20000, 2)
    assert train.dtype == test.dtype == torch.float32
    assert not torch.equal(train, test)  # seeds 0 and 1
    assert torch.equal(train, dataset.load("train"))
    # The protocol itself (docs/data-protocols.md): make_moons, noise 0.1, seeds 0 and 1.
    from sklearn.datasets import make_moons

    for split, seed in (("train", 0), ("test", 1)):
        x, _ = make_moons(20000, noise=0.1, random_state=seed)
        assert torch.equal(dataset.load(split), torch.as_tensor(x, dtype=torch.float32)), split


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        zoo.get_dataset("digits").load("validation")
