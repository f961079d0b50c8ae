"""Finding a model as timm users do: ``zoo.list_models`` and ``zoo list`` take a pattern and
filters, and shell completion knows the names (issue 30, items 3 and 4)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from catalogs import catalog, tiny_entry
from cli_run import run
from click.shell_completion import ShellComplete

import zoo
from zoo.artifact import io as artifacts
from zoo.artifact import store
from zoo.cli.commands import cli

CATALOG = catalog(
    tiny_entry("realnvp-tiny"), tiny_entry("realnvp-small"),
    "  - name: made-tiny\n    family: made\n    dataset: digits\n"
    "    config: {shape: [1, 8, 8], levels: 17, hidden: [8]}\n    recipe: {steps: 1}\n")


@pytest.fixture
def three(registry_file):
    registry_file(CATALOG)
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    artifacts.save(flow, store.artifact_dir("realnvp-small"))


def test_list_models_filters_by_pattern_family_dataset_and_pulled(three):
    assert zoo.list_models() == ["made-tiny", "realnvp-small", "realnvp-tiny"]
    assert zoo.list_models("realnvp-*") == ["realnvp-small", "realnvp-tiny"]
    assert zoo.list_models("*tiny") == ["made-tiny", "realnvp-tiny"]
    assert zoo.list_models(family="made") == ["made-tiny"]
    assert zoo.list_models(dataset="moons") == ["realnvp-small", "realnvp-tiny"]
    assert zoo.list_models(pulled=True) == ["realnvp-small"]
    assert zoo.list_models(pulled=False) == ["made-tiny", "realnvp-tiny"]
    assert zoo.list_models("realnvp-*", pulled=False) == ["realnvp-tiny"]
    assert zoo.list_models("cifar-*") == []


def test_zoo_list_takes_the_same_filters(three, cli_runner):
    out = run(cli_runner, "list", "realnvp-*", "--pulled").output
    assert "realnvp-small" in out and "realnvp-tiny" not in out and "made-tiny" not in out
    out = run(cli_runner, "list", "--family", "made").output
    assert "made-tiny" in out and "realnvp" not in out.split("\n")[1]
    nothing = run(cli_runner, "list", "cifar-*").output  # exit 0
    assert nothing.strip() == "no catalog entry matches pattern cifar-*"


def completions(args: list[str], incomplete: str) -> list[str]:
    done = ShellComplete(cli, {}, "zoo", "_ZOO_COMPLETE").get_completions(args, incomplete)
    return [item.value for item in done]


def test_names_complete_to_catalog_entries_families_and_stored_artifacts(three):
    store.artifact_dir("my-own").mkdir(parents=True)  # incomplete: not an artifact
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    artifacts.save(flow, store.models_dir() / "stored-only")
    assert completions(["pull"], "realnvp-") == ["realnvp-small", "realnvp-tiny"]
    assert completions(["train"], "ma") == ["made", "made-tiny"]
    assert completions(["sample"], "stor") == ["stored-only"]
    assert completions(["info"], "my-") == []
    assert completions(["verify", "realnvp-tiny"], "m") == ["made", "made-tiny"]


def test_a_path_completes_as_a_path(three):
    done = ShellComplete(cli, {}, "zoo", "_ZOO_COMPLETE").get_completions(["sample"], "./ar")
    assert [(item.value, item.type) for item in done] == [("./ar", "dir")]


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"),
                                           ("zsh", "compdef"), ("fish", "complete")])
def test_the_completion_script_of_each_shell(cli_runner, shell, marker):
    out = run(cli_runner, "completion", shell).output
    assert "_ZOO_COMPLETE" in out and marker in out


def test_an_unknown_shell_is_one_line(cli_runner):
    result = run(cli_runner, "completion", "tcsh", code=2)
    assert "tcsh" in result.output and "Traceback" not in result.output


def test_completing_imports_no_torch():
    code = ("import sys\nfrom click.shell_completion import ShellComplete\n"
            "from zoo.cli.commands import cli\n"
            "items = ShellComplete(cli, {}, 'zoo', '_ZOO_COMPLETE').get_completions(['pull'], 'r')\n"
            "assert any(i.value == 'realnvp-moons' for i in items), items\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
