"""Drawing samples for the command line, and writing them to files people can use.

Discrete samples become a PNG grid scaled up to be readable, continuous ones a scatter
plot over the model's density (both drawn by ``zoo.pictures``); any samples can be saved as
``.pt``, ``.npy``, ``.csv`` or ``.safetensors``. Files are written to a temporary name and
renamed.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo.api.scoring import recorded_columns
from zoo.artifact.store import file_mode, writing
from zoo.plugin.model import ZooModel

FORMATS = (".png", ".pt", ".npy", ".csv", ".safetensors")
KEEP = ("top-half", "bottom-half", "left-half", "right-half")
MAX_SAMPLE_BYTES = 2 << 30  # the samples of one `zoo sample` run, held in memory to be written
BATCH_VALUES = 1 << 20  # values drawn per model.sample call (a moons batch is 524288 samples)


def is_discrete(model: ZooModel) -> bool:
    return getattr(model.config, "levels", None) is not None


def draw(model: ZooModel, n: int, *, temperature: float = 1.0, seed: int | None = None,
         complete: Path | None = None, keep: str = "top-half", context: Any = None) -> Tensor:
    """``n`` samples of ``model``; with ``complete``, completions of that image; a
    conditional model's ``context`` is one for every sample or one per sample.

    ``n`` is bounded by the memory its samples take (``MAX_SAMPLE_BYTES``), checked before
    anything is allocated; the samples are drawn in batches of ``BATCH_VALUES`` values, so
    that the model's working memory stays that of one batch. Samples that are not finite
    numbers (a temperature so high that they overflow) are refused, never written.
    """
    check_count(model, n)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    extra = {}
    if complete is not None:
        if not is_discrete(model):
            raise ValueError("--complete needs a model of discrete images")
        shape = tuple(model.config.shape)
        given = read_image(complete, shape, model.config.levels)
        extra = {"given": given, "mask": known_region(shape, keep)}
    per_batch = max(1, BATCH_VALUES // values_per_sample(model))
    # One context per sample is cut into the batches; a single one goes to every batch.
    rows = (isinstance(context, Tensor) and context.dim() >= 1 and len(context) == n
            and (context.dim() == 2 or model.context_spec.kind == "label"))
    parts = []
    for start in range(0, n, per_batch):
        if context is not None:
            extra["context"] = context[start:start + per_batch] if rows else context
        # A ZooModel refuses samples that are not finite (zoo.plugin.model), so none is written.
        parts.append(model.sample(min(per_batch, n - start), temperature=temperature,
                                  generator=generator, **extra))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def values_per_sample(model: ZooModel) -> int:
    return max(1, math.prod(int(d) for d in getattr(model.config, "shape", [1])))


def check_count(model: ZooModel, n: int) -> None:
    """Refuse ``-n`` whose samples would take more than ``MAX_SAMPLE_BYTES`` of memory."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"-n: number of samples must be a positive integer, got {n!r}")
    per_sample = values_per_sample(model) * (8 if is_discrete(model) else 4)
    most = max(1, MAX_SAMPLE_BYTES // per_sample)
    if n > most:
        raise ValueError(f"-n {n}: the samples would take {n * per_sample / 1e9:.3g} GB; at most "
                         f"{most} samples of this model ({MAX_SAMPLE_BYTES >> 30} GiB) at once, "
                         "so draw them in several runs (with different --seed)")


def known_region(shape: tuple[int, ...], keep: str) -> Tensor:
    """A bool mask of ``shape`` (``[C, H, W]``) that is true on the kept half."""
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {', '.join(KEEP)}, got {keep!r}")
    mask = torch.zeros(shape, dtype=torch.bool)
    h, w = shape[-2], shape[-1]
    if keep == "top-half":
        mask[..., : h // 2, :] = True
    elif keep == "bottom-half":
        mask[..., h - h // 2 :, :] = True
    elif keep == "left-half":
        mask[..., : w // 2] = True
    else:
        mask[..., w - w // 2 :] = True
    return mask


def read_image(path: Path, shape: tuple[int, ...], levels: int, *, resize: bool = False,
               notes: list[str] | None = None) -> Tensor:
    """An image of ``shape`` with values in ``0..levels-1`` from a PNG, ``.npy`` or
    ``.safetensors``. A PNG of another size is refused unless ``resize`` (then a line saying
    so is added to ``notes``)."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        return read_png(path, shape, levels, resize=resize, notes=notes)
    if suffix == ".npy":
        x = read_npy(path, shape)
    elif suffix == ".safetensors":
        import numpy as np

        from zoo.data.arrays import read_safetensors

        source = read_safetensors(path)  # one line naming the file for a hostile header
        if len(source) * math.prod(source.shape) != math.prod(shape):
            raise ValueError(f"{path}: expected {math.prod(shape)} values for shape "
                             f"{list(shape)}, got shape {[len(source), *source.shape]}")
        x = source.read(np.arange(len(source)))
    else:
        raise ValueError(f"cannot read an image from {path.name}: use .png, .npy or .safetensors")
    if x.numel() != math.prod(shape):
        raise ValueError(f"{path}: expected {math.prod(shape)} values for shape {list(shape)}, "
                         f"got shape {list(x.shape)}")
    if x.is_floating_point():
        raise ValueError(f"{path}: expected integer levels 0..{levels - 1}, got {x.dtype}")
    return x.reshape(shape).long()


def read_png(path: Path, shape: tuple[int, ...], levels: int, *, resize: bool = False,
             notes: list[str] | None = None) -> Tensor:
    """A PNG as levels ``0..levels-1`` of ``shape`` (grey or RGB, as the model's channels):
    the rule of ``zoo.data.image_levels``. Images big enough for Pillow to suspect a
    decompression bomb are refused before they are decoded."""
    from zoo.data.image_levels import read_png_levels

    x, note = read_png_levels(path, shape, levels, resize=resize)
    if note and notes is not None:
        notes.append(note)
    return x


def read_npy(path: Path, shape: tuple[int, ...]) -> Tensor:
    """A ``.npy`` array of ``prod(shape)`` values: the header's shape, dtype and the file's
    size are checked before anything is allocated (a header may claim 1e11 elements)."""
    import numpy as np
    from numpy.lib import format as npy

    want = math.prod(shape)
    try:
        with open(path, "rb") as f:
            version = npy.read_magic(f)
            read_header = npy.read_array_header_1_0 if version == (1, 0) else \
                npy.read_array_header_2_0
            stored, _, dtype = read_header(f)
            offset = f.tell()
    except (ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a valid .npy file ({' '.join(str(exc).split())})") from None
    count = math.prod(stored)
    if count != want:
        raise ValueError(f"{path}: expected {want} values for shape {list(shape)}, "
                         f"got shape {list(stored)}")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected integer levels, got dtype {dtype}")
    if path.stat().st_size < offset + count * dtype.itemsize:
        raise ValueError(f"{path}: truncated: its header describes {count * dtype.itemsize} "
                         "bytes of data that the file does not hold")
    return torch.as_tensor(np.load(path, allow_pickle=False))


def check_format(path: Path) -> str:
    """The output format named by ``path``'s suffix, or a ValueError listing the known ones."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unknown output format {path.suffix!r}: use one of {', '.join(FORMATS)}")
    return suffix


def check_grid_options(model: ZooModel, path: Path, *, nrow: int | None = None,
                       scale: int | None = None) -> None:
    """``nrow`` and ``scale`` shape image grids only: refuse them (before any sampling) for
    other outputs rather than silently ignoring them."""
    if nrow is None and scale is None:
        return
    flags = " and ".join(f for f, v in (("--nrow", nrow), ("--scale", scale)) if v is not None)
    if check_format(path) != ".png":
        raise ValueError(f"{flags} only apply to .png image grids, not {path.suffix} files")
    if not is_discrete(model):
        raise ValueError(f"{flags} only apply to image grids; this {model.family} model's "
                         "samples are continuous and drawn as a plot")


def check_data_option(model: ZooModel, path: Path) -> None:
    """``zoo sample --data`` draws the data under a plot of continuous samples: refuse it,
    before any sampling, for any other output."""
    if check_format(path) != ".png":
        raise ValueError(f"--data draws the data under the samples' plot: it applies to a "
                         f".png, not to {path.suffix} files")
    if is_discrete(model):
        raise ValueError(f"--data applies to a model of continuous points; this {model.family} "
                         "model's samples are drawn as an image grid")


#: Rows of ``zoo sample --data`` drawn under the samples, at most.
DATA_ROWS = 2_000


def data_rows(model: ZooModel, path: Path, data: str) -> Tensor:
    """The rows ``zoo sample --data`` draws under the samples (up to ``DATA_ROWS``, read
    with the table columns the model was trained on), refused for any output but a plot."""
    from zoo.api.scoring import some_rows

    check_data_option(model, path)
    return some_rows(model, data, DATA_ROWS)


def write_samples(model: ZooModel, samples: Tensor, path: Path, *, nrow: int | None = None,
                  scale: int | None = None, data: Tensor | None = None,
                  data_label: str = "data rows") -> Path:
    """Save ``samples`` in the format named by ``path``'s suffix (atomically).

    A PNG of discrete samples is a grid of ``nrow`` images a row, each pixel a ``scale`` x
    ``scale`` block (defaults: square-ish, at least ``zoo.pictures.MIN_WIDTH`` pixels wide);
    of continuous samples a plot, over ``data`` (rows of the training data) when given.
    """
    suffix = check_format(path)
    samples = samples.detach().cpu()
    with writing(path), atomic_path(path) as tmp:
        if suffix == ".png":
            if is_discrete(model):
                save_grid(samples, model.config.levels, tmp, nrow=nrow, scale=scale)
            else:
                plot_points(model, samples, tmp, data=data, data_label=data_label)
        elif suffix == ".pt":
            # A plain tensor, for users who asked for .pt; their loader needs no code execution
            # (weights-only mode). zoo itself never reads .pt files.
            try:
                torch.save(samples, tmp)
            except RuntimeError as exc:  # torch's writer reports a full disk this way
                raise OSError(errno.EIO, " ".join(str(exc).split())[-200:], str(path)) from None
        elif suffix == ".npy":
            import numpy as np

            np.save(tmp, samples.numpy(), allow_pickle=False)
        elif suffix == ".csv":
            import numpy as np

            flat = samples.reshape(len(samples), -1).numpy()
            np.savetxt(tmp, flat, delimiter=",", fmt="%d" if not flat.dtype.kind == "f" else "%.6g",
                       header=column_header(model, flat.shape[1]), comments="")
        else:
            from safetensors.torch import save_file

            save_file({"samples": samples.contiguous()}, str(tmp))
    return path


def column_header(model: ZooModel, width: int) -> str:
    """The CSV header of a table model's samples: the training table's column names, which
    ``zoo train --data`` recorded (``source.columns``); '' (no header) for other models."""
    import csv
    import io

    columns = recorded_columns(model)
    if columns is None or len(columns) != width:
        return ""
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(columns)
    return line.getvalue()


def save_grid(images: Tensor, levels: int, path: Path, *, nrow: int | None = None,
              scale: int | None = None) -> None:
    """Discrete samples as a readable PNG grid (see ``zoo.pictures.image_grid``)."""
    from zoo import pictures

    pictures.save_png(pictures.image_grid(images, levels, nrow=nrow, scale=scale), path)


def plot_points(model: ZooModel, samples: Tensor, path: Path, *,
                data: Tensor | None = None, data_label: str = "data rows") -> None:
    """Scatter the first two coordinates; for 2-D models, over the model's density; over
    ``data`` when given, on the same axes, named by the table's columns (as the card's
    ``samples.png``)."""
    from zoo import pictures

    pictures.density_plot(lambda x: model.log_prob(x.to(model.device)), samples, path,
                          title=f"{len(samples)} samples of {model_name(model)}", data=data,
                          labels=recorded_columns(model), data_label=data_label)


def model_name(model: ZooModel) -> str:
    """The artifact name of a loaded model, else its family."""
    artifact = getattr(model, "artifact", None)
    return getattr(artifact, "name", None) or model.family or type(model).__name__


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp's file (and safetensors' own temporary one) is 0600: give it the mode
        # open() would, the old file's or the umask's, so that others can still read it.
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            mode = file_mode()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
