"""Your own data end to end: `zoo train --data`, `zoo score`, `zoo eval --data`, zoo.fit and
zoo.score, and the bad-data list (one line, exit != 0, nothing at -o, nothing in the store)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.artifact import store
from zoo.artifact.scores import percentile
from zoo.cli.commands import cli
from zoo.errors import DataError

TINY = ["--steps", "3", "-c", "couplings=1", "-c", "hidden=4", "--batch-size", "16"]


def ring_points(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, n)
    return (np.stack([np.cos(angle), np.sin(angle)], 1) + 0.05 * rng.standard_normal((n, 2)))


def write_csv(path, points, header=True):
    lines = (["x,y"] if header else []) + [f"{a:.6f},{b:.6f}" for a, b in points]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def points_csv(tmp_path):
    return write_csv(tmp_path / "points.csv", ring_points(64))


@pytest.fixture
def flow_dir(tmp_path, points_csv, cli_runner):
    out = tmp_path / "flow"
    result = cli_runner.invoke(cli, ["train", "realnvp", "--data", str(points_csv), "-o", str(out),
                                     "-q", *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_train_on_a_csv_writes_a_loadable_artifact(flow_dir, points_csv, cli_runner):
    cfg = json.loads((flow_dir / "config.json").read_text())
    assert cfg["family"] == "realnvp" and cfg["config"]["shape"] == [2]
    assert cfg["config"]["couplings"] == 1 and cfg["recipe"]["batch_size"] == 16
    assert cfg["source"]["kind"] == "data" and cfg["source"]["examples"] == 64
    assert math.isfinite(cfg["metrics"]["train_log_prob_p01"])
    model = zoo.load(flow_dir)
    assert model.log_prob(torch.zeros(1, 2)).shape == (1,)
    assert cli_runner.invoke(cli, ["verify", str(flow_dir)]).exit_code == 0
    assert cli_runner.invoke(cli, ["sample", str(flow_dir), "-n", "5", "-o",
                                   str(flow_dir.parent / "s.csv")]).exit_code == 0


def test_train_states_what_it_inferred(tmp_path, cli_runner):
    images = np.random.default_rng(0).integers(0, 4, (40, 3, 3)).astype(np.int64)
    np.save(tmp_path / "images.npy", images)
    result = cli_runner.invoke(cli, ["train", "made", "--data", str(tmp_path / "images.npy"),
                                     "-o", str(tmp_path / "made"), "-q", "--steps", "2",
                                     "-c", "hidden=[8]", "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    assert "shape [1, 3, 3], levels 4 (the largest value is 3)" in result.output
    cfg = json.loads((tmp_path / "made" / "config.json").read_text())
    assert cfg["config"]["levels"] == 4 and cfg["config"]["hidden"] == [8]


def test_an_entry_starts_from_its_config_and_recipe(tmp_path, tiny_catalog, points_csv, cli_runner):
    result = cli_runner.invoke(cli, ["train", "realnvp-tiny", "--data", str(points_csv), "-o",
                                     str(tmp_path / "e"), "-q", "--steps", "2"])
    assert result.exit_code == 0, result.output
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["config"]["hidden"] == 8 and cfg["recipe"]["batch_size"] == 64  # the entry's
    assert cfg["source"]["started_from"] == "realnvp-tiny"


def test_score_prints_csv_in_input_order_and_the_fraction_below(flow_dir, tmp_path, cli_runner):
    new = write_csv(tmp_path / "new.csv", np.concatenate([ring_points(9, 1), [[8.0, 8.0]]]))
    result = cli_runner.invoke(cli, ["score", str(flow_dir), "--data", str(new)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "log_prob,train_percentile" and len(lines) == 11
    rows = [[float(v) for v in line.split(",")] for line in lines[1:]]
    scores = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    model = zoo.load(flow_dir)
    recorded = model.artifact.log_prob
    assert [r[1] for r in rows] == [round(percentile(recorded, "train", s), 2) for s in scores.tolist()]
    assert rows[-1][1] == 0.0 and "against the distribution of" in result.stderr
    want = model.log_prob(torch.tensor(np.loadtxt(new, delimiter=",", skiprows=1),
                                       dtype=torch.float32)).double()
    assert torch.allclose(scores, want, atol=1e-6)
    assert scores[-1] < scores[:-1].min()  # the outlier
    assert "score below the training data's 1st percentile" in result.stderr
    assert torch.equal(zoo.score(model, new), zoo.score(str(flow_dir), str(new)))


def test_score_to_files_and_plot(flow_dir, points_csv, tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["score", str(flow_dir), "--data", str(points_csv),
                                     "-o", str(tmp_path / "s.npy"), "--plot", str(tmp_path / "h.png")])
    assert result.exit_code == 0, result.output
    scores = np.load(tmp_path / "s.npy")
    assert scores.shape == (64,) and scores.dtype == np.float64
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    threshold = json.loads((flow_dir / "config.json").read_text())["metrics"]["train_log_prob_p01"]
    assert f"({threshold:.4f} nats)" in result.output


def test_eval_on_data_is_the_mean_nll_with_its_stderr(flow_dir, points_csv, cli_runner):
    result = cli_runner.invoke(cli, ["eval", str(flow_dir), "--data", str(points_csv), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    nll = -zoo.score(str(flow_dir), str(points_csv))
    assert got["n"] == 64 and got["nll"] == pytest.approx(nll.mean().item())
    assert got["stderr"] == pytest.approx(nll.std().item() / 8)


def test_python_fit_takes_tensors_arrays_and_datasets():
    points = ring_points(48)
    for data in (torch.tensor(points, dtype=torch.float32), points,
                 torch.utils.data.TensorDataset(torch.tensor(points), torch.zeros(48))):
        model = zoo.fit("realnvp", data, config={"couplings": 1, "hidden": 4}, steps=2,
                        batch_size=16, progress=False)
        assert model.config.shape == (2,)
        assert zoo.score(model, data).shape == (48,)
    assert "fit" in zoo.__all__ and "score" in zoo.__all__


def test_fit_learns_the_data():
    points = torch.tensor(ring_points(512), dtype=torch.float32) * 0.3 + 5.0
    before = zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 16})
    model = zoo.fit("realnvp", points, config={"couplings": 2, "hidden": 16}, steps=150,
                    lr=1e-2, batch_size=128, progress=False)
    assert (-zoo.score(model, points)).mean() < (-zoo.score(before, points)).mean() - 5


# --- the bad-data list -----------------------------------------------------------------


def made_artifact(tmp_path, cli_runner):
    np.save(tmp_path / "levels.npy", np.random.default_rng(0).integers(0, 4, (32, 4)))
    out = tmp_path / "made"
    result = cli_runner.invoke(cli, ["train", "made", "--data", str(tmp_path / "levels.npy"), "-o",
                                     str(out), "-q", "--steps", "2", "-c", "hidden=[4]",
                                     "--batch-size", "8"])
    assert result.exit_code == 0, result.output
    return out


def image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (4, 4)).save(folder / "a.png")
    Image.new("L", (5, 3)).save(folder / "b.png")
    return folder


def bad_npy(tmp_path, kind):
    path = tmp_path / "bad.npy"
    if kind == "truncated":
        np.save(path, np.zeros((100, 2), dtype=np.float32))
        path.write_bytes(path.read_bytes()[:-40])
    elif kind == "garbage":
        path.write_bytes(b"this is not numpy at all")
    else:
        values = np.zeros((5, 2), dtype=np.float32)
        values[3, 0] = np.inf
        np.save(path, values)
    return path


BAD = {
    "nan": (lambda t: write_csv(t / "d.csv", [[0, 1], [1, 2], [2, float("nan")]]),
            r"d.csv: row 2, column 1 \('y'\): nan"),
    "inf-npy": (lambda t: bad_npy(t, "inf"), r"bad.npy: row 3, column 0: inf"),
    "ragged": (lambda t: (t / "d.csv").write_text("x,y\n1,2\n3,4,5\n") and t / "d.csv",
               r"d.csv: line 3 has 3 fields, but line 1 has 2"),
    "not-a-number": (lambda t: (t / "d.csv").write_text("x,y\n1,2\n3,abc\n") and t / "d.csv",
                     r"d.csv: line 3, column 1 \('y'\): 'abc' is not a number"),
    "empty": (lambda t: (t / "d.csv").write_text("") == 0 and t / "d.csv", r"d.csv: the file is empty"),
    "missing": (lambda t: t / "nowhere.csv", r"nowhere.csv: no such file or folder"),
    "mixed-images": (image_folder, r"images of different sizes: a.png is 4x4, b.png is 5x3"),
    "truncated-npy": (lambda t: bad_npy(t, "truncated"), r"bad.npy: truncated .npy file"),
    "garbage-npy": (lambda t: bad_npy(t, "garbage"), r"bad.npy: not a readable .npy file"),
}


def assert_one_line_refusal(result, pattern, *not_there):
    import re

    assert result.exit_code != 0
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert re.search(pattern, text), text
    for path in not_there:
        assert not path.exists(), path
        assert not list(path.parent.glob(f".staging-{path.name}-*"))
    assert not store.models_dir().exists() or not any(store.models_dir().iterdir())


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_data_is_refused_by_train_in_one_line(tmp_path, cli_runner, case):
    make, pattern = BAD[case]
    data = make(tmp_path)
    family = "made" if case == "mixed-images" else "realnvp"
    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["train", family, "--data", str(data), "-o", str(out), *TINY[:2]])
    assert_one_line_refusal(result, pattern, out)


@pytest.mark.parametrize("case", ["nan", "inf-npy", "not-a-number", "truncated-npy"])
def test_bad_data_is_refused_by_score_in_one_line(tmp_path, flow_dir, cli_runner, case):
    make, pattern = BAD[case]
    out = tmp_path / "scores.csv"
    result = cli_runner.invoke(cli, ["score", str(flow_dir), "--data", str(make(tmp_path)),
                                     "-o", str(out)])
    assert_one_line_refusal(result, pattern, out)


def test_values_outside_the_models_levels(tmp_path, cli_runner):
    made = made_artifact(tmp_path, cli_runner)
    np.save(tmp_path / "high.npy", np.array([[0, 1, 2, 3], [0, 1, 7, 3]]))
    out = tmp_path / "s.csv"
    result = cli_runner.invoke(cli, ["score", str(made), "--data", str(tmp_path / "high.npy"),
                                     "-o", str(out)])
    assert_one_line_refusal(result, r"high.npy: row 1, column 2: value 7 is outside the model's "
                                    r"levels 0..3", out)
    result = cli_runner.invoke(cli, ["eval", str(made), "--data", str(tmp_path / "high.npy")])
    assert_one_line_refusal(result, r"value 7 is outside")


def test_a_feature_count_that_does_not_match_the_model(tmp_path, flow_dir, cli_runner):
    (tmp_path / "three.csv").write_text("1,2,3\n4,5,6\n")
    result = cli_runner.invoke(cli, ["score", str(flow_dir), "--data", str(tmp_path / "three.csv")])
    assert_one_line_refusal(result, r"three.csv: examples have 3 values .* model takes shape \[2\]")


def test_python_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        zoo.fit("realnvp", tmp_path / "none.csv")


def test_train_with_data_needs_an_output_and_config_needs_data(points_csv, cli_runner):
    result = cli_runner.invoke(cli, ["train", "realnvp", "--data", str(points_csv)])
    assert result.exit_code != 0 and "--data needs -o" in result.output
    result = cli_runner.invoke(cli, ["train", "realnvp-moons", "-c", "hidden=3"])
    assert result.exit_code != 0 and "-c, --batch-size and --lr go with --data" in result.output
    result = cli_runner.invoke(cli, ["train", "realnvp", "--data", str(points_csv), "-o", "x",
                                     "-c", "nonsense"])
    assert result.exit_code != 0 and "expected KEY=VALUE" in result.output


def test_integer_images_make_a_dequantized_image_flow_scored_at_all_256_levels(tmp_path,
                                                                               cli_runner):
    """uint8 images given to realnvp are discrete images (levels 256, shape [C, H, W]), not
    64 unrelated floats; scoring them checks levels in a type where 255 < 256 holds; the
    mean NLL of a dequantized model is an upper bound, shown with "≤"."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (48, 1, 4, 4)).astype(np.uint8)
    images[0, 0, 0, 0] = 255
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "flow"
    result = cli_runner.invoke(cli, ["train", "realnvp", "--data", str(tmp_path / "images.npy"),
                                     "-o", str(out), "--steps", "2", "--batch-size", "16",
                                     "-c", "scales=1", "-c", "hidden=4", "-c", "blocks=1"])
    assert result.exit_code == 0, result.output
    assert "discrete, shape [1, 4, 4], levels 256" in result.output
    model = zoo.load(out)
    assert model.config.levels == 256 and list(model.config.shape) == [1, 4, 4]
    scored = cli_runner.invoke(cli, ["score", str(out), "--data", str(tmp_path / "images.npy")])
    assert scored.exit_code == 0, scored.output
    assert "lower bounds on log p" in scored.output
    evaluated = cli_runner.invoke(cli, ["eval", str(out), "--data", str(tmp_path / "images.npy")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "data NLL    ≤ " in evaluated.output


def test_an_own_data_model_shows_itself_like_a_catalog_model(flow_dir):
    cfg = json.loads((flow_dir / "config.json").read_text())
    assert sorted(cfg["files"]) == ["history.json", "samples.png", "training.png"]
    assert sorted(p.name for p in flow_dir.iterdir()) == [
        "README.md", "config.json", "history.json", "model.safetensors", "samples.png",
        "training.png"]
    assert cfg["name"] == "flow" and cfg["format"] == 3
    assert sorted(cfg["log_prob"]) == ["levels", "train", "val"]  # val: held out of training
    assert cfg["log_prob"]["train"]["n"] + cfg["log_prob"]["val"]["n"] == 64
    card = (flow_dir / "README.md").read_text()
    assert "\n# flow\n" in card and "realnvp model" not in card and "unknown" not in card
    assert "- data: `" in card and "points.csv` (64 examples; columns `x`, `y`)" in card
    assert "![flow: samples drawn by the model" in card and "## Scores" in card
    assert 'zoo.load("PATH/TO/flow")' in card


def test_sample_over_the_training_data(flow_dir, points_csv, tmp_path, cli_runner, monkeypatch):
    from zoo import pictures

    drawn = []
    real = pictures.density_plot
    monkeypatch.setattr(pictures, "density_plot",
                        lambda *a, **k: (drawn.append(k), real(*a, **k))[1])
    out = tmp_path / "over.png"
    result = cli_runner.invoke(cli, ["sample", str(flow_dir), "--data", str(points_csv), "-n",
                                     "20", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    [kwargs] = drawn
    assert kwargs["title"] == "20 samples of flow" and kwargs["labels"] == ["x", "y"]
    want = torch.tensor(np.loadtxt(points_csv, delimiter=",", skiprows=1), dtype=torch.float32)
    assert torch.equal(kwargs["data"], want)


@pytest.mark.parametrize("args, message", [
    (["-o", "s.csv"], "applies to a .png"),
    (["-o", "s.png", "--data", "nowhere.csv"], "nowhere.csv: no such file"),
])
def test_sample_over_data_refuses_bad_input_in_one_line(flow_dir, points_csv, tmp_path,
                                                        cli_runner, args, message):
    args = [a if not a.startswith(("s.", "nowhere")) else str(tmp_path / a) for a in args]
    if "--data" not in args:
        args += ["--data", str(points_csv)]
    result = cli_runner.invoke(cli, ["sample", str(flow_dir), *args])
    assert result.exit_code != 0 and message in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "s.png").exists()


def test_the_card_s_samples_are_drawn_over_the_training_rows(points_csv, tmp_path, cli_runner,
                                                              monkeypatch):
    from zoo import pictures

    drawn = []
    monkeypatch.setattr(pictures, "density_plot", lambda *a, **k: drawn.append(k) or
                        Path(a[2]).write_bytes(b"png"))
    out = tmp_path / "my-flow"
    result = cli_runner.invoke(cli, ["train", "realnvp", "--data", str(points_csv), "-o",
                                     str(out), "-q", *TINY])
    assert result.exit_code == 0, result.output
    [kwargs] = drawn
    assert kwargs["title"] == "2000 samples of my-flow" and kwargs["labels"] == ["x", "y"]
    want = torch.tensor(np.loadtxt(points_csv, delimiter=",", skiprows=1), dtype=torch.float32)
    assert torch.equal(kwargs["data"], want)  # all 64 rows, in order


def test_a_table_trains_the_family_s_alternatives_and_keeps_the_best_on_validation(
        isolated_home, one_thread, tmp_path):
    """realnvp's tables try the full-covariance map beside the defaults
    (``table_alternatives``): both are trained, the alternative is kept only when it is
    significantly better on the validation rows, and the line that says so names both."""
    import re

    import numpy as np

    import zoo

    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.0, 0.0], [0.9, 0.3, 0.0], [0.5, -0.8, 0.1]])
    table = tmp_path / "t.csv"
    np.savetxt(table, rng.normal(size=(300, 3)) @ mixing.T, delimiter=",", header="a,b,c",
               comments="", fmt="%.6f")
    model = zoo.fit("realnvp", str(table), steps=40)
    figures = [float(v) for v in re.findall(r" (-?\d+\.\d+)", model.selection)]
    assert "whiten: True" in model.selection and len(figures) == 2
    # Three nearly collinear columns: the Gaussian structure is all there is, and the
    # full-covariance map wins by far more than chance.
    assert figures[1] < figures[0] - 0.5
    assert model.config.whiten and "kept whiten: True" in model.selection
    assert model.fit_result.val_nll == pytest.approx(figures[1], abs=1e-4)


def test_an_alternative_that_is_not_significantly_better_is_not_kept(monkeypatch):
    """The defaults stay unless the alternative's per-row gain on validation is 2 standard
    errors or more."""
    import types

    import torch

    import zoo.infer.evaluation as evaluation
    import zoo.training.loop as loop
    from zoo.api import alternatives

    monkeypatch.setattr(evaluation, "nll_per_example", lambda model, val, batch: model.nll)
    monkeypatch.setattr(loop, "split_train",
                        lambda examples, recipe: types.SimpleNamespace(val=object()))
    plan = types.SimpleNamespace(examples=None,
                                 recipe=types.SimpleNamespace(eval_batch_size=64))

    def run(nll):
        return types.SimpleNamespace(nll=torch.tensor(nll, dtype=torch.float64)), None

    defaults = run([1.0, 2.0, 3.0, 4.0])
    noisy = run([0.5, 2.6, 2.5, 4.1])  # a mean gain of 0.1 nats, within the noise
    better = run([0.0, 1.0, 2.0, 3.1])  # about a nat better on every row
    assert alternatives.preferred(plan, [defaults, noisy]) is defaults
    assert alternatives.preferred(plan, [defaults, better]) is better
