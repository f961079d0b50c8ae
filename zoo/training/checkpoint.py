"""Training checkpoints: safetensors for the tensors, a JSON sidecar for everything else.

A checkpoint of step ``S`` is two files in the run's checkpoint folder:

- ``step-000000S.safetensors``: every tensor (model weights, optimizer moments, the best
  weights so far), by name;
- ``step-000000S.json``: the step, the scalar state (optimizer hyper-parameters, scheduler,
  running loss, history), the random number generators' states (base64) and the size and
  sha256 of the safetensors file.

No pickle: nothing is read with ``torch.load``. Each file is written under a temporary name
and renamed; the sidecar goes last, so a checkpoint exists exactly when its sidecar does and
a killed writer leaves no half checkpoint. A file damaged afterwards (cut short by a full
disk or a copy, bit rot) no longer matches its recorded size and hash and is refused.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.artifact.manifest import sha256_file
from zoo.artifact.store import fsync
from zoo.errors import ZooError

FORMAT = 1
PATTERN = re.compile(r"^step-(\d{9,})\.json$")
MAX_SIDECAR_BYTES = 64 << 20


class CheckpointError(ZooError):
    """A checkpoint cannot be used: missing, cut short, corrupted, or from another run."""


def default_directory(name: str, output: str | os.PathLike | None = None) -> Path:
    """Where a run of catalog entry ``name`` keeps its checkpoints.

    ``$ZOO_HOME/runs/NAME`` when the artifact goes to the store; ``OUTPUT.checkpoints``
    beside an explicit output folder (not inside it: publishing replaces that folder whole).
    """
    if output is not None:
        out = Path(output).expanduser()
        return out.parent / f"{out.name}.checkpoints"
    from zoo.artifact import store
    from zoo.names import check_catalog_name

    return store.home() / "runs" / check_catalog_name(name)


def encode_bytes(t: Tensor) -> str:
    """A byte tensor (an RNG state) as base64 text for the JSON sidecar."""
    return base64.b64encode(t.cpu().contiguous().numpy().tobytes()).decode("ascii")


def decode_bytes(text: str) -> Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text.encode("ascii"), validate=True)),
                            dtype=torch.uint8)


def _write_atomic(path: Path, write) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def step_name(step: int) -> str:
    return f"step-{step:09d}"


def save(directory: str | os.PathLike, step: int, tensors: dict[str, Tensor],
         meta: dict[str, Any], *, keep: int = 1) -> Path:
    """Write the checkpoint of ``step`` atomically and return its sidecar's path.

    ``tensors`` go to safetensors (copied to contiguous CPU memory), ``meta`` (JSON data) to
    the sidecar. Afterwards only the ``keep`` newest checkpoints are kept.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    name = step_name(step)
    weights = directory / f"{name}.safetensors"
    sidecar = directory / f"{name}.json"
    # clone(): safetensors refuses tensors that share storage (tied weights, views).
    plain = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    _write_atomic(weights, lambda p: save_file(plain, str(p), metadata={"format": "zoo-checkpoint"}))
    record = {"format": FORMAT, "step": step, "weights": weights.name,
              "bytes": weights.stat().st_size, "sha256": sha256_file(weights), **meta}
    text = json.dumps(record, indent=1, allow_nan=False)
    _write_atomic(sidecar, lambda p: p.write_text(text, encoding="utf-8"))
    fsync(directory)
    prune(directory, keep=keep)
    return sidecar


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """The ``(step, sidecar)`` pairs in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest(directory: str | os.PathLike) -> Path | None:
    """The sidecar of the newest checkpoint in ``directory``, or ``None``."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def prune(directory: str | os.PathLike, *, keep: int = 1) -> None:
    """Delete all but the ``keep`` newest checkpoints (sidecar first: the commit marker)."""
    found = list_checkpoints(directory)
    for _, sidecar in found[:-keep] if keep > 0 else found:
        weights = sidecar.with_suffix(".safetensors")
        with contextlib.suppress(OSError):
            sidecar.unlink()
        with contextlib.suppress(OSError):
            weights.unlink()


def remove_all(directory: str | os.PathLike) -> None:
    """Delete the checkpoints in ``directory`` (and it, once empty); other files stay.

    Only files this module writes are touched, so a ``--checkpoint-dir`` that holds
    something else loses nothing but its checkpoints.
    """
    directory = Path(directory)
    prune(directory, keep=0)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.name.startswith(".step-") and path.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                path.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def load(sidecar: str | os.PathLike) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read and verify a checkpoint: its tensors and its sidecar's data.

    The safetensors file must have exactly the size and sha256 the sidecar records; a file
    cut short or altered is refused with a ``CheckpointError`` that says which and what to do.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    sidecar = Path(sidecar)
    advice = (f"delete {sidecar.name} and its .safetensors file to resume from an earlier "
              "checkpoint, or train again without --resume")
    try:
        raw = sidecar.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {sidecar} does not exist") from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise CheckpointError(f"checkpoint sidecar {sidecar} is larger than {MAX_SIDECAR_BYTES} bytes")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint sidecar {sidecar} is not valid JSON ({exc}); {advice}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint sidecar {sidecar} is not a zoo checkpoint of format {FORMAT}; {advice}")
    for key, kind in (("weights", str), ("bytes", int), ("sha256", str), ("step", int)):
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(
                f"checkpoint sidecar {sidecar}: field {key!r} is missing or invalid; {advice}")
    weights = sidecar.parent / Path(meta["weights"]).name
    try:
        size = weights.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {sidecar.name}: its weights file {weights} is missing; {advice}") from None
    if size != meta["bytes"]:
        what = "cut short" if size < meta["bytes"] else "longer than written"
        raise CheckpointError(
            f"checkpoint {weights} is {what}: {size} bytes on disk, {meta['bytes']} recorded in "
            f"{sidecar.name}; refusing to resume from it. {advice[0].upper()}{advice[1:]}"
        )
    digest = sha256_file(weights)
    if digest != meta["sha256"]:
        raise CheckpointError(
            f"checkpoint {weights} is corrupted: its sha256 {digest[:16]}... does not match "
            f"{meta['sha256'][:16]}... recorded in {sidecar.name}; refusing to resume from it. "
            f"{advice[0].upper()}{advice[1:]}"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint {weights} cannot be read ({exc}); {advice}") from None
    return tensors, meta


# --- optimizer state <-> (tensors, JSON) ----------------------------------------------


def split_optimizer_state(state: dict[str, Any], prefix: str = "optimizer."
                          ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimizer's ``state_dict`` as named tensors plus JSON data (no pickle needed)."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"{prefix}{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = json_value(value, f"optimizer state {key}")
    groups = [{k: json_value(v, f"optimizer param_groups {k}") for k, v in g.items()}
              for g in state["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def join_optimizer_state(tensors: dict[str, Tensor], meta: dict[str, Any],
                         prefix: str = "optimizer.") -> dict[str, Any]:
    """The inverse of ``split_optimizer_state``: a ``state_dict`` to ``load_state_dict``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith(prefix):
            continue
        pid, key = name[len(prefix):].split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        # JSON has no tuples; Adam's betas are a tuple in a fresh optimizer.
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def json_value(value: Any, what: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [json_value(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v, what) for k, v in value.items()}
    if isinstance(value, Tensor) and value.numel() == 1:
        return value.item()
    raise CheckpointError(f"{what}: cannot store a {type(value).__name__} in a checkpoint")
