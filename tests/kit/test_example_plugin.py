"""The example third-party plugin, examples/zoo-mixture, installed the way a user would.

It is pip-installed into a temporary ``--target`` folder that only the subprocesses below
see (on their ``PYTHONPATH``): entry points are found through ``importlib.metadata`` on
``sys.path``, so this is a real installation that leaves this environment untouched. Then
``zoo list``, ``zoo plugins``, ``zoo pull`` and ``zoo.load`` must find its family, dataset
and catalog entries, with no change to the core.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from layout import ROOT as REPO

import zoo

EXAMPLE = REPO / "examples" / "zoo-mixture"


def run(args, env, timeout=300):
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                            cwd=env.get("ZOO_TEST_CWD"))
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install`` a copy of the example (pip builds in the source tree) into a target."""
    root = tmp_path_factory.mktemp("zoo-mixture")
    source = root / "zoo-mixture"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    target = root / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "--target", str(target),
         str(source)], env)
    return source, target


@pytest.fixture
def env(installed, tmp_path):
    """The environment of a user who installed zoo-mixture: its target on PYTHONPATH."""
    _, target = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    env["ZOO_HOME"] = str(tmp_path / "home")
    env["ZOO_STRICT_PLUGINS"] = "1"  # any problem loading a plugin fails the command
    env["ZOO_TEST_CWD"] = str(tmp_path)
    env["OMP_NUM_THREADS"] = "1"  # tiny models; threads only contend on a shared machine
    return env


def zoo_cli(env, *args):
    return run([sys.executable, "-m", "zoo", *args], env)


def test_the_core_does_not_know_the_plugin():
    core = "\n".join(p.read_text() for p in (REPO / "zoo").rglob("*.py"))
    core += (REPO / "registry.yaml").read_text()
    assert "zoo_mixture" not in core and "gmm" not in core
    # ... and this process, which does not have it installed, does not see it.
    assert "gmm-moons" not in zoo.list_models()


def test_installed_as_a_distribution_with_the_zoo_entry_point(installed):
    _, target = installed
    [dist_info] = target.glob("zoo_mixture-0.1.0.dist-info")
    assert "[zoo]\ngmm = zoo_mixture" in (dist_info / "entry_points.txt").read_text()


def test_zoo_list_finds_its_entries_without_importing_torch(env):
    rows = {row["name"]: row for row in json.loads(zoo_cli(env, "list", "--json"))}
    assert rows["gmm-moons"]["family"] == "gmm" and rows["gmm-moons"]["provider"] == "gmm"
    assert rows["gmm-eight-gaussians"]["dataset"] == "eight-gaussians"
    assert "realnvp-moons" in rows  # the first-party catalog is still there
    assert "gmm-moons" in zoo_cli(env, "list")
    run([sys.executable, "-c", "import sys, zoo; names = zoo.list_models(); "
         "assert 'gmm-moons' in names; assert 'torch' not in sys.modules, 'torch imported'"], env)


def test_zoo_plugins_shows_version_and_where_it_came_from(env, installed):
    _, target = installed
    rows = {row["name"]: row for row in json.loads(zoo_cli(env, "plugins", "--json"))}
    gmm = rows["gmm"]
    assert gmm["version"] == "0.1.0"
    assert gmm["source"] == "zoo-mixture (entry point)" and gmm["module"] == "zoo_mixture"
    assert Path(gmm["path"]).is_relative_to(target)
    assert gmm["registered"] == {"families": ["gmm"], "datasets": ["eight-gaussians"],
                                 "entries": ["gmm-moons", "gmm-eight-gaussians"]}
    assert gmm["error"] is None and gmm["disabled"] is None
    text = zoo_cli(env, "plugins")
    assert "gmm 0.1.0  (zoo-mixture (entry point): zoo_mixture)" in text
    # The allowlist and blocklist apply to it like to any plugin.
    blocked = zoo_cli({**env, "ZOO_DISABLE_PLUGINS": "gmm"}, "list", "--json")
    assert "gmm-moons" not in blocked and "realnvp-moons" in blocked


def test_zoo_pull_builds_it_and_zoo_load_loads_it(env):
    path = Path(zoo_cli(env, "pull", "gmm-moons", "--quiet").strip().splitlines()[-1])
    assert path == Path(env["ZOO_HOME"]) / "models" / "gmm-moons"
    config = json.loads((path / "config.json").read_text())
    assert config["family"] == "gmm" and config["dataset"] == "moons"
    assert config["config"]["components"] == 16
    assert "library_name: zoo" in (path / "README.md").read_text()
    script = (
        "import json, torch, zoo\n"
        "model = zoo.load('gmm-moons')\n"
        "x = model.sample(500, generator=torch.Generator().manual_seed(0))\n"
        "print(json.dumps({'module': type(model).__module__, 'shape': list(x.shape),\n"
        "    'mean_log_prob': model.log_prob(x).mean().item(),\n"
        "    'test_nll': zoo.info('gmm-moons')['artifact']['metrics']['test_nll']}))\n"
    )
    out = json.loads(run([sys.executable, "-c", script], env).strip().splitlines()[-1])
    assert out["module"] == "zoo_mixture.model" and out["shape"] == [500, 2]
    # Trained: well below a standard normal's NLL on moons (~2.5), above the entropy (1.009).
    assert 1.009 < out["test_nll"] < 1.3
    assert -1.5 < out["mean_log_prob"] < 0


@pytest.mark.slow  # a third torch process; the kit's checks of gmm also run in test_conformance
def test_the_plugin_passes_its_own_tests(env, installed):
    source, _ = installed
    out = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               str(source / "tests"), "--rootdir", str(source)], env)
    assert " passed" in out and "failed" not in out
