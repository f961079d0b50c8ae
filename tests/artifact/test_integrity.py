"""Integrity: every load checks the weights' sha256; a flipped byte in the store is found and
reported with its path; `zoo verify` checks the whole store; `zoo pull --force` repairs."""

from __future__ import annotations

import json
import shutil

import faultkit
import pytest

import zoo
from zoo import api
from zoo.artifact import store
from zoo.artifact.verify import check
from zoo.cli.commands import cli
from zoo.errors import ArtifactError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def flip_byte(path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def pulled(tiny_catalog):
    return api.pull("realnvp-tiny", progress=False)


def test_a_flipped_byte_is_found_by_load_and_verify_then_repaired(pulled, cli_runner):
    weights = pulled / "model.safetensors"
    good = weights.read_bytes()
    flip_byte(weights)

    with pytest.raises(ArtifactError) as info:
        zoo.load("realnvp-tiny")
    assert str(weights) in str(info.value) and "zoo pull --force" in str(info.value)

    result = cli_runner.invoke(cli, ["verify"])
    assert result.exit_code == 1
    assert f"BAD  realnvp-tiny  {pulled}" in result.output and "corrupted" in result.output

    # A plain pull does not rebuild what is there; --force does, and the store is whole again.
    assert cli_runner.invoke(cli, ["pull", "realnvp-tiny", "-q"]).exit_code == 0
    assert not api.verify()[0].ok
    result = cli_runner.invoke(cli, ["pull", "realnvp-tiny", "--force", "-q"])
    assert result.exit_code == 0, result.output
    assert weights.read_bytes() == good  # the recipe is deterministic: the same bytes again
    result = cli_runner.invoke(cli, ["verify", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == [{"name": "realnvp-tiny", "path": str(pulled),
                                          "ok": True, "problems": [], "warnings": []}]
    assert store.leftovers() == []
    faultkit.record("integrity", "one flipped byte in a stored model.safetensors", 1,
                    "load refused naming the file; `zoo verify` BAD with the path, exit 1; "
                    "`zoo pull --force` rebuilt it", "after repair: the same bytes as before "
                    "the flip, verify ok, no leftovers")


@pytest.mark.parametrize("offset", [0, 7, 40, -1])
def test_flips_anywhere_in_the_file_are_caught(pulled, offset):
    """In the header length, the header, or the data: the sha256 catches every one."""
    flip_byte(pulled / "model.safetensors", offset)
    problems = check(pulled)
    assert len(problems) == 1 and str(pulled / "model.safetensors") in problems[0]
    if offset == -1:
        faultkit.record("integrity", "a flipped byte in the header length, the header, or "
                        "the data of the weights", 4, "sha256 mismatch reported with the "
                        "path", "untouched (verify writes nothing)")


def test_verify_reports_missing_files_and_bad_configs_with_their_paths(pulled, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(pulled, copy)
    (copy / "README.md").unlink()
    assert check(copy) == (f"{copy / 'README.md'} is missing",)
    (copy / "config.json").write_text("{")
    problems = check(copy)
    assert any("config.json is not valid JSON" in p and str(copy) in p for p in problems)


def test_verify_names_paths_and_unknowns(pulled, tmp_path, cli_runner):
    results = {r.name: r for r in api.verify(["realnvp-tiny", str(pulled), "nope", "../x",
                                              "hf-hub:acme/absent"])}
    assert results["realnvp-tiny"].ok and results[str(pulled)].ok
    assert "unknown model 'nope'" in results["nope"].problems[0]
    assert not results["../x"].ok and not results["hf-hub:acme/absent"].ok
    result = cli_runner.invoke(cli, ["verify", "realnvp-tiny"])
    assert result.exit_code == 0 and result.output.startswith("ok   realnvp-tiny")


def test_verify_of_an_empty_store(cli_runner):
    result = cli_runner.invoke(cli, ["verify"])
    assert result.exit_code == 0 and "no artifacts" in result.output


def test_verify_writes_nothing(pulled):
    from faultkit import tree

    flip_byte(pulled / "model.safetensors")
    before = tree(store.home())
    api.verify()
    assert tree(store.home()) == before
