"""docs/hooks.md is generated from zoo/hookspecs.py (tools/gen_hooks_doc.py) and must not drift."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types

import pluggy
from layout import ROOT

from zoo import hookspecs

SCRIPT = ROOT / "tools" / "gen_hooks_doc.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_hooks_doc", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_hooks_md_matches_the_hookspec_docstrings():
    gen = load_generator()
    current = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    assert current == gen.render(), (
        "docs/hooks.md is out of date with zoo/hookspecs.py: run python tools/gen_hooks_doc.py")


def test_every_hook_and_its_whole_docstring_is_in_the_reference():
    text = load_generator().render()
    for name in ("zoo_register_families", "zoo_register_datasets", "zoo_register_entries"):
        spec = getattr(hookspecs, name)
        assert f"## {name}" in text and f"def {name}(register):" in text
        for line in (spec.__doc__ or "").strip().splitlines():
            assert line.strip() in text


def test_a_changed_docstring_or_a_new_hook_is_detected():
    gen = load_generator()
    spec = pluggy.HookspecMarker("zoo")
    fake = types.ModuleType("fake_hookspecs", "Fake hooks.")

    def zoo_register_things(register):
        """Register things."""

    fake.zoo_register_things = spec(zoo_register_things)
    text = gen.render(fake)
    assert "## zoo_register_things" in text and "Register things." in text
    zoo_register_things.__doc__ = "Register other things."
    assert gen.render(fake) != text


def test_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    gen = load_generator()
    stale = tmp_path / "hooks.md"
    stale.write_text("# Hook reference\n\nsomething old\n")
    monkeypatch.setattr(gen, "OUTPUT", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0


def test_the_script_runs_from_a_shell():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
