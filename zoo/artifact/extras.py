"""The extra files of an artifact: pictures of the model and its training history.

Beside its three files an artifact may hold ``samples.png`` (what the model draws),
``training.png`` (its training curve) and ``history.json`` (the numbers of that curve).
``config.json`` lists each extra file with its sha256 (``files``), so that ``zoo verify``
can tell a damaged picture from a good one; loading a model never reads them, and an
artifact without them (every artifact written before they existed) is complete.

The names an artifact may list are plain file names with a known suffix: a ``config.json``
from the Hub is untrusted, and no name it lists may lead out of the artifact's folder or
stand for one of the three files that make the model.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.artifact.store import FILES
from zoo.errors import ConfigError

if TYPE_CHECKING:
    from zoo.plugin.model import ZooModel

SAMPLES = "samples.png"
TRAINING = "training.png"
HISTORY = "history.json"
SUFFIXES = (".png", ".json")
# What the Hub serves of an artifact besides its three files (huggingface_hub patterns).
HUB_PATTERNS = tuple(f"*{suffix}" for suffix in SUFFIXES)
RESERVED = (*FILES, "source.json")  # zoo's own files: never an extra
MAX_FILES = 32
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
HEX = frozenset("0123456789abcdef")

SAMPLE_COUNT = {"images": 64, "points": 2000}  # samples drawn for samples.png
CLASS_ROW, MAX_CLASS_ROWS = 8, 20  # a label-conditional model's samples.png: rows of a class
SAMPLE_SEED = 0  # the same model gives the same picture

# What the numbers of history.json are.
HISTORY_NOTES = {
    "unit": "nats per example",
    "train_nll": "running mean of the training batches' NLL (each step weighs 0.02)",
    "val_nll": "mean NLL of the examples held out of the training split",
    "best_step": "the step whose weights were kept (lowest validation NLL)",
}


def check_listing(files: Mapping[str, str]) -> None:
    """Refuse a ``files`` listing with a name that is not a plain file name with a known
    suffix (or that is one of zoo's own files), or a sha256 that is not 64 hex digits."""
    if len(files) > MAX_FILES:
        raise ConfigError(f"files: lists {len(files)} files, more than {MAX_FILES}")
    for name, digest in files.items():
        if not NAME.fullmatch(name) or not name.endswith(SUFFIXES) or name in RESERVED:
            raise ConfigError(f"files: {name[:120]!r} is not an extra file name (a plain name "
                              f"ending in {' or '.join(SUFFIXES)}, not one of {', '.join(RESERVED)})")
        if len(digest) != 64 or set(digest) - HEX:
            raise ConfigError(f"files: the sha256 of {name!r} must be 64 hex digits, "
                              f"got {digest[:80]!r}")


def render(directory: Path, model: ZooModel, *, title: str,
           history: Sequence[Mapping[str, Any]] | None = None, best_step: int | None = None,
           steps: int | None = None, test_nll: float | None = None,
           data: Any = None, labels: Sequence[str] | None = None) -> list[str]:
    """Write the extra files of a freshly trained ``model`` into ``directory``: always
    ``samples.png``; with a training ``history``, ``training.png`` and ``history.json``.
    ``data`` (training points) is drawn under the samples of a continuous model, on the
    same axes, named ``labels`` (a table's columns).
    Return the names written, for ``zoo.artifact.io.write(files=...)``."""
    import torch

    from zoo import pictures

    written = []
    # On the model's device: samplers draw their noise where the generator lives, and a CPU
    # generator would send every pixel's noise of a GPU model across the bus.
    generator = torch.Generator(device=model.device).manual_seed(SAMPLE_SEED)
    levels = getattr(model.config, "levels", None)
    spec = model.context_spec
    # A vector-conditional model is pictured at the training contexts' mean.
    given = ({"context": model.context_input.shift.detach()} if spec.kind == "vector"
             else {})
    with torch.no_grad():
        if levels is not None and spec.kind == "label":
            class_rows(model, levels, generator).save(directory / SAMPLES)
        elif levels is not None:
            samples = model.sample(SAMPLE_COUNT["images"], generator=generator, **given)
            pictures.save_png(pictures.image_grid(samples, levels), directory / SAMPLES)
        elif model.context_spec.kind == "vector":
            _given_plot(model, directory / SAMPLES, generator, title=title, labels=labels)
        else:
            samples = model.sample(SAMPLE_COUNT["points"], generator=generator, **given)
            pictures.density_plot(lambda x: model.log_prob(x.to(model.device), **given), samples,
                                  directory / SAMPLES,
                                  title=f"{len(samples)} samples of {title}", data=data,
                                  labels=labels)
    written.append(SAMPLES)
    if history:
        pictures.training_curve(history, directory / TRAINING,
                                title=f"{title}: NLL during training", best_step=best_step,
                                test_nll=test_nll)
        write_history(directory / HISTORY, history, best_step=best_step, steps=steps,
                      test_nll=test_nll)
        written += [TRAINING, HISTORY]
    return written


def _given_plot(model: ZooModel, path: Path, generator: Any, *, title: str,
                labels: Sequence[str] | None) -> None:
    """A model of ``p(x | c)``: samples of its first column against the first context
    value, at contexts spread as the training contexts were (their mean and spread)."""
    import torch

    from zoo import pictures

    spec, given = model.context_spec, model.context_input
    n = SAMPLE_COUNT["points"]
    noise = torch.randn(n, spec.size, generator=generator, device=model.device)
    contexts = given.shift + torch.exp(given.log_scale) * noise
    samples = model.sample(n, generator=generator, context=contexts)
    names = [spec.names[0], (labels[0] if labels else "x0")]
    pictures.density_plot(None, torch.cat([contexts[:, :1], samples[:, :1]], 1).cpu(), path,
                          title=f"{n} samples of {title} against {spec.names[0]}",
                          labels=names)


def class_rows(model: ZooModel, levels: int, generator: Any) -> Any:
    """The samples picture of a label-conditional model of images: one labelled row per
    class (the first ``MAX_CLASS_ROWS``), ``CLASS_ROW`` samples each."""
    from zoo import pictures

    names = model.context_spec.names[:MAX_CLASS_ROWS]
    rows = [model.sample(CLASS_ROW, generator=generator, context=k) for k in range(len(names))]
    return pictures.class_rows(rows, names, levels)


def write_history(path: Path, history: Sequence[Mapping[str, Any]], *, best_step: int | None,
                  steps: int | None, test_nll: float | None) -> None:
    """``history.json``: every evaluation's step, training and validation NLL, and what they mean."""
    data = {
        "notes": HISTORY_NOTES,
        "steps": steps,
        "best_step": best_step,
        "test_nll": _number(test_nll),
        "records": [{k: _number(v) for k, v in record.items()} for record in history],
    }
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")


def read_history(path: Path) -> dict[str, Any]:
    """The contents of a ``history.json`` (for plots and tools; zoo never needs it to load)."""
    return json.loads(path.read_text(encoding="utf-8"))


def _number(value: Any) -> Any:
    """JSON has no NaN or infinity: such a value is recorded as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
