"""Big data streams (issue 29, "time to the first step on big data"): data too large for a
pass over every value before training gets a bounded look instead, and the trainer checks
every batch it reads. A bad value deep in the file is still refused with its row and
column, at the step that reads it, and nothing is written at -o; the run reads a bounded
number of rows however long the file is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo.cli.commands import cli
from zoo.data import checks, infer
from zoo.data.source import ArraySource, Examples, Source
from zoo.training import loop


@pytest.fixture
def streaming(monkeypatch):
    """Small files take the big-data path: no pass before training, a look at rows 0-7
    and 192-199 of 200 (two blocks of 8)."""
    monkeypatch.setattr(infer, "FULL_PASS_BYTES", 0)
    monkeypatch.setattr(checks, "GLANCE_BLOCKS", 2)
    monkeypatch.setattr(checks, "GLANCE_BLOCK", 8)


def images(tmp_path, bad_row: int | None):
    x = np.random.default_rng(0).integers(0, 2, (200, 4, 4)).astype(np.uint8)
    if bad_row is not None:
        x[bad_row, 1, 2] = 7  # levels=2 takes 0 and 1
    np.save(tmp_path / "images.npy", x)
    return tmp_path / "images.npy", ["made", "-c", "hidden=[8]", "-c", "levels=2"]


def points(tmp_path, bad_row: int | None):
    x = np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32)
    if bad_row is not None:
        x[bad_row, 1] = np.nan
    np.save(tmp_path / "points.npy", x)
    return tmp_path / "points.npy", ["realnvp", "-c", "couplings=1", "-c", "hidden=4"]


CASES = {"levels": (images, "row 190, position [1, 2]: value 7 is outside the model's "
                            "levels 0..1"),
         "nan": (points, "row 190, column 1: nan (NaN and infinite values cannot be modelled)")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_value_in_the_last_rows_is_refused_when_training_reads_it(
        tmp_path, cli_runner, streaming, case):
    make, message = CASES[case]
    data, args = make(tmp_path, bad_row=190)  # outside the look: found by the trainer
    out = tmp_path / "out"
    # 12 steps of 16 read every one of the 180 training rows; the 20 held out are scored.
    result = cli_runner.invoke(cli, ["train", *args, "--data", str(data), "-o", str(out),
                                     "--steps", "12", "--batch-size", "16", "-q"])
    assert result.exit_code != 0, result.output
    text = result.output.strip()
    lines = text.splitlines()  # what was decided (notes), then the error in one line
    assert "Traceback" not in text and all(line.startswith("zoo: ") for line in lines[:-1]), text
    assert "sample of 16 rows now and in every batch as training reads it" in text, text
    assert f"{data}: {message}" in text.splitlines()[-1], text
    assert not out.exists() and not list(tmp_path.glob(".staging-out-*")), list(tmp_path.iterdir())


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_same_file_without_the_bad_value_trains(tmp_path, cli_runner, streaming, case):
    make, _ = CASES[case]
    data, args = make(tmp_path, bad_row=None)
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["train", *args, "--data", str(data), "-o", str(out),
                                     "--steps", "12", "--batch-size", "16", "-q"])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").exists()


def test_a_bad_value_in_the_look_is_refused_before_training(tmp_path, cli_runner, streaming):
    data, args = images(tmp_path, bad_row=195)
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["train", *args, "--data", str(data), "-o", str(out),
                                     "--steps", "1", "-q"])
    assert result.exit_code != 0
    assert "row 195, position [1, 2]: value 7 is outside levels 0..1" in result.output
    assert not out.exists()


class Counting(Source):
    """8M rows of 4x4 uint8 (128 MB as stored), made up when read; counts the rows read."""

    name, shape, dtype = "counting", (4, 4), np.dtype(np.uint8)

    def __init__(self, n: int = 8_000_000):
        self.n, self.rows_read = n, 0

    def __len__(self) -> int:
        return self.n

    def read(self, index: np.ndarray) -> torch.Tensor:
        self.rows_read += len(index)
        return torch.from_numpy((index % 2).astype(np.uint8)[:, None, None]).expand(
            len(index), 4, 4).contiguous()


def test_a_run_on_big_data_reads_a_bounded_number_of_rows():
    source = Counting()
    model = zoo.fit("made", source, config={"hidden": [8], "levels": 2}, steps=2,
                    batch_size=16, progress=False)
    assert model.metrics["train_n"] == len(source)
    # The look (8,192 rows), 2 batches, the held-out rows (at most 50,000) and the
    # metrics' samples (5,000 per split): not the 8M rows of a pass over the data.
    assert source.rows_read <= checks.GLANCE_BLOCKS * checks.GLANCE_BLOCK + 2 * 16 \
        + loop.MAX_VAL_ROWS + 2 * 5_000, source.rows_read


def test_a_large_file_is_split_into_distinct_rows_without_a_permutation(monkeypatch):
    monkeypatch.setattr(loop, "PERMUTED_SPLIT_ROWS", 10)
    data = Examples(ArraySource(np.arange(1000, dtype=np.int64)[:, None], "rows"), "continuous")
    splits = loop.split_train(data, zoo.Recipe(val_fraction=0.1, seed=3))
    train = splits.train.take(np.arange(len(splits.train))).reshape(-1).long()
    val = splits.val.take(np.arange(len(splits.val))).reshape(-1).long()
    assert len(val) == 100 and len(train) == 900
    assert sorted(train.tolist() + val.tolist()) == list(range(1000))
    assert torch.equal(train, train.sort().values)  # the file's order
    assert splits.train.source.row_numbers(np.array([0, 899])).tolist() == train[[0, 899]].tolist()
    again = loop.split_train(data, zoo.Recipe(val_fraction=0.1, seed=3))
    assert torch.equal(again.val.take(np.arange(100)).reshape(-1).long(), val)


@pytest.mark.parametrize("n", [1, 2, 3, 1000, 1025, 65_537])
def test_the_computed_shuffle_is_a_permutation_fixed_by_the_generator(n):
    from zoo.training.batches import ShuffledOrder

    order = ShuffledOrder(n, torch.Generator().manual_seed(5))
    rows = torch.cat([order[i : i + 100] for i in range(0, n, 100)])
    assert sorted(rows.tolist()) == list(range(n))
    again = ShuffledOrder(n, torch.Generator().manual_seed(5))
    assert torch.equal(again[0:n], rows)
    if n >= 1000:
        assert not torch.equal(rows, torch.arange(n))
        other = ShuffledOrder(n, torch.Generator().manual_seed(6))[0:n]
        assert not torch.equal(other, rows)


def test_batches_of_a_large_file_read_every_row_once_an_epoch(monkeypatch):
    from zoo.training import batches

    monkeypatch.setattr(batches, "PERMUTED_SPLIT_ROWS", 10)
    data = Examples(ArraySource(np.arange(1000, dtype=np.int64)[:, None], "rows"), "continuous")
    stream = batches.Batches(data, 100, torch.Generator().manual_seed(0))
    epoch = torch.cat([stream.next().reshape(-1) for _ in range(10)]).long()
    assert isinstance(stream.order, batches.ShuffledOrder)
    assert sorted(epoch.tolist()) == list(range(1000)) and not torch.equal(epoch, torch.arange(1000))
    # A checkpoint replays the stream to the very batch.
    saved, following = stream.state(), stream.next()
    replay = batches.Batches(data, 100, torch.Generator().manual_seed(0))
    replay.restore(saved)
    assert torch.equal(replay.next(), following)
