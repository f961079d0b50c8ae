"""The artifact manifest: ``config.json``, its fields, limits and validation.

What an artifact *is*, without torch: the format version, family and family config,
dataset, recipe, metrics, library versions and the sha256 of the weights. ``zoo.artifact.card``
renders it; ``zoo.artifact.io`` writes and loads the model it describes.

Format 2 adds ``files``: the artifact's extra files (pictures, training history; see
``zoo.artifact.extras``) with their sha256. An artifact without extra files is written as format 1,
the layout every zoo reads. Format 3 adds ``log_prob``: the distribution of the model's
log-likelihoods on its training and held-out examples (``zoo.artifact.scores``); an artifact
without it is written as format 2 or 1, as before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo import config as _config
from zoo.artifact.extras import check_listing
from zoo.artifact.scores import check as check_log_prob
from zoo.artifact.store import CONFIG
from zoo.config import bounds
from zoo.errors import ArtifactError, ConfigError, NotFoundError

FORMAT = 3  # the newest format this zoo reads and writes (2: ``files``, 3: ``log_prob``)
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32  # config.json nests 3 levels; deeper is not ours (and would recurse badly)
MAX_HEADER_BYTES = 100_000_000  # the largest safetensors header the safetensors library reads


@dataclass(frozen=True)
class ArtifactConfig:
    """The validated contents of ``config.json``."""

    family: str
    config: dict[str, Any]
    weights_sha256: str
    format: int = field(default=FORMAT, metadata=bounds(1, FORMAT))
    name: str | None = None
    description: str = ""
    dataset: str | None = None
    recipe: dict[str, Any] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    log_prob: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        digest = self.weights_sha256
        if len(digest) != 64 or set(digest) - set("0123456789abcdef"):
            raise ConfigError(f"weights_sha256: expected 64 hex digits, got {digest!r}")
        check_listing(self.files)
        check_log_prob(self.log_prob)


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_config(path: str | Path) -> ArtifactConfig:
    """Read and validate an artifact's ``config.json``."""
    path = Path(path)
    file = path / CONFIG
    if not path.is_dir():
        raise NotFoundError(f"no artifact at {path}: not a directory")
    from zoo.artifact.safe_files import artifact_file

    artifact_file(path, CONFIG, regular=False)  # no link out of the artifact, no FIFO or device
    if not file.is_file():  # missing, or a FIFO that would block the read forever
        raise ArtifactError(f"{path} is not a zoo artifact: {CONFIG} is missing or not a file")
    try:
        with open(file, "rb") as f:
            raw_bytes = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ArtifactError(f"cannot read {file}: {exc.strerror or exc}") from None
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise ArtifactError(f"{file}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(raw_bytes.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers too long to convert;
        # RecursionError a nesting too deep for the parser.
        raise ArtifactError(f"{file} is not valid JSON: {short_error(exc)}") from None
    if _depth(raw) > MAX_DEPTH:
        raise ArtifactError(f"{file}: nested more than {MAX_DEPTH} levels deep")
    if isinstance(raw, dict) and isinstance(raw.get("format"), int) and raw["format"] > FORMAT:
        raise ArtifactError(f"{file}: format {raw['format']} is newer than this zoo reads "
                            f"({FORMAT}); upgrade genzoo")
    try:
        return _config.parse(ArtifactConfig, raw, where=str(file))
    except ConfigError as exc:
        raise ArtifactError(str(exc)) from None


def _no_constant(word: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are no JSON (Python's parser accepts them): a
    config holding one would be printed back as invalid JSON by ``zoo info --json``."""
    raise ValueError(f"{word} is not a JSON value (numbers must be finite)")


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in ``value`` (iteratively: no recursion to blow)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def short_error(exc: BaseException, limit: int = 200) -> str:
    """An exception as one line of at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
