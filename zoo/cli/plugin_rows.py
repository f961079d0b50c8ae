"""The rows ``zoo plugins`` prints: each plugin's, and those of catalog files' rejected entries."""

from __future__ import annotations

from typing import Any

import click


def catalog_file_rows(rejected: dict[str, Any], plugins: dict[str, Any],
                       catalog_error: str | None) -> list[dict[str, Any]]:
    """``zoo plugins --json`` rows for what is not a plugin's: the entries a catalog file
    (``registry.yaml``, ``ZOO_REGISTRY``) lists that were rejected, and a catalog that does
    not load (``source: "catalog"``, the same keys as a plugin's row)."""
    files: dict[str, dict[str, str]] = {}
    for r in rejected.values():
        if r.provider not in plugins:
            files.setdefault(r.provider, {})[r.name] = r.message
    if catalog_error and not files:
        files["catalog"] = {}
    return [{"name": name, "version": None, "source": "catalog", "module": None, "path": None,
             "hooks": [], "registered": {}, "error": catalog_error, "disabled": None,
             "import_seconds": None, "slow": None, "rejected_entries": entries}
            for name, entries in sorted(files.items())]


def show_plugins(infos: list[dict[str, Any]]) -> None:
    """``zoo plugins``: each plugin, where it came from and what it registered or failed."""
    for p in infos:
        version = f" {p['version']}" if p["version"] else ""
        click.echo(f"{p['name']}{version}  ({p['source']}: {p['module']})")
        if p["disabled"]:
            click.echo(f"  not loaded: {p['disabled']}")
        if p["path"]:
            click.echo(f"  from: {p['path']}")
        if p["import_seconds"] is not None:
            click.echo(f"  import: {p['import_seconds'] * 1000:.0f} ms")
        if p["slow"]:
            click.echo(f"  SLOW: {p['slow']}")
        if p["hooks"]:
            click.echo(f"  hooks: {', '.join(p['hooks'])}")
        for kind, names in sorted(p["registered"].items()):
            click.echo(f"  {kind}: {', '.join(names)}")
        for name, message in sorted(p["rejected_entries"].items()):
            click.echo(f"  REJECTED entry {name!r}: {message}")
        if p["error"]:
            click.echo(f"  ERROR: {p['error']}")
