"""``zoo verify``: check stored artifacts the way a package manager checks its cache.

Each artifact is checked completely: its three files are there, ``config.json`` parses and
validates, the weights' sha256 is the one the config records, and the model loads strictly
(every tensor present with the right name, shape and dtype, no extra ones, finite weights,
every derived buffer the one the config rebuilds). The extra files ``config.json`` lists
(pictures, history) must have their recorded sha256; one that is missing is only a
warning, since the model is whole without it.
A bad artifact is reported with its path and what is wrong; ``zoo pull --force NAME``
replaces it. Nothing here writes to the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import ArtifactError, ConfigError, NotFoundError, ZooError


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on one artifact: ``ok``, or the ``problems`` found at ``path``.

    ``warnings`` say what is amiss without making the artifact bad (a listed picture that
    is missing: the model is whole without it).
    """

    name: str
    path: Path | None
    problems: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": None if self.path is None else str(self.path),
                "ok": self.ok, "problems": list(self.problems), "warnings": list(self.warnings)}


def check(path: Path) -> tuple[str, ...]:
    """What is wrong with the artifact directory ``path`` (empty when nothing is)."""
    return inspect(path)[0]


def inspect(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The problems and the warnings of the artifact directory ``path``."""
    try:
        return _inspect(path)
    except OSError as exc:  # unreadable (EACCES): this artifact is bad, the others are checked
        where = exc.filename or path
        return (f"cannot read {where}: {exc.strerror or exc}",), ()


def _inspect(path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from zoo.artifact import io as artifacts

    if not path.is_dir():
        return (f"{path} is not a directory",), ()
    from zoo.artifact.safe_files import artifact_file

    problems = []
    for f in artifacts.FILES:  # a link out of the artifact is bad even where nothing reads it
        try:
            if not artifact_file(path, f).is_file():
                problems.append(f"{path / f} is missing")
        except ArtifactError as exc:
            problems.append(str(exc))
    warnings: list[str] = []
    if (path / artifacts.CONFIG).is_file() and (path / artifacts.WEIGHTS).is_file():
        try:
            # The strict load reads and validates the config, checks the sha256 of the
            # weights and every tensor; it allocates nothing before the file is known good.
            model = artifacts.load(path)
        except (ZooError, ValueError) as exc:
            problems.append(" ".join(str(exc).split()))
        else:
            extra_problems, warnings = artifacts.check_files(path, model.artifact)
            problems += extra_problems
    return tuple(dict.fromkeys(problems)), tuple(warnings)


def stored_names() -> list[str]:
    """The names of the artifacts in the store (hidden staging and trash folders excluded)."""
    from zoo.artifact import store

    store.check_home()  # a store that is a file is an error, not an empty store
    folder = store.models_dir()
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def verify(names: list[str] | None = None) -> list[VerifyResult]:
    """Check the artifacts called ``names`` (catalog names, ``hf-hub:`` names or paths), or
    every artifact in the store when ``names`` is None."""
    results = []
    for name in stored_names() if names is None else names:
        try:
            path = _locate(name)
        except (ConfigError, NotFoundError) as exc:  # an invalid, unknown or unpulled name
            results.append(VerifyResult(name, None, (str(exc),)))
            continue
        results.append(VerifyResult(name, path, *inspect(path)))
    return results


def _locate(name: str) -> Path:
    """The folder ``name`` is stored in (validated: no name leads out of the store)."""
    from zoo.artifact import store
    from zoo.catalog import catalog
    from zoo.names import HUB_PREFIX, is_path

    if name.startswith(HUB_PREFIX):
        from zoo.artifact import hub

        path = hub.cached_path(name)
        if path is None:
            raise NotFoundError(f"{name} is not in the Hugging Face cache")
        return path
    if is_path(name):
        return Path(name).expanduser()
    path = store.artifact_dir(name)
    if not path.exists():
        catalog().get(name)  # unknown: says so
        raise NotFoundError(f"{name} is not pulled")
    return path
