"""Shell completion for ``zoo``: the script (``zoo completion bash|zsh|fish``) and the names
a NAME argument completes to.

A NAME completes to catalog names, installed families (``zoo train FAMILY --data ...``)
and artifacts in the store. Reading them loads the plugin registry and the catalog but
never torch, so a completion takes about as long as ``zoo list``.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_ZOO_COMPLETE"


def known_names() -> list[str]:
    """Every name a NAME argument may take, sorted: catalog entries, families, stored models."""
    from zoo.artifact import store
    from zoo.catalog import catalog
    from zoo.plugin.registry import registry

    names = set(catalog().names()) | set(registry().names("families"))
    folder = store.models_dir()
    if folder.is_dir():
        names |= {p.name for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and store.is_complete(p)}
    return sorted(names)


def complete_name(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """``shell_complete`` of a NAME argument; a path (``./``, ``/``, ``~``) completes as one."""
    if incomplete.startswith((".", "/", "~")):
        return [CompletionItem(incomplete, type="dir")]
    try:
        names = known_names()
    except Exception:  # a broken plugin or catalog must not break the user's shell
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def script(cli: click.Command, shell: str) -> str:
    """The completion script of ``shell`` for the ``zoo`` command."""
    cls = get_completion_class(shell)
    if cls is None:  # click knows the three; guarded for a click that drops one
        raise click.UsageError(f"no completion for {shell!r}; choose one of {', '.join(SHELLS)}")
    return cls(cli, {}, "zoo", COMPLETE_VAR).source()
