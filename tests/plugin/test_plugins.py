import types

import pytest

import zoo
import zoo.api
from zoo.cli.commands import cli
from zoo.data import Dataset
from zoo.errors import PluginError
from zoo.plugin import registry


def make_plugin(**hooks):
    module = types.ModuleType("fake_plugin")
    for name, fn in hooks.items():
        setattr(module, name, zoo.hookimpl(fn))
    return module


@pytest.fixture
def in_process():
    added = []

    def add(plugin, name):
        added.append(name)
        return registry.register_plugin(plugin, name)

    yield add
    for name in added:
        registry.unregister_plugin(name)


def test_first_party_plugins_found_through_entry_points():
    reg = registry.registry()
    assert reg.get("families", "realnvp").plugin == "realnvp"
    assert reg.plugins["realnvp"].source.endswith("(entry point)")
    assert "moons" in reg.names("datasets")


def test_broken_plugin_is_recorded_and_others_work(in_process, cli_runner):
    def zoo_register_families(register):
        raise RuntimeError("boom in registration")

    info = in_process(make_plugin(zoo_register_families=zoo_register_families), "broken")
    assert "boom in registration" in info.error
    assert "realnvp-moons" in zoo.list_models()
    result = cli_runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0
    assert "broken" in result.output and "ERROR: RuntimeError: boom in registration" in result.output
    result = cli_runner.invoke(cli, ["list"])
    assert result.exit_code == 0 and "realnvp-moons" in result.output


def test_strict_mode_makes_a_broken_plugin_fatal(in_process, monkeypatch):
    def zoo_register_datasets(register):
        raise RuntimeError("bad")

    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="plugin 'strict-broken' failed: RuntimeError: bad"):
        in_process(make_plugin(zoo_register_datasets=zoo_register_datasets), "strict-broken")


def test_two_providers_of_one_name_is_an_error_naming_both(in_process):
    def zoo_register_datasets(register):
        register(Dataset("moons", "continuous", (2,), lambda split, root: None))

    info = in_process(make_plugin(zoo_register_datasets=zoo_register_datasets), "impostor")
    assert "'zoo.data' and 'impostor'" in info.error
    with pytest.raises(PluginError, match="provided by two plugins: 'zoo.data' and 'impostor'"):
        zoo.get_dataset("moons")
    assert zoo.get_family("realnvp").name == "realnvp"  # the rest still works


def test_a_failed_hook_contributes_nothing(in_process):
    def zoo_register_datasets(register):
        register(Dataset("half-done", "continuous", (2,), lambda split, root: None))
        raise RuntimeError("after one registration")

    in_process(make_plugin(zoo_register_datasets=zoo_register_datasets), "half")
    assert "half-done" not in registry.registry().names("datasets")


def test_plugin_entries_join_the_catalog(in_process):
    def zoo_register_entries(register):
        register({"name": "realnvp-plugin", "family": "realnvp", "dataset": "moons",
                  "config": {"shape": [2]}, "recipe": {"steps": 5}})

    in_process(make_plugin(zoo_register_entries=zoo_register_entries), "entries")
    entry = zoo.api.get_entry("realnvp-plugin")
    assert entry.provider == "entries"


def test_plugin_with_a_bad_entry_is_recorded(in_process):
    def zoo_register_entries(register):
        register({"name": "realnvp-bad", "family": "realnvp", "dataset": "moons",
                  "config": {"shape": [2], "nope": 1}, "recipe": {"steps": 5}})

    in_process(make_plugin(zoo_register_entries=zoo_register_entries), "bad-entries")
    assert "realnvp-bad" not in zoo.list_models()
    assert "unknown key 'nope'" in registry.registry().plugins["bad-entries"].error


def test_list_and_help_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from zoo.cli.commands import cli; "
            "r = CliRunner().invoke(cli, ['list']); assert r.exit_code == 0, r.output; "
            "CliRunner().invoke(cli, ['--help']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
