"""The catalog lives once, at the repository's top level, and still ships in a wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from layout import ROOT as REPO


def test_the_catalog_has_one_source():
    assert (REPO / "registry.yaml").is_file()
    assert not (REPO / "zoo" / "catalog" / "registry.yaml").exists(), "a second copy inside the package"


def test_a_wheel_ships_the_catalog(tmp_path):
    """Build a wheel, install it (non-editable) into a fresh folder, and list the catalog
    from there: the entries come from the packaged copy of registry.yaml."""
    wheels, target, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # A clean copy: setuptools reuses an in-tree build/ folder, which could hold a stale catalog.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(wheels)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("genzoo-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(wheel)], check=True, cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("ZOO_REGISTRY", "PYTHONPATH")}
    env["PYTHONPATH"] = str(target)
    shown = subprocess.run(
        [sys.executable, "-c", "import zoo.catalog as c; print(c.BUILTIN_REGISTRY); "
         "from zoo.cli.commands import main; main()", "list"],
        capture_output=True, text=True, env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    first, _, listing = shown.stdout.partition("\n")
    assert Path(first) == target / "zoo" / "catalog" / "registry.yaml"
    for name in ("realnvp-moons", "made-digits", "pixelcnn-digits"):
        assert name in listing
