"""An artifact: ``config.json`` + ``model.safetensors`` + ``README.md`` (the model card).

The layout is the one Hugging Face tooling already uses. ``config.json`` holds the format
version, family and family config, dataset, recipe, metrics, library versions and the
sha256 of the weights. Loading is strict: a missing file, a hash that does not match, a
missing, unexpected or mis-shaped tensor are errors, and so is a buffer (a mask, ordering
or index list) other than the one the config derives. No pickle anywhere: safetensors and
JSON only.

Format 2 adds ``files``: the extra files (pictures, training history; ``zoo.artifact.extras``) with
their sha256. Loading never reads them; :func:`check_files` checks them for ``zoo verify``.
An artifact without extra files is written as format 1, which every zoo reads. Format 3 adds
``log_prob``, the distribution of the model's scores (``zoo.artifact.scores``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import config as _config
from zoo import faults
from zoo.artifact.manifest import (  # noqa: F401  (re-exported: the format's names)
    FORMAT,
    MAX_HEADER_BYTES,
    ArtifactConfig,
    read_config,
    sha256_file,
    short_error,
)
from zoo.artifact.store import CARD, CONFIG, FILES, WEIGHTS  # noqa: F401  (re-exported)
from zoo.errors import ArtifactError

if TYPE_CHECKING:
    from zoo.plugin.model import ZooModel


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
    files: Sequence[str] = (),
    log_prob: dict[str, Any] | None = None,
) -> ArtifactConfig:
    """Write the three files of an artifact into ``directory`` (normally a staging folder).

    ``files`` names extra files already written there (``zoo.artifact.extras.render``): they are
    listed with their sha256 in ``config.json`` and shown by the model card. ``log_prob`` is
    the distribution of the model's scores (``zoo.artifact.scores.record``).
    """
    from safetensors.torch import save_file

    from zoo.plugin.registry import registry

    family = registry().get("families", model.family).obj
    weights = directory / WEIGHTS
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # One metadata key only: safetensors writes its metadata map in hash order, and more than
    # one key would make the bytes (and so the pinned sha256) differ from run to run.
    from zoo.artifact.store import writing

    with writing(weights):  # safetensors' own error on a full disk names no file
        save_file(state, str(weights), metadata={"format": "pt"})
    faults.point("weights-written")
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
        files={name: sha256_file(directory / name) for name in files},
        log_prob=dict(log_prob or {}),
        format=FORMAT if log_prob else 2 if files else 1,
    )
    cfg.validate()
    data = _config.to_dict(cfg)
    if not cfg.log_prob:  # the format-2 layout exactly, which zoo versions before 3 read
        del data["log_prob"]
    if not cfg.files and not cfg.log_prob:  # the format-1 layout exactly
        del data["files"]
    _write_text(directory / CONFIG, json.dumps(data, indent=2) + "\n")
    from zoo.artifact.card import model_card

    _write_text(directory / CARD, model_card(cfg))
    return cfg


def check_files(path: Path, cfg: ArtifactConfig) -> tuple[list[str], list[str]]:
    """Problems and warnings about the extra files ``cfg`` lists in the artifact ``path``:
    a file whose sha256 differs from the listed one is a problem (the artifact was changed
    or damaged); a missing one only a warning (the model is whole without it)."""
    from zoo.artifact.safe_files import artifact_file

    problems, warnings = [], []
    for name, digest in sorted(cfg.files.items()):
        try:  # a link out of the artifact, or a FIFO or /proc file that never ends
            file = artifact_file(path, name)
        except ArtifactError as exc:
            problems.append(str(exc))
            continue
        if not file.is_file():
            warnings.append(f"{file} is missing (listed in {CONFIG}; the model loads without it)")
            continue
        try:
            actual = sha256_file(file)
        except OSError as exc:  # unreadable: say so, and check the rest
            problems.append(f"cannot read {file}: {exc.strerror or exc}")
            continue
        if actual != digest:
            problems.append(f"{file} is corrupted: sha256 {actual} does not match the "
                            f"{digest} recorded in {CONFIG}")
    return problems, warnings


def save(model: ZooModel, path: str | Path, **meta: Any) -> Path:
    """Save ``model`` as an artifact at ``path``, atomically (staging folder, then rename)."""
    from zoo.artifact import store

    path = Path(path)
    with store.staging(path) as tmp:
        write(tmp, model, **meta)
        return store.publish(tmp, path)


def load(path: str | Path, *, device: Any = "cpu", verify: bool = True) -> ZooModel:
    """Load the model of an artifact directory, checking its weights against the config.

    Nothing is allocated for the model until the weights file is known to hold exactly the
    tensors its config describes: the expected tensors come from a model built on the
    ``meta`` device (no memory), the file's size is checked before it is read, its sha256
    against ``config.json``, and its tensors' names, shapes and dtypes before the real build.
    The real build derives every buffer from the config; the file's buffers must match them
    (``check_derived_buffers``).
    """
    from zoo.plugin.registry import get_family

    path = Path(path)
    cfg = read_config(path)
    family = get_family(cfg.family)
    model_config = family.parse_stored_config(cfg.config, where=f"{path / CONFIG} config")
    from zoo.artifact.safe_files import artifact_file

    weights = artifact_file(path, WEIGHTS, regular=False)  # no link out of the artifact
    where = str(weights)
    meta = _meta_model(family, model_config)
    expected = None if meta is None else meta[0]
    if not weights.is_file():  # missing, or a folder, FIFO or device that would never end
        raise ArtifactError(f"{path} is incomplete: {WEIGHTS} is missing or not a file")
    size = weights.stat().st_size
    if expected is not None:
        need = sum(nbytes(dtype, shape) for dtype, shape in expected.values())
        if size < 8 + need:
            raise ArtifactError(f"{where} is truncated: {size} bytes, but the model's tensors "
                                f"alone take {need} bytes")
        if size > 8 + MAX_HEADER_BYTES + need:
            raise ArtifactError(f"{where} is {size} bytes, far more than the {need} bytes of "
                                "tensors its config describes")
    blob = weights.read_bytes()
    if verify:
        actual = hashlib.sha256(blob).hexdigest()
        if actual != cfg.weights_sha256:
            _check_not_replaced(path, cfg, actual)
            raise ArtifactError(
                f"{weights} is corrupted: sha256 {actual} does not match the "
                f"{cfg.weights_sha256} recorded in {CONFIG} (run `zoo pull --force` to repair)"
            )
    tensors = family.upgrade_tensors(model_config, read_tensors(blob, where=where))
    if meta is not None:
        check_tensors({k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}, expected,
                      where=where)
        check_finite(tensors, meta[1], where=where)
    model = family.build(model_config)
    check_derived_buffers(model, tensors, state_buffers(family), where=where)
    assign(model, tensors, where=where)
    model.artifact = cfg
    return model.to(device).eval()


def _check_not_replaced(path: Path, cfg: ArtifactConfig, actual: str) -> None:
    """A hash mismatch may be no damage at all: another process (``zoo train -o``, ``zoo
    pull --force``) replaced the artifact between the reads of ``config.json`` and of the
    weights. Then ``config.json`` now records another hash, or the weights now have
    another: say that, rather than "corrupted ... run `zoo pull --force`"."""
    try:
        now = read_config(path).weights_sha256
        again = sha256_file(path / WEIGHTS)
    except (ArtifactError, OSError):  # gone or half replaced at this very moment
        now, again = None, None
    if now != cfg.weights_sha256 or again != actual:
        raise ArtifactError(f"{path} was replaced by another process while it was being "
                            "read (its config.json and weights changed); load it again")


def expected_tensors(family: Any, config: Any) -> dict[str, tuple[Any, tuple[int, ...]]] | None:
    """``{name: (dtype, shape)}`` of the model ``config`` describes, found without allocating
    it (built on the ``meta`` device); None if the family cannot be built there."""
    meta = _meta_model(family, config)
    return None if meta is None else meta[0]


def _meta_model(family: Any, config: Any) -> tuple[dict[str, Any], list[str]] | None:
    """The expected tensors of ``config`` and the names of its parameters, or None."""
    import torch

    for empty in (_parameters_on_meta, lambda: torch.device("meta")):
        try:
            with _no_init(), empty():
                model = family.create(config)
            state = model.state_dict()
            params = [name for name, _ in model.named_parameters()]
        except Exception:  # this family cannot be built that way; try the next
            continue
        return {k: (v.dtype, tuple(v.shape)) for k, v in state.items()}, params
    return None


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Build modules with their parameters on the ``meta`` device and buffers real: for
    families whose construction computes buffers from data (``torch.nonzero`` of a mask),
    which the meta device cannot do. Parameters, the bulk of a model, never get memory."""
    from torch import nn

    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: Any) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        original(module, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """``torch.nn.init``'s initialisers as no-ops: only shapes are wanted, and random
    initialisation of a meta tensor imports torch's compiler stack (seconds, once)."""
    from torch.nn import init

    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_")
             and callable(getattr(init, n))]
    saved = {n: getattr(init, n) for n in names}
    for n in names:
        setattr(init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for n, fn in saved.items():
            setattr(init, n, fn)


def state_buffers(family: Any) -> tuple[str, ...]:
    """The patterns (``fnmatch``) of the buffers ``family`` declares as learned state."""
    declared = getattr(family, "state_buffers", ())
    return (declared,) if isinstance(declared, str) else tuple(declared)


def check_derived_buffers(model: ZooModel, tensors: dict[str, Any],
                          state: tuple[str, ...] = (), *, where: str) -> None:
    """Every buffer of ``tensors`` equals the one ``model`` (freshly built from the config)
    holds, except the buffers the family declares as state (``Family.state_buffers``).

    Masks, orderings and index lists follow from the config (its seeds and variant). The
    sha256 in ``config.json`` does not protect them: whoever rewrites the weights can rewrite
    the hash too, and a mask of ones or a repeated index is a model whose ``log p(x)`` is not
    a normalised density. So the copies in the file must be the ones the config derives.
    """
    import fnmatch

    import torch

    params = {name for name, _ in model.named_parameters()}
    built = model.state_dict()
    for name, fresh in built.items():
        if name in params or name not in tensors:
            continue
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in state):
            continue
        stored = tensors[name]
        fresh = fresh.detach().cpu()
        if stored.shape != fresh.shape or stored.dtype != fresh.dtype:
            continue  # check_tensors reports it, with both shapes
        same = stored == fresh
        if stored.is_floating_point() or stored.is_complex():
            same |= torch.isnan(stored) & torch.isnan(fresh)
        if not bool(same.all()):
            raise ArtifactError(
                f"{where}: buffer {name!r} is not the one its config derives "
                f"({int((~same).sum())} of {same.numel()} values differ): masks, orderings "
                "and index lists are rebuilt from config.json on load, and a file that "
                "changes them describes another model (a family that keeps learned state in "
                "a buffer lists it in Family.state_buffers)"
            )


