"""Errors that point at the cause, with broken plugins installed beside the good ones.

Each plugin below is written as an installed distribution (a ``*.dist-info`` folder with a
``zoo`` entry point, in a temporary folder on ``sys.path``): ``importlib.metadata`` finds it
exactly as it finds a ``pip install --target`` one. Each has one mistake a plugin author
really made (issue 15), and the message zoo gives must name that mistake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
import zoo.api
from zoo.cli.commands import cli
from zoo.plugin import registry
from zoo.testing import main as kit_main

FAMILY = '''
from dataclasses import dataclass

import zoo


@dataclass(frozen=True)
class NiceConfig:
    shape: tuple
    hidden: int = 8


class NiceFamily(zoo.Family):
    name = "nice"
    data_kind = "continuous"
    Config = NiceConfig

    def create(self, config):
        raise NotImplementedError
'''

NICE_ENTRY = '''
@zoo.hookimpl
def zoo_register_entries(register):
    register({"name": "nice-moons", "family": "nice", "dataset": "moons",
              "config": {"shape": [2]}, "recipe": {"steps": 5}})
'''

REGISTERS_NICE = '''
@zoo.hookimpl
def zoo_register_families(register):
    register(NiceFamily())
'''


def install(site: Path, dist: str, entry_point: str, module: str, source: str) -> None:
    """Write an installed distribution ``dist`` whose ``zoo`` entry point loads ``module``."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_point} = {module}\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("authors_"):
            sys.modules.pop(name, None)
    registry.reset()


def invoke(cli_runner, *args):
    registry.reset()
    return cli_runner.invoke(cli, list(args))


# --- a plugin whose import raises -------------------------------------------------------------

CRASHES = FAMILY + NICE_ENTRY + REGISTERS_NICE + '''
raise ImportError("No module named 'nflows_helpers'")
'''


@pytest.fixture
def crashing(site):
    install(site, "nice-flows", "nice", "authors_crash", CRASHES)
    return site


@pytest.mark.parametrize("args", [["pull", "nice-moons"], ["info", "nice-moons"],
                                  ["sample", "nice-moons", "-n", "2"]])
def test_unknown_name_names_the_plugin_that_failed(crashing, cli_runner, args):
    result = invoke(cli_runner, *args)
    assert result.exit_code != 0
    out = " ".join(result.output.split())
    assert "unknown model 'nice-moons'" in out
    assert "'nice' (ImportError: No module named 'nflows_helpers')" in out, out
    assert "did you mean" not in out  # 'realnvp-moons' would send the author the wrong way


def test_verify_names_the_plugin_that_failed(crashing, cli_runner):
    result = invoke(cli_runner, "verify", "nice-moons")
    assert result.exit_code != 0
    assert "'nice' (ImportError: No module named 'nflows_helpers')" in result.output
    assert "did you mean" not in result.output


def test_the_kit_names_the_plugin_that_failed(crashing, capsys):
    registry.reset()
    assert kit_main(["nice"]) == 2
    err = capsys.readouterr().err
    assert "unknown family 'nice'" in err
    assert "'nice' (ImportError: No module named 'nflows_helpers')" in err
    assert "is its plugin installed" not in err and "did you mean" not in err


def test_without_failed_plugins_a_typo_still_gets_suggestions():
    with pytest.raises(zoo.errors.NotFoundError, match="did you mean 'realnvp-moons'"):
        zoo.api.get_entry("realnvp-moon")


def test_catalog_file_entries_of_a_crashed_plugin_are_rejected_not_fatal(crashing, cli_runner,
                                                                          registry_file):
    registry_file("""
version: 1
entries:
  - name: nice-file
    family: nice
    dataset: moons
    recipe: {steps: 1}
  - name: realnvp-tiny
    family: realnvp
    dataset: moons
    config: {shape: [2]}
    recipe: {steps: 1}
""")
    listing = invoke(cli_runner, "list")
    assert listing.exit_code == 0, listing.output
    assert "realnvp-tiny" in listing.output and "nice-file" not in listing.output
    result = invoke(cli_runner, "info", "nice-file")
    assert result.exit_code != 0
    assert "'nice' (ImportError: No module named 'nflows_helpers')" in result.output


# --- an entry with a bad config ----------------------------------------------------------------

TYPO = '''
import zoo


@zoo.hookimpl
def zoo_register_entries(register):
    register({"name": "realnvp-typo", "family": "realnvp", "dataset": "moons",
              "config": {"shape": [2], "hiden": 8}, "recipe": {"steps": 5}})
'''


@pytest.fixture
def typo(site):
    install(site, "realnvp-extra", "typo", "authors_typo", TYPO)
    return site


