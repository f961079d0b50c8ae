"""Hostile names: catalog names, Hub repository ids and revisions are validated, and no name
given to any command can make zoo write outside ``$ZOO_HOME`` (nor anywhere, when refused)."""

from __future__ import annotations

import os
import subprocess
import sys

import faultkit
import pytest
from faultkit import tree
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo import api
from zoo.artifact import store
from zoo.catalog import load_catalog
from zoo.cli.commands import cli
from zoo.errors import CatalogError, ConfigError
from zoo.names import check_catalog_name, check_repo_id, check_revision, parse_hub_name

BAD_CATALOG_NAMES = ["../x", "..", ".", "/etc", "a/b", "a\\b", "a\x00b", "A", "", "a" * 65,
                     "a..b", "-a", "a-", ".a", " a", "a\n", "é", "a b", "a:b", "~", "$HOME"]
GOOD_CATALOG_NAMES = ["realnvp-moons", "made-digits", "a", "a.b", "a_b", "x" * 64, "pixelcnn-mnist-2"]

BAD_REPO_IDS = ["../x", "a/../b", "a", "a/b/c", "/a/b", "a//b", "a/b\x00", "-a/b", "a-/b",
                "a--b/c", "a/b.git", "a/" + "b" * 97, "a /b", "a/b@c", "", "./a", "a/.b", "a/.."]
GOOD_REPO_IDS = ["acme/moons", "Org_1/repo.name", "a/b", "a" * 96 + "/" + "b" * 96]

BAD_REVISIONS = ["", "..", "a/../b", "/abs", "a//b", "a/", ".hidden", "a/.b", "x.lock", "a\x00",
                 "a b", "r" * 256, "a..b", "refs/../../x", "a@{1}", "a~1", "a^", "a:b", "-x"]
GOOD_REVISIONS = ["main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567",
                  "feature/x-y_z", "abc1234"]


@pytest.mark.parametrize("name", BAD_CATALOG_NAMES)
def test_bad_catalog_names(name):
    with pytest.raises(ConfigError, match="invalid model name"):
        check_catalog_name(name)


@pytest.mark.parametrize("name", GOOD_CATALOG_NAMES)
def test_good_catalog_names(name):
    assert check_catalog_name(name) == name


@pytest.mark.parametrize("repo", BAD_REPO_IDS)
def test_bad_repo_ids(repo):
    with pytest.raises(ConfigError, match="invalid Hub repository id"):
        check_repo_id(repo)
    if "@" not in repo:  # "a/b@c" is a valid name: repository a/b at revision c
        with pytest.raises(ConfigError):
            parse_hub_name(f"hf-hub:{repo}")


@pytest.mark.parametrize("repo", GOOD_REPO_IDS)
def test_good_repo_ids_agree_with_huggingface_hub(repo):
    from huggingface_hub.utils import validate_repo_id

    assert check_repo_id(repo) == repo
    validate_repo_id(repo)


@pytest.mark.parametrize("repo", [r for r in BAD_REPO_IDS if "/" in r and r.count("/") == 1])
def test_repo_ids_huggingface_hub_refuses_are_refused(repo):
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError:
        with pytest.raises(ConfigError):
            check_repo_id(repo)


@pytest.mark.parametrize("revision", BAD_REVISIONS)
def test_bad_revisions(revision):
    with pytest.raises(ConfigError, match="invalid revision"):
        check_revision(revision)
    with pytest.raises(ConfigError):
        parse_hub_name(f"hf-hub:acme/moons@{revision}")


@pytest.mark.parametrize("revision", GOOD_REVISIONS)
def test_good_revisions(revision):
    assert parse_hub_name(f"hf-hub:acme/moons@{revision}") == ("acme/moons", revision)


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_an_accepted_name_stays_inside_the_store(name):
    """Any text at all: either refused, or a folder directly inside ``models/``."""
    try:
        check_catalog_name(name)
    except ConfigError:
        return
    home = store.home().resolve()
    path = store.artifact_dir(name).resolve()
    assert path.parent == home / "models" and path.name == name


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab/.-_@~^:\\ \x00"), max_size=20))
def test_accepted_revisions_are_safe_ref_file_names(revision):
    """huggingface_hub keeps ``refs/REVISION`` files: an accepted revision is a relative path
    of plain components that cannot climb out of ``refs``."""
    try:
        check_revision(revision)
    except ConfigError:
        return
    parts = revision.split("/")
    assert all(p and not p.startswith(".") and p not in (".", "..") for p in parts)
    assert os.path.normpath(os.path.join("refs", revision)).startswith("refs" + os.sep)


