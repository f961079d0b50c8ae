"""``zoo plugin new`` writes a plugin that installs, passes the conformance kit and builds
its catalog entry straight away (issue 30, item 5). Installed as
``tests/kit/test_example_plugin.py`` installs the example: ``pip install --target`` a folder
only the subprocesses see, so this environment is left untouched."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_run import run


def sh(args, env, cwd):
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("kind, entry", [("vector", "moons"), ("image", "digits")])
def test_a_new_plugin_installs_passes_the_kit_and_builds_its_entry(tmp_path, cli_runner, kind,
                                                                    entry):
    name = f"my{kind}"
    folder = tmp_path / f"zoo-{name}"
    assert run(cli_runner, "plugin", "new", name, "--kind", kind, "--dir", tmp_path
               ).output.strip() == str(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    sh([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
        "--no-index", "--disable-pip-version-check", "--target", str(tmp_path / "site"),
        str(folder)], env, tmp_path)
    env.update(PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path / "site"),
                                                         env.get("PYTHONPATH")])),
               ZOO_HOME=str(tmp_path / "home"), ZOO_STRICT_PLUGINS="1", OMP_NUM_THREADS="1")
    out = sh([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
              str(folder), str(folder / "tests")], env, tmp_path)
    assert " passed" in out and "failed" not in out
    path = sh([sys.executable, "-m", "zoo", "pull", f"{name}-{entry}", "-q"], env, tmp_path)
    assert path.strip().endswith(f"{name}-{entry}")
    assert "nats per example" in sh([sys.executable, "-m", "zoo", "eval", f"{name}-{entry}"],
                                    env, tmp_path)


@pytest.mark.parametrize("name", ["9lives", "My-Plugin", "x", "class"])
def test_an_invalid_name_is_one_line_and_writes_nothing(tmp_path, cli_runner, name):
    result = run(cli_runner, "plugin", "new", name, "--dir", tmp_path, code=1)
    assert "is not a plugin name" in result.output and len(result.output.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_refused(tmp_path, cli_runner):
    (tmp_path / "zoo-taken").mkdir()
    (tmp_path / "zoo-taken" / "mine.txt").write_text("keep")
    result = run(cli_runner, "plugin", "new", "taken", "--dir", tmp_path, code=1)
    assert "already exists" in result.output
    assert [p.name for p in (tmp_path / "zoo-taken").iterdir()] == ["mine.txt"]
