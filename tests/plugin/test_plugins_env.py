"""Choosing plugins with ZOO_LOAD_PLUGINS / ZOO_DISABLE_PLUGINS, and what `zoo plugins` shows.

A fake distribution (``fakeplug 1.2.3``, entry point ``fake``) is written into a temporary
folder on ``sys.path``: entry points are found through ``importlib.metadata`` there exactly as
for an installed package, and its module records whether it was ever imported.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

import zoo
from zoo.cli.commands import cli
from zoo.errors import CatalogError, NotFoundError
from zoo.plugin import registry

PLUGIN_SOURCE = '''
import os

import zoo

os.environ["FAKE_ZOO_PLUGIN_IMPORTED"] = "1"


@zoo.hookimpl
def zoo_register_datasets(register):
    from zoo.data import Dataset

    register(Dataset("fake-points", "continuous", (2,), lambda split, root: None))
'''


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "fake_zoo_plugin.py").write_text(PLUGIN_SOURCE)
    info = site / "fakeplug-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[zoo]\nfake = fake_zoo_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("FAKE_ZOO_PLUGIN_IMPORTED", "0")  # restored by monkeypatch afterwards
    sys.modules.pop("fake_zoo_plugin", None)
    registry.reset()
    yield site
    sys.modules.pop("fake_zoo_plugin", None)
    registry.reset()


def load(monkeypatch, **env):
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    registry.reset()
    return registry.registry()


def imported() -> bool:
    return os.environ.get("FAKE_ZOO_PLUGIN_IMPORTED") == "1"


def test_every_installed_plugin_loads_by_default(fake_dist, monkeypatch):
    reg = load(monkeypatch)
    assert {"fake", "realnvp", "zoo.data"} <= set(reg.plugins)
    assert "fake-points" in reg.names("datasets") and imported()
    assert reg.disabled == {} and reg.unmatched == {}


def test_allowlist_loads_only_the_named_plugins(fake_dist, monkeypatch):
    reg = load(monkeypatch, ZOO_LOAD_PLUGINS="realnvp")
    loaded = set(reg.plugins)
    assert loaded == {"zoo.data", "realnvp"}  # the core's datasets always load
    assert reg.disabled["fake"].disabled == "not in ZOO_LOAD_PLUGINS"
    assert not imported(), "a plugin left out must not even be imported"
    assert "moons" in reg.names("datasets") and "fake-points" not in reg.names("datasets")


def test_blocklist_keeps_a_plugin_out(fake_dist, monkeypatch):
    reg = load(monkeypatch, ZOO_DISABLE_PLUGINS="fake")
    assert "fake" not in reg.plugins and "realnvp" in reg.plugins
    assert reg.disabled["fake"].disabled == "disabled by ZOO_DISABLE_PLUGINS"
    assert reg.disabled["fake"].version == "1.2.3"  # known from metadata, without importing
    assert not imported()


def test_blocklist_wins_over_allowlist_and_lists_are_forgiving(fake_dist, monkeypatch):
    reg = load(monkeypatch, ZOO_LOAD_PLUGINS=" fake , realnvp ,,", ZOO_DISABLE_PLUGINS="fake")
    assert set(reg.plugins) == {"zoo.data", "realnvp"}
    assert reg.disabled["fake"].disabled == "disabled by ZOO_DISABLE_PLUGINS"


def test_an_empty_allowlist_loads_no_plugin(fake_dist, monkeypatch):
    reg = load(monkeypatch, ZOO_LOAD_PLUGINS="")
    assert set(reg.plugins) == {"zoo.data"}
    assert {"fake", "realnvp"} <= set(reg.disabled)
    assert zoo.list_models() == []  # every built-in entry needs a plugin that is out


def test_names_that_match_no_plugin_are_reported(fake_dist, monkeypatch, cli_runner):
    reg = load(monkeypatch, ZOO_LOAD_PLUGINS="realnvp,realnpv", ZOO_DISABLE_PLUGINS="nope")
    assert reg.unmatched == {"ZOO_LOAD_PLUGINS": ["realnpv"], "ZOO_DISABLE_PLUGINS": ["nope"]}
    result = cli_runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "note: ZOO_LOAD_PLUGINS names realnpv, which no installed plugin is called" in (
        result.output)


def test_disabling_a_family_hides_its_catalog_entries_and_nothing_else_breaks(
        monkeypatch, cli_runner):
    monkeypatch.setenv("ZOO_DISABLE_PLUGINS", "realnvp")
    registry.reset()
    assert "realnvp-moons" not in zoo.list_models()
    result = cli_runner.invoke(cli, ["list"])
    assert result.exit_code == 0, result.output
    assert "realnvp-moons" not in result.output
    with pytest.raises(NotFoundError, match="realnvp"):
        zoo.get_family("realnvp")
    result = cli_runner.invoke(cli, ["pull", "realnvp-moons"])
    assert result.exit_code != 0 and "unknown model 'realnvp-moons'" in result.output


def test_an_unknown_family_is_still_an_error_when_nothing_was_disabled(registry_file):
    registry_file("""
version: 1
entries:
  - name: typo-moons
    family: realnvq
    dataset: moons
    recipe: {steps: 1}
""")
    with pytest.raises(CatalogError, match="unknown family 'realnvq'"):
        zoo.list_models()


def test_zoo_plugins_shows_version_and_where_each_plugin_came_from(fake_dist, monkeypatch,
                                                                     cli_runner):
    load(monkeypatch)
    result = cli_runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "fake 1.2.3  (fakeplug (entry point): fake_zoo_plugin)" in result.output
    assert f"from: {fake_dist / 'fake_zoo_plugin.py'}" in result.output
    assert "realnvp 0.1.0  (genzoo (entry point): zoo_realnvp)" in result.output
    assert "zoo.data 0.1.0  (zoo (built-in): zoo.data)" in result.output
    rows = {row["name"]: row for row in json.loads(cli_runner.invoke(cli, ["plugins", "--json"]).output)}
    fake = rows["fake"]
    assert fake["version"] == "1.2.3" and fake["source"] == "fakeplug (entry point)"
    assert fake["path"] == str(fake_dist / "fake_zoo_plugin.py")
    assert fake["registered"] == {"datasets": ["fake-points"]} and fake["disabled"] is None


def test_zoo_plugins_lists_a_disabled_plugin_and_why(fake_dist, monkeypatch, cli_runner):
    load(monkeypatch, ZOO_DISABLE_PLUGINS="fake")
    result = cli_runner.invoke(cli, ["plugins"])
    assert "fake 1.2.3  (fakeplug (entry point): fake_zoo_plugin)\n" in result.output
    assert "  not loaded: disabled by ZOO_DISABLE_PLUGINS" in result.output
    rows = {row["name"]: row for row in json.loads(cli_runner.invoke(cli, ["plugins", "--json"]).output)}
    assert rows["fake"]["disabled"] == "disabled by ZOO_DISABLE_PLUGINS"
    assert rows["fake"]["registered"] == {} and rows["fake"]["path"] is None
    assert not imported()


def test_in_process_plugins_are_not_subject_to_the_lists(monkeypatch):
    import types

    module = types.ModuleType("notebook_plugin")
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    registry.register_plugin(module, "notebook")
    try:
        assert registry.registry().plugins["notebook"].source == "in-process"
    finally:
        registry.unregister_plugin("notebook")
