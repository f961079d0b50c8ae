"""Writing an artifact outside the store never destroys what is not a zoo artifact.

`-o` (and `zoo.save`) may create a new path or fill an empty folder; an existing zoo
artifact is replaced only with `--force` (`overwrite=True`); a file, a folder of other
files, the data being read, and the store or anything in it are refused in one line with
nothing changed (issue 24, items 1-3).
"""

from __future__ import annotations

import json

import faultkit
import numpy as np
import pytest
import torch

import zoo
from zoo.artifact import store
from zoo.artifact.destination import DestinationError, check_destination
from zoo.cli.commands import cli

TINY = ["--steps", "2", "-c", "couplings=1", "-c", "hidden=4", "--batch-size", "16", "-q"]


@pytest.fixture
def points_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a:.5f},{b:.5f}" for a, b in rng.standard_normal((48, 2)))
    path = tmp_path / "pts.csv"
    path.write_text("x,y\n" + rows + "\n")
    return path


def train(cli_runner, data, out, *extra):
    return cli_runner.invoke(cli, ["train", "realnvp", "--data", str(data), "-o", str(out),
                                   *TINY, *extra])


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def refused(result, *words):
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output and "unexpected" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def test_a_folder_of_the_users_files_is_refused_and_kept(tmp_path, points_csv, cli_runner):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "thesis.tex").write_text("three years of work")
    refused(train(cli_runner, points_csv, project), "not a zoo artifact", "thesis.tex")
    assert (project / "thesis.tex").read_text() == "three years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "pts.csv"]  # no staging left


def test_the_data_being_read_is_refused_and_kept(tmp_path, points_csv, cli_runner):
    before = points_csv.read_bytes()
    refused(train(cli_runner, points_csv, points_csv), "data being read")
    assert points_csv.read_bytes() == before


def test_any_file_is_refused_and_kept(tmp_path, points_csv, cli_runner):
    report = tmp_path / "report.txt"
    report.write_text("keep me")
    refused(train(cli_runner, points_csv, report), "is a file")
    assert report.read_text() == "keep me"


def test_an_output_inside_a_data_folder_is_refused(tmp_path, cli_runner):
    folder = tmp_path / "images"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((8, 2), dtype=np.float32))
    refused(train(cli_runner, folder, folder / "model"), "data being read")
    assert sorted(p.name for p in folder.iterdir()) == ["a.npy"]


@pytest.mark.parametrize("where", ["home", "models", "stored"])
def test_the_store_and_anything_in_it_is_refused(tmp_path, points_csv, cli_runner, where):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    from zoo.artifact import io as artifacts

    artifacts.save(flow, store.artifact_dir("kept-model"))
    before = snapshot(store.home())
    target = {"home": store.home(), "models": store.models_dir(),
              "stored": store.artifact_dir("kept-model")}[where]
    refused(train(cli_runner, points_csv, target, "--force"), "zoo store")
    assert snapshot(store.home()) == before


def test_a_new_path_and_an_empty_folder_are_written(tmp_path, points_csv, cli_runner):
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "new" / "deeper", empty):
        result = train(cli_runner, points_csv, out)
        assert result.exit_code == 0, result.output
        assert (out / "config.json").is_file()


def test_an_artifact_is_replaced_only_with_force(tmp_path, points_csv, cli_runner):
    out = tmp_path / "flow"
    assert train(cli_runner, points_csv, out).exit_code == 0
    before = snapshot(out)
    refused(train(cli_runner, points_csv, out, "--seed", "5"), "--force")
    assert snapshot(out) == before
    result = train(cli_runner, points_csv, out, "--seed", "5", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["recipe"]["seed"] == 5


def test_an_artifact_with_other_files_is_refused_even_with_force(tmp_path, points_csv, cli_runner):
    out = tmp_path / "flow"
    assert train(cli_runner, points_csv, out).exit_code == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    refused(train(cli_runner, points_csv, out, "--force"), "notes.txt")
    assert snapshot(out) == before


def test_a_catalog_entry_trained_to_a_users_folder_is_guarded_too(tmp_path, tiny_catalog,
                                                                  cli_runner):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "thesis.tex").write_text("keep")
    result = cli_runner.invoke(cli, ["train", "realnvp-tiny", "-o", str(project), "-q"])
    refused(result, "not a zoo artifact")
    assert (project / "thesis.tex").read_text() == "keep"


def test_zoo_save_refuses_what_it_would_destroy_and_replaces_with_overwrite(tmp_path):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    project = tmp_path / "proj"
    project.mkdir()
    (project / "thesis.tex").write_text("keep")
    with pytest.raises(DestinationError, match="not a zoo artifact"):
        zoo.save(flow, project)
    assert (project / "thesis.tex").read_text() == "keep"
    with pytest.raises(DestinationError, match="zoo store"):
        zoo.save(flow, store.models_dir())
    path = zoo.save(flow, tmp_path / "flow")
    with pytest.raises(DestinationError, match="overwrite=True"):
        zoo.save(flow, path)
    torch.manual_seed(1)
    other = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    zoo.save(other, path, overwrite=True)
    x = torch.zeros(3, 2)
    assert torch.equal(zoo.load(path).log_prob(x), other.log_prob(x))


def test_a_symbolic_link_is_refused_and_its_target_kept(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(DestinationError, match="symbolic link"):
        check_destination(link)
    assert (target / "keep.txt").read_text() == "keep"


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for this module, written once its tests have run."""
    yield
    faultkit.record("destination", "`zoo train --data D -o X` with X a folder of the user's "
                    "files, the data file itself, another file, a path inside the data "
                    "folder, a symbolic link", 5, "one line naming X and why; exit 1; "
                    "no training", "X byte for byte as before; no staging folder")
    faultkit.record("destination", "`-o` at $ZOO_HOME, its models folder, a stored artifact "
                    "(with --force)", 3, "one line: the zoo store is refused",
                    "the store tree byte for byte as before")
    faultkit.record("destination", "`-o` at an existing artifact: without --force, and with "
                    "--force when it also holds a file of the user's", 2,
                    "one line (pass --force / other files named)", "the artifact unchanged")
    faultkit.record("destination", "`zoo.save` at a folder of other files, the store, an "
                    "artifact without overwrite=True", 3, "DestinationError naming the path",
                    "nothing changed")
