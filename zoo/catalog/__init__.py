"""The catalog: named artifacts and the recipe that builds each one.

Entries come from ``registry.yaml`` (at the repository's top level, shipped inside the
package of a wheel; ``ZOO_REGISTRY`` points at
another file) and from plugins' ``zoo_register_entries`` hooks. Each is validated on load:
an unknown key, a missing field, a wrong type, an unknown family or dataset, or a family
config the family refuses gives one message naming the entry and the field.

A bad entry in the catalog file makes the catalog an error; a bad entry from a plugin, or
one that needs a name a plugin failed to provide or two plugins both provide, is *rejected*:
it is left out, ``zoo plugins`` lists it with its message, and asking for it by name raises
that message. Every other entry keeps working.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo import config as _config
from zoo.catalog.build_time import BuildTime
from zoo.catalog.literature import Literature
from zoo.catalog.recipe import Recipe
from zoo.errors import CatalogError, ConfigError, NotFoundError, PluginError
from zoo.names import check_catalog_name, check_repo_id, check_revision
from zoo.plugin.registry import registry


def _builtin_registry() -> Path:
    """The catalog file: the repository's top-level ``registry.yaml`` in a source checkout
    (editable install), or the copy ``setup.py`` puts inside the package of a wheel."""
    packaged = Path(__file__).with_name("registry.yaml")
    return packaged if packaged.is_file() else Path(__file__).resolve().parents[2] / "registry.yaml"


BUILTIN_REGISTRY = _builtin_registry()
MAX_REGISTRY_CHARS = 16 << 20  # with MAX_NESTING, keeps libyaml's C recursion shallow
MAX_NESTING = 1000  # YAML nesting; the pure-Python loader gives up near here anyway
SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class HubSource:
    """Published weights for an entry: a Hub repository, a revision and the weights' sha256."""

    repo: str
    revision: str = "main"
    sha256: str | None = None

    def validate(self) -> None:
        check_repo_id(self.repo)
        check_revision(self.revision)
        if self.sha256 is not None and (len(self.sha256) != 64 or set(self.sha256) - SHA256_HEX):
            raise ConfigError(f"sha256: expected 64 lower-case hex digits, got {self.sha256!r}")


@dataclass(frozen=True)
class Entry:
    """One catalog entry."""

    name: str
    family: str
    dataset: str
    recipe: Recipe
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    sources: list[HubSource] = field(default_factory=list)
    build_time: BuildTime | None = None  # measured; shown by list/info/card, used by pull
    literature: Literature | None = None  # the paper's figure the leaderboard sets beside
    provider: str = field(default="registry.yaml", compare=False)

    def validate(self) -> None:
        check_catalog_name(self.name)

    def as_dict(self) -> dict[str, Any]:
        data = _config.to_dict(self)
        data.pop("provider")
        return data


@dataclass(frozen=True)
class Rejected:
    """A catalog entry left out because of a plugin's problem, and why."""

    name: str
    provider: str  # the plugin that registered it, or the catalog file's name
    message: str


class Catalog:
    """All entries by name, and the entries that were rejected."""

    def __init__(self, entries: dict[str, Entry],
                 rejected: dict[str, Rejected] | None = None) -> None:
        self.entries = entries
        self.rejected = rejected or {}

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Entry:
        """The entry called ``name``; a rejected entry raises its rejection, an unknown
        name suggests close matches (or names the plugins that failed to load)."""
        try:
            return self.entries[name]
        except KeyError:
            pass
        if name in self.rejected:
            raise NotFoundError(f"model {name!r} was rejected from the catalog: "
                                f"{self.rejected[name].message}")
        raise NotFoundError(registry().unknown("model", name, list(self.entries)))

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries[name] for name in self.names())


def parse_entry(raw: Any, *, where: str, provider: str) -> Entry:
    """Validate one raw entry: its own fields, and that its family, dataset and config exist."""
    if isinstance(raw, dict) and "provider" in raw:
        raise ConfigError(f"{where}: unknown key 'provider'")
    entry = _config.parse(Entry, raw, where=where)
    reg = registry()
    try:
        family = reg.get("families", entry.family)
        dataset = reg.get("datasets", entry.dataset)
    except PluginError as exc:  # a name two plugins provide
        raise PluginError(f"{where}: {exc}") from None
    if family is None:
        raise ConfigError(f"{where}, field 'family': " + reg.unknown(
            "family", entry.family, reg.names("families"))
            + ("" if reg.failed() else _install_hint(reg)))
    if dataset is None:
        raise ConfigError(f"{where}, field 'dataset': " + reg.unknown(
            "dataset", entry.dataset, reg.names("datasets")))
    family.obj.parse_config(entry.config, where=f"{where}, field 'config'")
    return dataclasses.replace(entry, provider=provider)


def _install_hint(reg: Any) -> str:
    return f" (installed families: {', '.join(reg.names('families')) or 'none'})"


