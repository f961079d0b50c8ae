"""Catalogs for tests: the tiny RealNVP entry on moons that most of them build (about a
second of training), written once."""

from __future__ import annotations


def tiny_entry(name: str = "realnvp-tiny", *, steps: int = 30, eval_every: int = 10,
               description: str = "a tiny flow for tests", recipe: str = "",
               extra: str = "") -> str:
    """One catalog entry (YAML): a RealNVP of 2 couplings of width 8 on moons. ``recipe``
    adds recipe keys (``"val_fraction: 0.05"``); ``extra`` adds lines under the entry
    (``"    metrics: {test_nll: 2.5}"``)."""
    more = f", {recipe}" if recipe else ""
    lines = (f"  - name: {name}\n"
             "    family: realnvp\n"
             "    dataset: moons\n"
             f"    description: {description}\n"
             "    config: {shape: [2], couplings: 2, hidden: 8}\n"
             f"    recipe: {{steps: {steps}, batch_size: 64, eval_every: {eval_every}{more}}}\n")
    return lines + (extra.rstrip("\n") + "\n" if extra else "")


def catalog(*entries: str) -> str:
    """A whole catalog file of ``entries``."""
    return "version: 1\nentries:\n" + "".join(entries)
