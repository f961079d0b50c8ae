"""The registry: finding plugins, collecting what they register, and resolving names.

This is the only place a family or dataset name turns into the object a plugin registered
(``get_family``, ``get_dataset``).

Built-in hooks (the core's datasets) and every module of the ``zoo`` entry-point group are
loaded one at a time: a plugin that fails to import or to register is recorded with its
error and the rest keep working (``ZOO_STRICT_PLUGINS=1`` makes such a failure fatal).
``ZOO_LOAD_PLUGINS`` (comma-separated allowlist) and ``ZOO_DISABLE_PLUGINS`` (blocklist)
choose which entry-point plugins load, by the entry-point name ``zoo plugins`` shows. An
empty ``ZOO_LOAD_PLUGINS`` loads none; the blocklist wins over the allowlist; the core's own
datasets always load. A plugin kept out is never imported, but ``zoo plugins`` lists it and
says why, and catalog entries that need it are hidden rather than errors.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.data.dataset import Dataset
from zoo.errors import NotFoundError, PluginError
from zoo.names import unknown_name_message
from zoo.plugin.family import Family

#: A plugin whose import and registration take longer than this is flagged by ``zoo plugins``:
#: every ``zoo list`` and ``zoo --help`` loads every plugin, so each one pays it.
SLOW_IMPORT_SECONDS = 0.1

KINDS = ("families", "datasets", "entries")
HOOKS = {
    "families": "zoo_register_families",
    "datasets": "zoo_register_datasets",
    "entries": "zoo_register_entries",
}


@dataclass
class PluginInfo:
    """What ``zoo plugins`` shows about one plugin."""

    name: str
    version: str | None = None
    source: str = ""  # where it came from: a distribution, "zoo (built-in)", "in-process"
    module: str = ""
    path: str | None = None  # the file the plugin was imported from
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    disabled: str | None = None  # why it was not loaded (ZOO_LOAD_PLUGINS / ZOO_DISABLE_PLUGINS)
    traceback: str | None = field(default=None, repr=False)
    #: Seconds spent importing the plugin's module and running its hooks (entry points only).
    import_seconds: float | None = None
    #: Whether torch was first imported while this plugin loaded.
    imported_torch: bool = False

    @property
    def slow(self) -> str | None:
        """Why this plugin's load time matters, when it is over ``SLOW_IMPORT_SECONDS``."""
        if self.import_seconds is None or self.import_seconds <= SLOW_IMPORT_SECONDS:
            return None
        cause = ("it imports torch at import time; import torch inside create() and dataset "
                 "loaders instead" if self.imported_torch else
                 "import heavy modules inside create() and dataset loaders, not at module level")
        return (f"loading takes {self.import_seconds:.2f} s (over "
                f"{SLOW_IMPORT_SECONDS * 1000:.0f} ms), which every `zoo list` and "
                f"`zoo --help` pays: {cause}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "module": self.module,
            "path": self.path,
            "hooks": self.hooks,
            "registered": self.registered,
            "error": self.error,
            "disabled": self.disabled,
            "import_seconds": self.import_seconds,
            "slow": self.slow,
        }


@dataclass
class Registration:
    """One registered family, dataset or catalog entry, and who provided it."""

    name: str
    obj: Any
    plugin: str


