"""Hostile or damaged artifact folders (issue 24, items 4-10).

A symbolic link out of the folder is never read or uploaded; a file that is no regular
file is never hashed; a model card that is not UTF-8 is named; `--json` output is strict
JSON; a missing model card does not hide the artifact from `zoo info`; `zoo sample .`
names its output after the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faultkit
import numpy as np
import pytest

import zoo
from zoo.cli.commands import cli
from zoo.errors import ArtifactError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.fixture
def artifact(tmp_path) -> Path:
    return faultkit.tiny_flow(tmp_path / "art", name="tiny", dataset="moons")


def list_extra(folder: Path, name: str, digest: str = "0" * 64) -> None:
    """List ``name`` in config.json's ``files`` (the weights' hash is kept)."""
    data = json.loads((folder / "config.json").read_text())
    data["files"], data["format"] = {name: digest}, 2
    (folder / "config.json").write_text(json.dumps(data))


@pytest.fixture
def uploads(monkeypatch):
    """Patch out every call that would reach the Hub; record what would have been sent."""
    import huggingface_hub

    sent: list[dict] = []

    class Info:
        oid, commit_url = "0" * 40, "http://hub.invalid/commit"

    def upload_folder(self, *, folder_path, **kwargs):
        sent.append({p.name: p.read_bytes() for p in Path(folder_path).iterdir()})
        return Info()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, **kw: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    monkeypatch.setenv("HF_HOME", os.fspath(Path(os.environ["ZOO_HOME"]) / "hf"))
    return sent


def test_a_listed_file_linked_to_an_endless_proc_file_is_refused_not_hashed(artifact, uploads,
                                                                           cli_runner):
    # Item 4: `zoo verify` hashed /proc/self/pagemap until it was killed.
    (artifact / "history.json").symlink_to("/proc/self/pagemap")
    list_extra(artifact, "history.json")
    env = faultkit.zoo_env(Path(os.environ["ZOO_HOME"]))
    done = faultkit.run_zoo(["verify", str(artifact)], env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "history.json is a symbolic link" in done.stdout and "outside" in done.stdout
    faultkit.refused_line(cli_runner.invoke(cli, ["push", str(artifact), "--repo", "me/x"]),
                   "history.json", "outside the artifact")
    assert uploads == []


def test_weights_linked_to_an_endless_proc_file_are_not_hashed_by_push(artifact):
    (artifact / "model.safetensors").unlink()
    (artifact / "model.safetensors").symlink_to("/proc/self/pagemap")
    env = faultkit.zoo_env(Path(os.environ["ZOO_HOME"]), HF_TOKEN="hf_" + "x" * 30,
                           HF_ENDPOINT="http://127.0.0.1:9")  # nothing listens: no upload
    done = faultkit.run_zoo(["push", str(artifact), "--repo", "me/x"], env, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "model.safetensors is a symbolic link" in done.stderr, done.stderr


def test_a_listed_fifo_is_refused_as_no_regular_file(artifact):
    os.mkfifo(artifact / "history.json")
    list_extra(artifact, "history.json")
    (result,) = zoo.verify([str(artifact)])
    assert not result.ok and "not a regular file" in result.problems[0], result


def test_a_model_card_linked_to_a_secret_is_never_read_or_uploaded(tmp_path, artifact, uploads,
                                                                   cli_runner):
    # Item 5: verify said ok and push uploaded the secret inside the model card.
    secret = tmp_path / "secret.env"
    secret.write_text("AWS_SECRET_ACCESS_KEY=hunter2\n")
    (artifact / "README.md").unlink()
    (artifact / "README.md").symlink_to(secret)
    (result,) = zoo.verify([str(artifact)])
    assert not result.ok and "README.md is a symbolic link" in result.problems[0], result
    faultkit.refused_line(cli_runner.invoke(cli, ["push", str(artifact), "--repo", "me/x"]),
                   "README.md", "outside the artifact")
    assert uploads == []
    with pytest.raises(ArtifactError, match="outside the artifact"):
        zoo.push(artifact, repo="me/x")


def test_weights_or_config_linked_out_of_the_artifact_are_refused(tmp_path, artifact):
    elsewhere = tmp_path / "elsewhere.json"
    (artifact / "config.json").rename(elsewhere)
    (artifact / "config.json").symlink_to(elsewhere)
    with pytest.raises(ArtifactError, match="config.json is a symbolic link"):
        zoo.load(artifact)


def test_a_link_inside_the_artifact_is_fine(artifact, uploads):
    (artifact / "card.md").write_bytes((artifact / "README.md").read_bytes())
    (artifact / "README.md").unlink()
    (artifact / "README.md").symlink_to("card.md")
    (result,) = zoo.verify([str(artifact)])
    assert result.ok, result
    zoo.push(artifact, repo="me/x")
    assert len(uploads) == 1 and b"tiny" in uploads[0]["README.md"]


def test_a_model_card_that_is_not_utf8_is_named(artifact, uploads, cli_runner):
    # Item 6: "'utf-8' codec can't decode ..." without the file.
    (artifact / "README.md").write_bytes(b"# caf\xe9\n")
    line = faultkit.refused_line(cli_runner.invoke(cli, ["push", str(artifact), "--repo", "me/x"]),
                          "README.md", "not UTF-8")
    assert str(artifact) in line
    assert uploads == []


def strict_loads(text: str):
    def refuse(word):
        raise AssertionError(f"{word} in --json output: not JSON")

    return json.loads(text, parse_constant=refuse)


def test_nan_in_a_config_recipe_is_refused_and_info_json_stays_json(artifact, cli_runner):
    # Item 7: `zoo info --json` printed a bare NaN; the recipe and source took NaN unchecked.
    for section, value in (("recipe", {"lr": float("nan")}), ("source", {"x": float("inf")})):
        data = json.loads((artifact / "config.json").read_text())
        data[section] = value
        (artifact / "config.json").write_text(json.dumps(data))
        result = cli_runner.invoke(cli, ["info", str(artifact), "--json"])
        info = strict_loads(result.output)
        assert "not a JSON value" in info["artifact_error"], info
        with pytest.raises(ArtifactError, match="config.json is not valid JSON"):
            zoo.load(artifact)


def test_eval_json_of_one_row_is_strict_json(tmp_path, cli_runner):
    # Item 8: `"stderr": NaN` for a single example.
    faultkit.tiny_flow(tmp_path / "vec")
    (tmp_path / "one.csv").write_text("x,y\n0.5,-0.25\n")
    result = cli_runner.invoke(cli, ["eval", str(tmp_path / "vec"), "--data",
                                     str(tmp_path / "one.csv"), "--json"])
    assert result.exit_code == 0, result.output
    out = strict_loads(result.output)
    assert out["stderr"] is None and np.isfinite(out["nll"]) and out["n"] == 1


def test_info_sees_an_artifact_whose_model_card_was_deleted(artifact, cli_runner):
    # Item 9: "no artifact at DIR", though `zoo sample DIR` works with it.
    (artifact / "README.md").unlink()
    result = cli_runner.invoke(cli, ["info", str(artifact)])
    assert result.exit_code == 0, result.output
    assert "realnvp" in result.output and "no artifact" not in result.output
    assert zoo.info(str(artifact))["pulled"] is True


def test_sample_dot_names_its_output_after_the_folder(artifact, cli_runner, monkeypatch):
    # Item 10: `cd artifact && zoo sample .` wrote `-samples.png`.
    monkeypatch.chdir(artifact)
    result = cli_runner.invoke(cli, ["sample", ".", "-n", "2"])
    assert result.exit_code == 0, result.output
    assert (artifact / "art-samples.png").is_file(), sorted(os.listdir(artifact))
    assert not (artifact / "-samples.png").exists()


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for this module, written once its tests have run."""
    yield
    faultkit.record("hostile", "an artifact folder whose listed history.json links to "
                    "/proc/self/pagemap, or is a FIFO; README.md, config.json linked to a "
                    "file outside it (verify, push, load); weights linked to /proc (push); a link inside "
                    "it", 7,
                    "verify BAD naming the link and where it points, exit 1 (it hung, or "
                    "said ok); push refused in one line, nothing uploaded (it uploaded the "
                    "secret in the model card); the inner link accepted",
                    "nothing written; nothing sent")
    faultkit.record("hostile", "a README.md that is not UTF-8 (`zoo push`)", 1,
                    "one line naming the file (it was the codec's message alone)",
                    "nothing sent")
    faultkit.record("hostile", "NaN and Infinity in config.json's recipe and source; `zoo "
                    "eval --json` on one row; `zoo info` with README.md deleted; `zoo sample .` "
                    "inside the artifact", 5,
                    "config refused naming the file; every --json output strict JSON (null "
                    "for no value); info shows the artifact; the output named after the "
                    "folder (it was `-samples.png`)", "nothing written but the samples")