HOSTILE_ARGS = ["../../etc", "/etc", "..", ".", "~root", "hf-hub:../../etc", "hf-hub:a/b@../../x",
                "hf-hub:a/b@", "hf-hub:/etc/passwd", "a\x00b", "x" * 5000, "realnvp-moons/../../../x",
                "realnvp-moons\n", "-", "hf-hub:"]
COMMANDS = [["pull"], ["pull", "--force"], ["train", "--steps", "1"], ["info"], ["sample", "-n", "1"],
            ["eval"], ["verify"]]


def test_no_command_writes_anything_for_a_hostile_name(tmp_path, monkeypatch, cli_runner):
    """Every command, every hostile name: a one-line error (or a verdict), and not one file
    written, inside the store or out of it."""
    work = tmp_path / "a" / "b" / "c"
    home = work / "home"
    work.mkdir(parents=True)
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(work)
    before = tree(tmp_path)
    tries = 0
    for command in COMMANDS:
        for name in HOSTILE_ARGS:
            result = cli_runner.invoke(cli, [*command, name])
            tries += 1
            assert result.exit_code != 0, (command, name, result.output)
            assert "Traceback" not in result.output, (command, name, result.output)
            if command != ["verify"]:
                assert result.output.startswith("Error:") or "Usage:" in result.output, (
                    command, name, result.output)
            assert tree(tmp_path) == before, (command, name)
    assert not home.exists() or faultkit.written_artifacts(home) == []
    faultkit.record("names", "hostile names (`../../etc`, absolute paths, NUL, 5000 "
                    "characters, `hf-hub:` ids and revisions with `..`) to pull, pull --force, "
                    "train, info, sample, eval, verify", tries,
                    "one-line error or a BAD verdict, non-zero exit",
                    "nothing written anywhere (the whole temporary tree unchanged)")


def test_zoo_pull_dotdot_etc_in_a_real_process(tmp_path):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    env = faultkit.zoo_env(work / "home")
    before = tree(tmp_path)
    result = subprocess.run([sys.executable, "-m", "zoo", "pull", "../../etc"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: no artifact at ../../etc")
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree(tmp_path) == before


@pytest.mark.parametrize("field, value", [
    ("name", "../evil"), ("name", "/etc/x"), ("name", "a\x00b"), ("name", "E" * 70),
])
def test_registry_entries_with_hostile_names_are_refused(registry_file, field, value):
    import json

    entry = {"name": "ok", "family": "realnvp", "dataset": "moons", "config": {"shape": [2]},
             "recipe": {"steps": 1}}
    entry[field] = value
    path = registry_file(json.dumps({"version": 1, "entries": [entry]}))
    with pytest.raises(CatalogError, match="invalid model name"):
        load_catalog(path)


@pytest.mark.parametrize("source, message", [
    ({"repo": "../x"}, "invalid Hub repository id"),
    ({"repo": "a/b", "revision": "../../x"}, "invalid revision"),
    ({"repo": "a/b", "revision": "/etc"}, "invalid revision"),
    ({"repo": "a/b", "sha256": "../" * 20}, "sha256"),
])
def test_registry_sources_with_hostile_ids_are_refused(registry_file, source, message):
    import json

    entry = {"name": "ok", "family": "realnvp", "dataset": "moons", "config": {"shape": [2]},
             "recipe": {"steps": 1}, "sources": [source]}
    path = registry_file(json.dumps({"version": 1, "entries": [entry]}))
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)


def test_a_symlink_planted_in_the_store_is_never_written_through(tiny_catalog, tmp_path):
    """A link under an artifact's name (or a staging/trash name) pointing outside the store:
    pulling replaces the link; the target is not touched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    models = store.models_dir()
    models.mkdir(parents=True)
    (models / "realnvp-tiny").symlink_to(outside, target_is_directory=True)
    (models / ".staging-realnvp-tiny-0123456789ab").symlink_to(outside, target_is_directory=True)
    (models / ".trash-realnvp-tiny-0123456789ab").symlink_to(outside, target_is_directory=True)
    before = tree(outside)
    path = api.pull("realnvp-tiny", force=True, progress=False)
    assert not path.is_symlink() and api.verify()[0].ok
    assert tree(outside) == before
    assert sorted(p.name for p in models.iterdir()) == ["realnvp-tiny"]