class PluginRegistry:
    """Everything the plugins registered, by kind and name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("zoo")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.items: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        self.conflicts: dict[str, dict[str, str]] = {kind: {} for kind in KINDS}
        #: Entry-point plugins that ZOO_LOAD_PLUGINS / ZOO_DISABLE_PLUGINS kept out (not imported).
        self.disabled: dict[str, PluginInfo] = {}
        #: Names in those variables that match no installed plugin (a typo, most likely).
        self.unmatched: dict[str, list[str]] = {}

    # -- loading ---------------------------------------------------------------------------

    def add(self, plugin: Any, info: PluginInfo) -> PluginInfo:
        """Register a plugin object and run its hooks, recording any failure on ``info``."""
        self.plugins[info.name] = info
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # a malformed hookimpl, a duplicate name
            return self._fail(info, exc)
        info.hooks = sorted(
            impl_name for impl_name in HOOKS.values() if hasattr(plugin, impl_name)
        )
        for kind, hook in HOOKS.items():
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.plugin is plugin:
                    self._run(impl.function, kind, info)
        return info

    def _run(self, function: Any, kind: str, info: PluginInfo) -> None:
        added: list[Registration] = []

        def register(obj: Any) -> None:
            name = _name_of(obj, kind)
            added.append(Registration(name, obj, info.name))

        try:
            function(register=register)
        except Exception as exc:
            self._fail(info, exc)
            return
        for reg in added:  # only a hook that ran to the end contributes anything
            other = self.items[kind].get(reg.name)
            if other is not None and other.plugin != reg.plugin:
                message = (
                    f"{_singular(kind)} {reg.name!r} is provided by two plugins: "
                    f"{other.plugin!r} and {reg.plugin!r}; uninstall one or disable it "
                    "with ZOO_DISABLE_PLUGINS"
                )
                # Neither provider wins: using the name fails, everything else keeps working.
                self.conflicts[kind][reg.name] = message
                self._fail(info, PluginError(message))
                continue
            self.items[kind][reg.name] = reg
            info.registered.setdefault(kind, []).append(reg.name)

    def _fail(self, info: PluginInfo, exc: BaseException) -> PluginInfo:
        error = f"{type(exc).__name__}: {exc}"
        info.error = error if info.error is None else f"{info.error}; {error}"
        info.traceback = "".join(traceback.format_exception(exc))
        if strict():
            raise PluginError(f"plugin {info.name!r} failed: {error}") from exc
        return info

    def load_entry_points(self) -> None:
        allow = _env_list("ZOO_LOAD_PLUGINS")
        deny = _env_list("ZOO_DISABLE_PLUGINS")
        eps = sorted(metadata.entry_points(group="zoo"), key=lambda e: e.name)
        installed = {ep.name for ep in eps}
        for var, names in (("ZOO_LOAD_PLUGINS", allow), ("ZOO_DISABLE_PLUGINS", deny)):
            if names and names - installed:
                self.unmatched[var] = sorted(names - installed)
        for ep in eps:
            if ep.name in self.plugins or ep.name in self.disabled:
                continue  # the same distribution seen twice on sys.path
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                version=dist.version if dist else None,
                source=f"{dist.metadata['Name']} (entry point)" if dist else "entry point",
                module=ep.value,
            )
            if deny is not None and ep.name in deny:
                info.disabled = "disabled by ZOO_DISABLE_PLUGINS"
            elif allow is not None and ep.name not in allow:
                info.disabled = "not in ZOO_LOAD_PLUGINS"
            if info.disabled:
                self.disabled[ep.name] = info  # recorded for `zoo plugins`, never imported
                continue
            had_torch = "torch" in sys.modules
            start = time.perf_counter()
            try:
                try:
                    plugin = ep.load()
                except Exception as exc:
                    self.plugins[info.name] = info
                    self._fail(info, exc)
                    continue
                info.path = getattr(plugin, "__file__", None)
                self.add(plugin, info)
            finally:
                info.import_seconds = time.perf_counter() - start
                info.imported_torch = not had_torch and "torch" in sys.modules

    # -- lookup ----------------------------------------------------------------------------

    def get(self, kind: str, name: str) -> Registration | None:
        """The registration of ``name``; a name two plugins provide is an error."""
        if name in self.conflicts[kind]:
            raise PluginError(self.conflicts[kind][name])
        return self.items[kind].get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.items[kind])

    def failed(self) -> list[PluginInfo]:
        """The plugins that failed to import or to register something, by name."""
        return [info for name, info in sorted(self.plugins.items()) if info.error]

    def unknown(self, what: str, name: str, known: list[str]) -> str:
        """The message for an unknown ``what`` called ``name``.

        When plugins failed to load, the name may be theirs: the message names each with
        its error instead of suggesting a similar name that is most likely not the one meant.
        """
        failed = self.failed()
        if not failed:
            return unknown_name_message(what, name, known)
        shown = repr(name) if len(name) <= 80 else repr(name[:77]) + "..."
        causes = "; ".join(f"{info.name!r} ({_clip(info.error or '')})" for info in failed)
        return (f"unknown {what} {shown}; {len(failed)} plugin(s) failed to load and may "
                f"provide it: {causes} (see `zoo plugins`)")


def _clip(text: str, limit: int = 200) -> str:
    """An error on one line, short enough to sit inside another message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _singular(kind: str) -> str:
    return {"families": "family", "datasets": "dataset", "entries": "catalog entry"}[kind]


def _name_of(obj: Any, kind: str) -> str:
    if kind == "entries":
        name = obj.get("name") if isinstance(obj, dict) else None
    else:
        name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"registered {_singular(kind)} {obj!r} has no name")
    return name


def _env_list(var: str) -> set[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


def strict() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


_registry: PluginRegistry | None = None
_extra: list[tuple[Any, str]] = []


def registry() -> PluginRegistry:
    """The process-wide plugin registry, loaded on first use."""
    global _registry
    if _registry is None:
        reg = PluginRegistry()
        from zoo import data

        reg.add(data, PluginInfo(name="zoo.data", version=_zoo_version(), source="zoo (built-in)",
                                 module="zoo.data", path=data.__file__))
        reg.load_entry_points()
        for plugin, name in _extra:
            reg.add(plugin, PluginInfo(name=name, source="in-process", module=repr(plugin),
                                       path=getattr(plugin, "__file__", None)))
        _registry = reg
    return _registry


def register_plugin(plugin: Any, name: str | None = None) -> PluginInfo:
    """Add a plugin object in-process (tests, notebooks): it stays registered until ``unregister_plugin``."""
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    _extra.append((plugin, name))
    reset()
    return registry().plugins[name]


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with ``register_plugin``."""
    _extra[:] = [(p, n) for p, n in _extra if n != name]
    reset()


def reset() -> None:
    """Forget what was loaded: the next lookup loads the plugins again (and the catalog,
    which is rebuilt whenever the registry it was built from is replaced)."""
    global _registry
    _registry = None


def get_family(name: str) -> Family:
    """The registered family called ``name`` (``zoo.get_family("realnvp").build({...})``)."""
    reg = registry()
    found = reg.get("families", name)
    if found is None:
        message = reg.unknown("family", name, reg.names("families"))
        if not reg.failed():
            message += (f" (installed: {', '.join(reg.names('families')) or 'none'}; "
                        "is its plugin installed?)")
        raise NotFoundError(message)
    return found.obj


def get_dataset(name: str) -> Dataset:
    """The registered dataset called ``name`` (a ``zoo.Dataset``):
    ``zoo.get_dataset("moons").load("train")`` gives the whole training split as a tensor.
    An unknown name suggests close matches, or names the plugins that failed to load."""
    reg = registry()
    found = reg.get("datasets", name)
    if found is None:
        raise NotFoundError(reg.unknown("dataset", name, reg.names("datasets")))
    return found.obj


def _zoo_version() -> str | None:
    try:
        return metadata.version("genzoo")
    except metadata.PackageNotFoundError:
        return None