def test_zoo_plugins_shows_a_rejected_entry_with_its_message(typo, cli_runner):
    result = invoke(cli_runner, "plugins")
    assert result.exit_code == 0, result.output  # plain listing is a report
    assert "REJECTED entry 'realnvp-typo'" in result.output
    assert "unknown key 'hiden' (allowed:" in result.output
    rows = {r["name"]: r for r in json.loads(invoke(cli_runner, "plugins", "--json").output)}
    assert "unknown key 'hiden'" in rows["typo"]["rejected_entries"]["realnvp-typo"]


def test_zoo_info_of_a_rejected_entry_prints_why(typo, cli_runner):
    result = invoke(cli_runner, "info", "realnvp-typo")
    assert result.exit_code != 0
    assert "'realnvp-typo' was rejected from the catalog" in result.output
    assert "unknown key 'hiden' (allowed:" in result.output
    listing = invoke(cli_runner, "list")
    assert listing.exit_code == 0 and "realnvp-moons" in listing.output
    assert "realnvp-typo" not in listing.output


def test_plugins_check_fails_on_a_rejected_entry(typo, cli_runner):
    result = invoke(cli_runner, "plugins", "--check")
    assert result.exit_code == 1
    assert "1 catalog entry was rejected" in result.output


def test_plugins_check_passes_when_nothing_failed(cli_runner):
    result = invoke(cli_runner, "plugins", "--check")
    assert result.exit_code == 0, result.output


def test_plugins_check_fails_on_a_plugin_that_does_not_import(crashing, cli_runner):
    assert invoke(cli_runner, "plugins").exit_code == 0
    result = invoke(cli_runner, "plugins", "--check")
    assert result.exit_code == 1 and "1 plugin(s) failed" in result.output


# --- two plugins registering the same family name ----------------------------------------------

@pytest.fixture
def two_nice(site):
    install(site, "nice-flows", "nice", "authors_nice", FAMILY + NICE_ENTRY + REGISTERS_NICE)
    install(site, "nice-fork", "nice-fork", "authors_fork", FAMILY + REGISTERS_NICE)
    return site


def test_two_providers_of_a_family_break_only_that_name(two_nice, cli_runner):
    listing = invoke(cli_runner, "list")
    assert listing.exit_code == 0, listing.output
    assert "realnvp-moons" in listing.output and "nice-moons" not in listing.output
    assert invoke(cli_runner, "info", "realnvp-moons").exit_code == 0
    contested = invoke(cli_runner, "info", "nice-moons")
    assert contested.exit_code != 0
    assert "family 'nice' is provided by two plugins: 'nice' and 'nice-fork'" in contested.output
    plugins = invoke(cli_runner, "plugins")
    assert "provided by two plugins" in plugins.output
    assert invoke(cli_runner, "plugins", "--check").exit_code == 1


def test_a_second_realnvp_leaves_the_other_families_entries(site, cli_runner):
    install(site, "realnvp-copy", "realnvp-copy", "authors_copy",
            FAMILY.replace('name = "nice"', 'name = "realnvp"') + REGISTERS_NICE)
    listing = invoke(cli_runner, "list")
    assert listing.exit_code == 0, listing.output
    assert "made-digits" in listing.output and "realnvp-moons" not in listing.output
    assert invoke(cli_runner, "info", "made-digits").exit_code == 0
    contested = invoke(cli_runner, "info", "realnvp-moons")
    assert contested.exit_code != 0 and "provided by two plugins" in contested.output
    plugins = invoke(cli_runner, "plugins")
    assert "rejected catalog entry 'realnvp-moons' (registry.yaml)" in plugins.output
    # The same in JSON: a row for the catalog file, with the keys of a plugin's row.
    rows = {r["name"]: r for r in json.loads(invoke(cli_runner, "plugins", "--json").output)}
    assert rows["registry.yaml"]["source"] == "catalog"
    assert "provided by two plugins" in rows["registry.yaml"]["rejected_entries"]["realnvp-moons"]
    assert set(rows["registry.yaml"]) == set(rows["realnvp-copy"])


# --- a slow plugin ------------------------------------------------------------------------------

def test_zoo_plugins_flags_a_slow_plugin(site, cli_runner):
    install(site, "slow-plugin", "slow", "authors_slow", "import time\ntime.sleep(0.25)\n")
    result = invoke(cli_runner, "plugins")
    assert result.exit_code == 0
    block = result.output.split("slow 0.1")[1]
    assert "import: " in block and "SLOW: loading takes 0.2" in block
    assert "which every `zoo list` and `zoo --help` pays" in block
    realnvp = result.output.split("realnvp 0.1.0")[1].split("\n\n")[0]
    assert "import: " in realnvp


def test_zoo_plugins_says_a_plugin_imports_torch(site):
    install(site, "torchy", "torchy", "authors_torchy", "import torch  # noqa: F401\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-m", "zoo", "plugins", "--json"], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["torchy"]["import_seconds"] > 0.1
    assert "it imports torch at import time" in rows["torchy"]["slow"]
    assert rows["realnvp"]["slow"] is None
