"""Shared fixtures for every test (``tests/`` and each first-party plugin's ``tests/``): each
test gets its own empty store and a freshly loaded plugin registry.

Tests are filed by the room of ``zoo/`` they hold to (``tests/artifact/``, ...), each
plugin's beside the plugin, and the tests that start processes, servers or signals under
``tests/system/``, marked ``system`` (``-m "not system"`` leaves them out). Their helpers
live in ``tests/support/``, importable from every test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests" / "support"))

import faultkit  # noqa: E402
from catalogs import catalog, tiny_entry  # noqa: E402

from zoo.plugin import registry  # noqa: E402

SYSTEM = Path(__file__).resolve().parent / "tests" / "system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under ``tests/system/``: real processes, servers and signals."""
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(SYSTEM):
            item.add_marker(pytest.mark.system)


torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """An empty ``$ZOO_HOME`` per test; the user's real store is never touched."""
    home = tmp_path_factory.mktemp("zoo-home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    for var in ("ZOO_REGISTRY", "ZOO_LOAD_PLUGINS", "ZOO_DISABLE_PLUGINS", "ZOO_STRICT_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    registry.reset()
    yield home
    registry.reset()


@pytest.fixture
def registry_file(tmp_path, monkeypatch):
    """Write a registry.yaml and point ``ZOO_REGISTRY`` at it: ``registry_file(text)``."""

    def write(text: str):
        path = tmp_path / "registry.yaml"
        path.write_text(text)
        monkeypatch.setenv("ZOO_REGISTRY", str(path))
        registry.reset()
        return path

    return write


TINY_MOONS = catalog(tiny_entry(recipe="val_fraction: 0.05"))


@pytest.fixture
def tiny_catalog(registry_file):
    """A catalog with one cheap entry, ``realnvp-tiny`` (trains in well under a second)."""
    return registry_file(TINY_MOONS)


@pytest.fixture
def one_thread():
    """torch on one thread for the test, restored afterwards: tiny models gain nothing from
    a second thread, and on a loaded two-core machine threads only wait for each other."""
    yield from faultkit.one_thread()


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def pictured_artifact_once(tmp_path_factory):
    """``realnvp-tiny`` built from its recipe once (pictures and history included)."""
    import zoo

    work = tmp_path_factory.mktemp("pictured")
    (work / "registry.yaml").write_text(TINY_MOONS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(work / "home"))
        mp.setenv("ZOO_REGISTRY", str(work / "registry.yaml"))
        registry.reset()
        try:
            return zoo.train("realnvp-tiny", output=work / "realnvp-tiny", progress=False)
        finally:
            registry.reset()


@pytest.fixture
def pictured_artifact(pictured_artifact_once, tmp_path):
    """A fresh copy of the recipe-built ``realnvp-tiny`` artifact folder, for this test to change."""
    import shutil

    return Path(shutil.copytree(pictured_artifact_once, tmp_path / "realnvp-tiny"))
