"""docs/api.md is generated from the public API's docstrings (tools/gen_api_doc.py), must not
drift, and the public API is exactly ``zoo.__all__`` and ``zoo.testing.__all__``."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import subprocess
import sys

from layout import ROOT

import zoo
import zoo.testing
from zoo.catalog.recipe import Recipe

SCRIPT = ROOT / "tools" / "gen_api_doc.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_api_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_api_md_matches_the_docstrings():
    current = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == load_generator().render(), (
        "docs/api.md is out of date with the public API's docstrings: "
        "run python tools/gen_api_doc.py")


def test_the_public_api_is_exactly_the_two_all_lists():
    # zoo: every lazily exported name is listed, and nothing else is.
    assert set(zoo._LAZY) | {"hookimpl"} == set(zoo.__all__)
    for name in zoo.__all__:
        getattr(zoo, name)
    # zoo.testing: what the package itself defines or imports for users is listed.
    defined = {name for name, value in vars(zoo.testing).items()
               if not name.startswith("_") and not inspect.ismodule(value)}
    assert defined == set(zoo.testing.__all__)
    # The reference has a section for each, and for nothing else.
    text = load_generator().render()
    sections = re.findall(r"^### (\S+)$", text, re.M)
    assert sections == ([f"zoo.{n}" for n in zoo.__all__]
                        + [f"zoo.testing.{n}" for n in zoo.testing.__all__])


def test_every_public_name_and_member_is_documented():
    text = load_generator().render()
    assert "(undocumented)" not in text


def test_the_reference_answers_what_a_plugin_author_asked():
    text = load_generator().render()
    check_family = text.split("### zoo.testing.check_family")[1].split("###")[0]
    assert "raise_on_failure: bool = True" in check_family
    assert "raise_on_failure=False" in check_family
    report = text.split("### zoo.testing.Report")[1].split("### zoo.testing.Result")[0]
    assert "| `results` | `list[Result]` |" in report and "r.status, r.message" in report
    result = text.split("### zoo.testing.Result")[1].split("###")[0]
    assert "| `status` |" in result and "| `message` |" in result and "not applicable" in result
    save = text.split("### zoo.save")[1].split("###")[0]
    assert "zoo.artifact.io.save" in save and "config.json" in save
    load = text.split("### zoo.load")[1].split("###")[0]
    assert "path of an" in load and "artifact directory" in load
    assert 'zoo.get_dataset("moons").load("train")' in text
    train = text.split("#### `Family.train`")[1].split("####")[0]
    assert "zoo.training.loop.maximise_likelihood(model: ZooModel, dataset: " in train
    assert "recipe: Recipe" in train
    assert "| `val_nll` |" in train  # what fit returns
    recipe = text.split("### zoo.Recipe")[1].split("### zoo.list_models")[0]
    for f in dataclasses.fields(Recipe):
        assert f"| `{f.name}` |" in recipe and f"- `{f.name}`:" in recipe, f.name
    for check in zoo.testing.CHECKS:
        assert f"- `{check}`:" in text


def test_a_changed_docstring_is_detected(monkeypatch):
    gen = load_generator()
    before = gen.render()
    monkeypatch.setattr(zoo.testing.Report.summary, "__doc__", "Something else.")
    assert gen.render() != before


def test_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    gen = load_generator()
    stale = tmp_path / "api.md"
    stale.write_text("# API reference\n\nsomething old\n")
    monkeypatch.setattr(gen, "OUTPUT", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_the_script_runs_from_a_shell():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_plugins_md_warns_that_editable_target_installs_do_not_work():
    text = " ".join((ROOT / "docs" / "plugins.md").read_text(encoding="utf-8").split())
    assert "`pip install -e --target DIR` with `PYTHONPATH=DIR` does **not**" in text
    assert "Python reads `.pth` files only from site directories, never from `PYTHONPATH`" in text
