"""An artifact: ``config.json`` + ``model.safetensors`` + ``README.md`` (the model card).

The layout is the one Hugging Face tooling already uses. ``config.json`` holds the format
version, family and family config, dataset, recipe, metrics, library versions and the
sha256 of the weights. Loading is strict: a missing file, a hash that does not match, a
missing, unexpected or mis-shaped tensor are errors. No pickle anywhere: safetensors
and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import config as _config
from zoo.config import bounds
from zoo.errors import ArtifactError, ConfigError, NotFoundError

if TYPE_CHECKING:
    from zoo.model import ZooModel

FORMAT = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
FILES = (CONFIG, WEIGHTS, CARD)
MAX_CONFIG_BYTES = 1 << 20


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

    def validate(self) -> None:
        digest = self.weights_sha256
        if len(digest) != 64 or set(digest) - set("0123456789abcdef"):
            raise ConfigError(f"weights_sha256: expected 64 hex digits, got {digest!r}")


def sha256_file(path: Path) -> str:
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
    try:
        with open(file, "rb") as f:
            raw_bytes = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ArtifactError(f"{path} is not a zoo artifact: {CONFIG} is missing") from None
    if len(raw_bytes) > MAX_CONFIG_BYTES:
        raise ArtifactError(f"{file}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = json.loads(raw_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{file} is not valid JSON: {exc}") from None
    if isinstance(raw, dict) and isinstance(raw.get("format"), int) and raw["format"] > FORMAT:
        raise ArtifactError(f"{file}: format {raw['format']} is newer than this zoo reads "
                            f"({FORMAT}); upgrade genzoo")
    try:
        return _config.parse(ArtifactConfig, raw, where=str(file))
    except ConfigError as exc:
        raise ArtifactError(str(exc)) from None


def library_versions() -> dict[str, str]:
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("genzoo", "safetensors"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def write(
    directory: Path,
    model: ZooModel,
    *,
    name: str | None = None,
    description: str = "",
    dataset: str | None = None,
    recipe: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    source: dict[str, Any] | None = None,
) -> ArtifactConfig:
    """Write the three files of an artifact into ``directory`` (normally a staging folder)."""
    from safetensors.torch import save_file

    from zoo.plugins import registry

    family = registry().get("families", model.family).obj
    weights = directory / WEIGHTS
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"format": "pt", "zoo_family": model.family})
    cfg = ArtifactConfig(
        family=model.family,
        config=family.config_dict(model.config),
        weights_sha256=sha256_file(weights),
        name=name,
        description=description,
        dataset=dataset,
        recipe=recipe,
        metrics=dict(metrics or {}),
        versions=library_versions(),
        source=dict(source or {}),
    )
    _write_text(directory / CONFIG, json.dumps(_config.to_dict(cfg), indent=2) + "\n")
    from zoo.card import model_card

    _write_text(directory / CARD, model_card(cfg))
    return cfg


def save(model: ZooModel, path: str | Path, **meta: Any) -> Path:
    """Save ``model`` as an artifact at ``path``, atomically (staging folder, then rename)."""
    from zoo import store

    path = Path(path)
    with store.staging(path) as tmp:
        write(tmp, model, **meta)
        return store.publish(tmp, path)


def load(path: str | Path, *, device: Any = "cpu", verify: bool = True) -> ZooModel:
    """Load the model of an artifact directory, checking its weights against the config."""
    from zoo.api import get_family

    path = Path(path)
    cfg = read_config(path)
    family = get_family(cfg.family)
    model_config = family.parse_config(cfg.config, where=f"{path / CONFIG} config")
    weights = path / WEIGHTS
    try:
        blob = weights.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path} is incomplete: {WEIGHTS} is missing") from None
    if verify:
        actual = hashlib.sha256(blob).hexdigest()
        if actual != cfg.weights_sha256:
            raise ArtifactError(
                f"{weights} is corrupted: sha256 {actual} does not match the "
                f"{cfg.weights_sha256} recorded in {CONFIG} (run `zoo pull --force` to repair)"
            )
    model = family.build(model_config)
    load_state(model, blob, where=str(weights))
    model.artifact = cfg
    return model.to(device).eval()


def load_state(model: ZooModel, blob: bytes, *, where: str) -> None:
    """Strictly load safetensors bytes into ``model``: same keys, shapes and dtypes, or an error."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    try:
        tensors = load_bytes(blob)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise ArtifactError(f"{where} is not a valid safetensors file: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors {_few(unexpected)}")
        raise ArtifactError(f"{where} does not match the model: {'; '.join(parts)}")
    for key, want in expected.items():
        got = tensors[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ArtifactError(
                f"{where}: tensor {key!r} is {got.dtype} {list(got.shape)}, "
                f"the model needs {want.dtype} {list(want.shape)}"
            )
    model.load_state_dict(tensors, strict=True)


def _few(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