def read_tensors(blob: bytes, *, where: str) -> dict[str, Any]:
    """The tensors of safetensors bytes; a malformed file (a header that lies about shapes,
    dtypes or offsets, truncated data) is an ArtifactError."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    try:
        return load_bytes(blob)
    except (SafetensorError, ValueError, RuntimeError, OSError, OverflowError) as exc:
        raise ArtifactError(f"{where} is not a valid safetensors file: {short_error(exc)}") from None


def check_tensors(got: dict[str, tuple[Any, tuple[int, ...]]],
                  want: dict[str, tuple[Any, tuple[int, ...]]], *, where: str) -> None:
    """The same tensor names, dtypes and shapes, or an ArtifactError that says what differs."""
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected tensors {_few(unexpected)}")
        raise ArtifactError(f"{where} does not match the model: {'; '.join(parts)}")
    for key, (dtype, shape) in want.items():
        if got[key] != (dtype, shape):
            raise ArtifactError(
                f"{where}: tensor {key!r} is {got[key][0]} {list(got[key][1])}, "
                f"the model needs {dtype} {list(shape)}"
            )


def assign(model: ZooModel, tensors: dict[str, Any], *, where: str) -> None:
    """Strictly load ``tensors`` into ``model``: same keys, shapes and dtypes, finite
    parameters (a NaN weight would make every log_prob a silent NaN), or an ArtifactError."""
    expected = model.state_dict()
    check_tensors({k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()},
                  {k: (v.dtype, tuple(v.shape)) for k, v in expected.items()}, where=where)
    check_finite(tensors, [name for name, _ in model.named_parameters()], where=where)
    model.load_state_dict(tensors, strict=True)


def check_finite(tensors: dict[str, Any], params: list[str], *, where: str) -> None:
    """No NaN or infinity in a parameter: it would make log_prob a silent NaN. (Buffers may
    hold infinities on purpose, a mask of -inf for instance.)"""
    import torch

    for key in params:
        value = tensors[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ArtifactError(f"{where}: parameter {key!r} holds NaN or infinite values")


def _few(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")


def nbytes(dtype: Any, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor of ``dtype`` and ``shape``."""
    import math

    import torch

    return math.prod(shape) * torch.empty((), dtype=dtype, device="meta").element_size()


def _write_text(path: Path, text: str) -> None:
    from zoo.artifact.store import writing

    with writing(path), open(path, "w", encoding="utf-8") as f:
        f.write(text)
