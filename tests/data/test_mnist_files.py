"""MNIST's IDX files (zoo.data.mnist_files): bad files are one line naming the file and
what is wrong, a pull on them writes nothing to the store, and a gzip is decompressed into
``$ZOO_HOME``'s cache, never beside the (possibly read-only) data.

The damaged files are small fakes; the tests on the real files point at the shared MNIST
folder next to the repository (``../shared/data``) and are skipped when it is absent.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import pytest
import torch
from layout import ROOT

import zoo
from zoo.artifact import store
from zoo.cli.commands import cli
from zoo.data import mnist_files
from zoo.errors import DataError

SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
REAL_RAW = SHARED_DATA / "MNIST" / "raw"
needs_real_mnist = pytest.mark.skipif(
    not (REAL_RAW / "t10k-images-idx3-ubyte.gz").is_file(),
    reason=f"the shared MNIST files are not at {REAL_RAW}")

#: The canonical MD5 of the uncompressed test images (issue 26); the training file's
#: 47 MB would only make the test slower.
CANONICAL_MD5 = {"t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea"}
TEST_IMAGES = "t10k-images-idx3-ubyte"


def idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(">I" + "I" * len(dims), magic, *dims) + payload


def write_raw(root: Path, name: str, blob: bytes, *, compress: bool = False) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    path = raw / (f"{name}.gz" if compress else name)
    path.write_bytes(gzip.compress(blob) if compress else blob)
    return path


GOOD = idx(0x803, (3, 28, 28), bytes(range(256)) * 9 + bytes(3 * 784 - 256 * 9))

DAMAGED = {  # id: (file contents, gzipped?, what the message must say)
    "empty": (b"", False, "shorter than the 16-byte IDX header"),
    "garbage": (b"this is not an idx file at all", False, "IDX magic"),
    "labels": (idx(0x801, (3,), bytes(3)), False, "label file"),
    "14x14": (idx(0x803, (2, 14, 14), bytes(2 * 196)), False, "14x14"),
    "truncated": (GOOD[:-100], False, "truncated"),
    "too-long": (GOOD + bytes(10), False, "longer than its header says"),
    "truncated-gz": (None, True, "truncated"),
    "not-gzip": (b"PK\x03\x04 a zip archive, not a gzip", True, "not a valid gzip file"),
}


@pytest.mark.parametrize("case", DAMAGED, ids=list(DAMAGED))
def test_a_damaged_file_is_one_line_naming_it(tmp_path, case):
    blob, compress, what = DAMAGED[case]
    if case == "truncated-gz":
        path = write_raw(tmp_path, TEST_IMAGES, GOOD, compress=True)
        path.write_bytes(path.read_bytes()[:-30])
    elif compress:  # bytes that only pretend to be a gzip
        path = write_raw(tmp_path, TEST_IMAGES + ".gz", blob)
    else:
        path = write_raw(tmp_path, TEST_IMAGES, blob)
    with pytest.raises(DataError) as info:
        zoo.get_dataset("mnist").load("test", root=tmp_path)
    message = str(info.value)
    assert what in message and str(path) in message and "\n" not in message
    leftovers = list(mnist_files.cache_dir().glob(".*")) if mnist_files.cache_dir().exists() else []
    assert not leftovers  # a failed decompression leaves no partial file


def test_a_good_file_reads_back(tmp_path):
    write_raw(tmp_path, TEST_IMAGES, GOOD)
    x = zoo.get_dataset("mnist").load("test", root=tmp_path)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.int64
    assert x.flatten()[:256].tolist() == list(range(256)) and x.flatten()[-1] == 0


def test_gzip_goes_to_the_cache_and_is_reused(tmp_path):
    archive = write_raw(tmp_path, TEST_IMAGES, GOOD, compress=True)
    before = sorted(p.name for p in archive.parent.iterdir())
    first = zoo.get_dataset("mnist").load("test", root=tmp_path)
    assert sorted(p.name for p in archive.parent.iterdir()) == before  # nothing beside the data
    cached = list(mnist_files.cache_dir().iterdir())
    assert len(cached) == 1 and cached[0].name.startswith(TEST_IMAGES)
    assert str(cached[0]).startswith(str(store.home()))
    stamp = cached[0].stat().st_mtime_ns
    assert torch.equal(zoo.get_dataset("mnist").load("test", root=tmp_path), first)
    assert cached[0].stat().st_mtime_ns == stamp  # read from the cache, not decompressed again


def test_a_read_only_data_folder_works(tmp_path):
    archive = write_raw(tmp_path, TEST_IMAGES, GOOD, compress=True)
    archive.parent.chmod(0o555)
    try:
        x = zoo.get_dataset("mnist").load("test", root=tmp_path)
    finally:
        archive.parent.chmod(0o755)
    assert x.shape == (3, 1, 28, 28)
    assert [p.name for p in archive.parent.iterdir()] == [archive.name]


@pytest.mark.parametrize("case", ["truncated", "labels", "missing"])
def test_pull_on_bad_mnist_writes_nothing(cli_runner, tmp_path, monkeypatch, case):
    """A recipe build stops at its data, in one line naming the file, before the store."""
    if case != "missing":
        write_raw(tmp_path, "train-images-idx3-ubyte", DAMAGED[case][0])
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    result = cli_runner.invoke(cli, ["pull", "made-binarized-mnist-cpu"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte" in lines[0], result.output
    assert "Traceback" not in result.output
    models = store.models_dir()
    assert not models.exists() or not [p for p in models.iterdir() if not p.name.startswith(".lock")]


@needs_real_mnist
def test_the_real_archives_decompress_to_the_canonical_files(tmp_path, monkeypatch):
    """The shared gzips, seen alone (links in a fresh folder), give the canonical bytes."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in CANONICAL_MD5:
        (raw / f"{name}.gz").symlink_to(REAL_RAW / f"{name}.gz")
    for name, md5 in CANONICAL_MD5.items():
        cached = mnist_files.image_file(raw, name)
        assert cached.parent == mnist_files.cache_dir()
        assert hashlib.md5(cached.read_bytes()).hexdigest() == md5
    monkeypatch.setenv("ZOO_DATA", str(tmp_path))
    assert zoo.get_dataset("mnist").load("test").shape == (10000, 1, 28, 28)


@needs_real_mnist
def test_the_shared_folder_is_read_in_place(monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(SHARED_DATA))
    before = sorted(p.name for p in REAL_RAW.iterdir())
    test = zoo.get_dataset("binarized-mnist").load("test")
    assert test.shape == (10000, 1, 28, 28) and set(test.unique().tolist()) == {0, 1}
    assert sorted(p.name for p in REAL_RAW.iterdir()) == before
