"""zoo.data sources: every kind of file is read in its stored dtype, row by row, with the
shape and levels a family needs inferred, and bad values refused with their row and column."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data.infer import fit_data, for_model
from zoo.data.open import open_data
from zoo.data.source import Examples, TensorSource
from zoo.errors import DataError

POINTS = np.array([[0.5, -1.25], [2.0, 3.5], [-0.75, 0.0], [1.5, 2.25]], dtype=np.float32)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """``datasets`` writes its Arrow cache here, and never goes online."""
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache", raising=False)
    return tmp_path / "hf-cache"


def all_rows(source) -> torch.Tensor:
    return source.take(np.arange(len(source)))


@pytest.mark.parametrize("header", [True, False])
def test_csv_with_or_without_header(tmp_path, header):
    path = tmp_path / "points.csv"
    lines = (["x,y"] if header else []) + [f"{a},{b}" for a, b in POINTS] + [""]
    path.write_text("\n".join(lines))
    source = open_data(path)
    assert source.shape == (2,) and source.dtype == np.float32
    assert torch.equal(all_rows(source), torch.from_numpy(POINTS))
    assert source.columns == (("x", "y") if header else None)


def test_csv_of_integers_is_kept_as_integers(tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text("a,b,c\n0,3,1\n2,2,0\n")
    fitted = fit_data(open_data(path), "discrete")
    assert fitted.config == {"shape": [3], "levels": 4}
    assert "largest value is 3" in fitted.note
    assert fitted.examples.take([1]).dtype == torch.int64


def test_npy_is_memory_mapped_and_keeps_uint8(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (50, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "images.npy", images)
    source = open_data(tmp_path / "images.npy")
    assert isinstance(source.array, np.memmap)
    rows = source.take([3, 1])
    assert rows.dtype == torch.uint8 and torch.equal(rows, torch.from_numpy(images[[3, 1]]))
    fitted = fit_data(source, "discrete")
    assert fitted.config == {"shape": [1, 6, 5], "levels": 256}
    assert "the largest value is 255" in fitted.note
    batch = fitted.examples.take(torch.tensor([3, 1]))  # converted per batch only
    assert batch.dtype == torch.int64 and batch.shape == (2, 1, 6, 5)
    assert torch.equal(batch[:, 0], torch.from_numpy(images[[3, 1]]).long())
    # A whole-file pass (value checks, fingerprint) reads plain chunks, the same values.
    assert torch.equal(torch.cat([rows for _, rows in source.chunks(7)]), torch.from_numpy(images))


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float64, np.bool_])
def test_npy_of_other_dtypes(tmp_path, dtype):
    values = (np.arange(12).reshape(6, 2) % 2).astype(dtype)
    np.save(tmp_path / "v.npy", values)
    source = open_data(tmp_path / "v.npy")
    assert torch.equal(all_rows(source).double(), torch.from_numpy(values.astype(np.float64)))
    assert fit_data(source, "discrete").config["levels"] == 2


def test_safetensors_one_tensor(tmp_path):
    from safetensors.torch import save_file

    x = torch.from_numpy(POINTS)
    save_file({"points": x}, str(tmp_path / "p.safetensors"))
    source = open_data(tmp_path / "p.safetensors")
    assert torch.equal(all_rows(source), x)
    save_file({"a": x, "b": x.clone()}, str(tmp_path / "two.safetensors"))
    with pytest.raises(DataError, match="holds 2 tensors"):
        open_data(tmp_path / "two.safetensors")


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3)])
def test_image_folder(tmp_path, mode, channels):
    from PIL import Image

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    for i, p in enumerate(pixels):
        image = Image.fromarray(p[..., 0] if mode == "L" else p, mode)
        image.save(tmp_path / f"img{i}.png")
    source = open_data(tmp_path)
    assert source.shape == (channels, 4, 5) and source.dtype == np.uint8
    first = source.take([0])[0]
    want = pixels[0][..., 0][None] if mode == "L" else pixels[0].transpose(2, 0, 1)
    assert torch.equal(first, torch.from_numpy(want))
    fitted = fit_data(source, "discrete")
    assert fitted.config == {"shape": [channels, 4, 5], "levels": 256}


def test_parquet_through_datasets(tmp_path, hf_cache):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": POINTS[:, 0], "y": POINTS[:, 1], "name": list("abcd")}),
                   tmp_path / "p.parquet")
    source = open_data(tmp_path / "p.parquet")
    assert source.columns == ("x", "y") and source.shape == (2,)
    assert torch.equal(source.take([2, 0]), torch.from_numpy(POINTS[[2, 0]]))


def test_saved_dataset_dict_uses_its_train_split(tmp_path, hf_cache):
    import datasets

    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"a": [1, 2, 3], "b": [0, 0, 1]}),
        "test": datasets.Dataset.from_dict({"a": [9], "b": [9]}),
    })
    dd.save_to_disk(str(tmp_path / "saved"))
    source = open_data(tmp_path / "saved")
    assert len(source) == 3 and torch.equal(source.take([2]), torch.tensor([[3, 1]]))
    assert torch.equal(open_data(tmp_path / "saved", split="test").take([0]), torch.tensor([[9, 9]]))
    with pytest.raises(DataError, match="no split 'valid'"):
        open_data(tmp_path / "saved", split="valid")


def test_tensors_arrays_and_torch_datasets():
    x = torch.from_numpy(POINTS)
    pairs = torch.utils.data.TensorDataset(x, torch.zeros(4))
    for data in (x, POINTS, pairs):
        assert torch.equal(all_rows(open_data(data)).float(), x)


def test_shape_and_levels_can_be_given(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(16, dtype=np.uint8).reshape(2, 8) % 3)
    source = open_data(tmp_path / "v.npy")
    fitted = fit_data(source, "discrete", {"shape": [2, 4], "levels": 3})
    assert fitted.config == {"shape": [2, 4], "levels": 3}
    assert fitted.examples.take([0]).shape == (1, 2, 4)
    with pytest.raises(DataError, match=r"row 0, column 2: value 2 is outside levels 0..1"):
        fit_data(source, "discrete", {"levels": 2})
    with pytest.raises(DataError, match="do not fill shape"):
        fit_data(source, "discrete", {"shape": [3, 3]})


@pytest.mark.parametrize("values,kind,message", [
    ([[0.0, 1.0], [2.0, float("nan")]], "continuous", r"row 1, column 1 \('y'\): nan"),
    ([[0.0, float("-inf")], [2.0, 1.0]], "continuous", r"row 0, column 1 \('y'\): -inf"),
    ([[0.0, 1.0], [2.5, 1.0]], "discrete", r"row 1, column 0 \('x'\): 2.5 is not an integer"),
    ([[0.0, 1.0], [2.0, -1.0]], "discrete", r"row 1, column 1 \('y'\): .*negative"),
], ids=["nan", "inf", "fraction", "negative"])
def test_bad_values_are_named_by_row_and_column(tmp_path, values, kind, message):
    path = tmp_path / "bad.csv"
    path.write_text("x,y\n" + "\n".join(",".join(str(v) for v in row) for row in values))
    with pytest.raises(DataError, match=message):
        fit_data(open_data(path), kind)


def test_feature_count_must_match_a_trained_model():
    source = TensorSource(torch.zeros(3, 3), "three.csv")
    with pytest.raises(DataError, match=r"three.csv: examples have 3 values .* takes shape \[2\]"):
        for_model(source, "continuous", (2,))
    assert for_model(TensorSource(torch.zeros(3, 64), "x"), "discrete", (1, 8, 8)).take([0]).shape \
        == (1, 1, 8, 8)


def test_redrawn_examples_stay_probabilities_until_drawn():
    probs = torch.full((4, 3), 0.5)
    ex = Examples(TensorSource(probs), "discrete", redraw=lambda x, g: torch.bernoulli(x, generator=g).long())
    assert ex.take([0]).is_floating_point()
    drawn = ex.drawn(torch.Generator().manual_seed(0))
    assert drawn.take([0]).dtype == torch.int64