def read_registry(path: Path) -> list[Any]:
    """The raw entries of a registry file (a YAML mapping with a list under ``entries``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read the catalog {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{path.name} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    if len(text) > MAX_REGISTRY_CHARS:
        raise CatalogError(f"{path.name} is larger than {MAX_REGISTRY_CHARS} characters")
    if _flow_depth(text) > MAX_NESTING:
        # libyaml recurses in C: tens of thousands of nested brackets crash the process
        # (SIGSEGV) instead of raising, so they are refused before it sees them.
        raise CatalogError(f"{path.name} is not valid YAML: nested more than {MAX_NESTING} "
                           "levels deep")
    try:
        # libyaml's safe loader when present: the pure-Python one is most of `zoo list`'s time.
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        # ValueError: an integer too long to convert; RecursionError: nesting too deep.
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise CatalogError(f"{path.name} is not valid YAML: {message[:300]}") from None
    if not isinstance(data, dict) or set(data) - {"version", "entries"}:
        raise CatalogError(f"{path.name}: expected a mapping with keys 'version' and 'entries'")
    if data.get("version", 1) != 1:
        raise CatalogError(f"{path.name}: unsupported catalog version {data.get('version')!r}")
    entries = data.get("entries") or []
    if not isinstance(entries, list):
        raise CatalogError(f"{path.name}: 'entries' must be a list")
    return entries


def _flow_depth(text: str) -> int:
    """How deeply ``[`` and ``{`` nest in ``text``, quotes ignored (an upper bound is all
    that is needed: a registry nests a few levels)."""
    depth = deepest = 0
    for char in re.sub(r"[^\[\]{}]+", "", text):
        depth = depth + 1 if char in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def _needs_missing(raw: Any) -> bool:
    """Whether ``raw`` names a family or dataset that no plugin provided."""
    reg = registry()
    if not isinstance(raw, dict):
        return False
    family, dataset = raw.get("family"), raw.get("dataset")
    return ((isinstance(family, str) and family not in reg.items["families"])
            or (isinstance(dataset, str) and dataset not in reg.items["datasets"]))


def _left_out(raw: Any) -> bool:
    """Whether ``raw`` needs a family or dataset that is missing because ``ZOO_LOAD_PLUGINS``
    or ``ZOO_DISABLE_PLUGINS`` kept plugins out: then the entry is hidden, not an error."""
    return bool(registry().disabled) and _needs_missing(raw)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read, validate and merge the registry file and the plugins' entries."""
    path = Path(path or os.environ.get("ZOO_REGISTRY") or BUILTIN_REGISTRY)
    entries: dict[str, Entry] = {}
    rejected: dict[str, Rejected] = {}
    reg = registry()
    for i, raw in enumerate(read_registry(path)):
        label = raw.get("name") if isinstance(raw, dict) else None
        shown = label if isinstance(label, str) and len(label) <= 80 else None
        where = f"{path.name} entry {shown!r}" if shown is not None else f"{path.name} entry #{i + 1}"
        try:
            entry = parse_entry(raw, where=where, provider=path.name)
        except (ConfigError, PluginError) as exc:
            if _left_out(raw):
                continue  # its plugin was kept out on purpose (ZOO_LOAD/DISABLE_PLUGINS)
            # A plugin's fault (a name two plugins provide, or a plugin that failed and may
            # be the one providing it) leaves this entry out; a mistake in the file is fatal.
            if shown is not None and (isinstance(exc, PluginError)
                                      or (reg.failed() and _needs_missing(raw))):
                rejected[shown] = Rejected(shown, path.name, str(exc))
                continue
            raise CatalogError(str(exc)) from None
        if entry.name in entries:
            raise CatalogError(f"{path.name}: entry {entry.name!r} is defined twice")
        entries[entry.name] = entry
    for name, item in sorted(reg.items["entries"].items()):
        info = reg.plugins[item.plugin]
        try:
            entry = parse_entry(item.obj, where=f"plugin {item.plugin!r} entry {name!r}",
                                provider=item.plugin)
            if name in entries:
                raise ConfigError(f"entry {name!r} of plugin {item.plugin!r} is already defined "
                                  f"by {entries[name].provider}")
        except (ConfigError, PluginError) as exc:  # the plugin's failure, not the catalog's
            rejected.setdefault(name, Rejected(name, item.plugin, str(exc)))
            reg._fail(info, CatalogError(str(exc)))
            continue
        entries[name] = entry
    return Catalog(entries, rejected)


_catalog: Catalog | None = None
_built_from: object = None  # the plugin registry the cached catalog was validated against


def catalog() -> Catalog:
    """The process-wide catalog, loaded on first use and again whenever the plugin registry
    has been reloaded (``zoo.plugin.registry.reset``): its entries were validated against it."""
    global _catalog, _built_from
    current = registry()
    if _catalog is None or _built_from is not current:
        _catalog, _built_from = load_catalog(), current
    return _catalog


def reset() -> None:
    """Forget the loaded catalog (after ``ZOO_REGISTRY`` changes)."""
    global _catalog
    _catalog = None
