"""The extra files of an artifact (zoo.artifact.extras): what a recipe build writes, how config.json
lists them, and how loading and ``zoo verify`` treat them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from zoo.artifact import extras, manifest
from zoo.artifact import io as artifacts
from zoo.artifact.verify import verify
from zoo.errors import ArtifactError

MADE_CATALOG = """
version: 1
entries:
  - name: made-tiny
    family: made
    dataset: digits
    description: a tiny MADE for tests
    config: {shape: [1, 8, 8], levels: 17, hidden: [32]}
    recipe: {steps: 20, batch_size: 64, eval_every: 10, val_fraction: 0.1}
"""
EXTRAS = (extras.SAMPLES, extras.TRAINING, extras.HISTORY)


def size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def check_built(path: Path, samples_size: tuple[int, int], evaluated: list[int]) -> None:
    raw = json.loads((path / artifacts.CONFIG).read_text())
    assert raw["format"] == 3  # files (2) and the distribution of its scores (3)
    assert sorted(raw["log_prob"]) == ["levels", "test", "train"]
    assert sorted(raw["files"]) == sorted(EXTRAS)
    for file, digest in raw["files"].items():
        assert artifacts.sha256_file(path / file) == digest
    assert size(path / extras.SAMPLES) == samples_size
    assert size(path / extras.TRAINING) == (720, 450)
    history = extras.read_history(path / extras.HISTORY)
    assert history["best_step"] == raw["source"]["best_step"]
    assert history["test_nll"] == pytest.approx(raw["metrics"]["test_nll"])
    steps = [r["step"] for r in history["records"]]
    assert steps == sorted(steps) and steps[-1] == raw["recipe"]["steps"]
    assert [r["step"] for r in history["records"] if "val_nll" in r] == evaluated
    assert all("train_nll" in r for r in history["records"])
    [result] = verify([str(path)])
    assert result.ok and result.warnings == ()


def test_a_recipe_build_writes_pictures_and_history_listed_with_sha256(pictured_artifact):
    check_built(pictured_artifact, (640, 560), [10, 20, 30])


def test_a_discrete_recipe_build_draws_an_image_grid(registry_file):
    registry_file(MADE_CATALOG)
    check_built(zoo.pull("made-tiny"), (530, 530), [10, 20])


def test_the_trainer_records_the_training_nll_about_a_hundred_times():
    from zoo.catalog.recipe import Recipe
    from zoo.training.loop import HISTORY_POINTS, maximise_likelihood

    model = zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    recipe = Recipe(steps=400, batch_size=32, eval_every=100, val_fraction=0.1)
    result = maximise_likelihood(model, zoo.get_dataset("moons"), recipe, progress=False,
                 train_data=torch.randn(500, 2))
    assert len(result.history) == HISTORY_POINTS
    assert [r["step"] for r in result.history if "val_nll" in r] == [100, 200, 300, 400]
    assert result.best_step in (100, 200, 300, 400)


def test_an_artifact_without_pictures_is_format_1_and_loads_and_verifies(tmp_path: Path):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    path = zoo.save(flow, tmp_path / "plain")
    raw = json.loads((path / artifacts.CONFIG).read_text())
    assert raw["format"] == 1 and "files" not in raw  # what zoo versions without extras read
    assert sorted(p.name for p in path.iterdir()) == sorted(artifacts.FILES)
    zoo.load(str(path))
    [result] = verify([str(path)])
    assert result.ok and result.warnings == ()
    card = (path / artifacts.CARD).read_text()
    assert ".png" not in card and extras.HISTORY not in card


def test_loading_never_needs_the_extra_files(pictured_artifact):
    before = zoo.load(pictured_artifact).log_prob(torch.zeros(3, 2))
    for file in EXTRAS:
        (pictured_artifact / file).unlink()
    assert torch.equal(zoo.load(pictured_artifact).log_prob(torch.zeros(3, 2)), before)


def test_verify_warns_of_a_missing_picture_and_reports_a_changed_one(pictured_artifact,
                                                                      cli_runner):
    from zoo.cli.commands import cli

    path = pictured_artifact
    (path / extras.SAMPLES).unlink()
    result = cli_runner.invoke(cli, ["verify", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok ")
    assert f"warning: {path / extras.SAMPLES} is missing" in result.output
    [checked] = verify([str(path)])
    assert checked.ok and len(checked.warnings) == 1
    assert checked.as_dict()["warnings"] == list(checked.warnings)

    picture = bytearray((path / extras.TRAINING).read_bytes())
    picture[100] ^= 0xFF
    (path / extras.TRAINING).write_bytes(bytes(picture))
    result = cli_runner.invoke(cli, ["verify", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("BAD ")
    assert f"{path / extras.TRAINING} is corrupted: sha256" in result.output
    assert "Traceback" not in result.output


LISTINGS = {
    "a path out of the folder": {"../../evil.png": "0" * 64},
    "a sub-folder": {"pictures/samples.png": "0" * 64},
    "an absolute path": {"/etc/passwd.json": "0" * 64},
    "one of the model's files": {"config.json": "0" * 64},
    "the source sidecar": {"source.json": "0" * 64},
    "an unknown suffix": {"run.sh": "0" * 64},
    "a hidden file": {".samples.png": "0" * 64},
    "a short sha256": {"samples.png": "abc"},
    "an upper-case sha256": {"samples.png": "A" * 64},
    "too many": {f"p{i}.png": "0" * 64 for i in range(extras.MAX_FILES + 1)},
}


@pytest.mark.parametrize("case", sorted(LISTINGS))
def test_a_config_listing_bad_extra_files_is_refused(pictured_artifact, case):
    path = pictured_artifact
    raw = json.loads((path / artifacts.CONFIG).read_text())
    raw["files"] = LISTINGS[case]
    (path / artifacts.CONFIG).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="files: "):
        artifacts.read_config(path)
    [result] = verify([str(path)])
    assert not result.ok and "files: " in result.problems[0]


def test_a_format_3_config_is_refused_by_name_when_newer_than_this_zoo(pictured_artifact,
                                                                        monkeypatch):
    path = pictured_artifact
    monkeypatch.setattr(manifest, "FORMAT", 2)
    with pytest.raises(ArtifactError, match="format 3 is newer than this zoo reads"):
        artifacts.read_config(path)


def test_zoo_info_names_the_extra_files(pictured_artifact, cli_runner):
    from zoo.cli.commands import cli

    result = cli_runner.invoke(cli, ["info", str(pictured_artifact)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("extra files"))
    assert line.split(None, 2)[2] == "samples.png, training.png, history.json"
