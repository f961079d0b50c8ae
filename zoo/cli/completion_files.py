"""Completing an image file for ``zoo sample --complete``: the known region (a half, or a mask
image), the completions, and the picture ``given | mask | completions``.

The picture is ``zoo.pictures.labelled_panels``: nearest-neighbour scaling to at least 512
pixels wide, thin borders, levels ``0..C-1`` as black..white; in the mask, white is known.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from zoo.cli.sample_files import (
    BATCH_VALUES,
    KEEP,
    atomic_path,
    check_count,
    is_discrete,
    known_region,
    read_image,
    values_per_sample,
    write_samples,
)
from zoo.infer.completion import Completion, complete
from zoo.pictures import Panel, labelled_panels, levels_to_uint8, mask_picture, save_png
from zoo.plugin.model import ZooModel

#: Completions per row of the picture by default; more wrap onto further rows.
PER_ROW = 8


def read_mask(path: Path, shape: tuple[int, ...], *, resize: bool = False,
              notes: list[str] | None = None) -> Tensor:
    """A bool mask of ``shape`` from a PNG (light pixels, >= 128 grey, are known; a PNG of
    another size is refused unless ``resize``, which scales it by nearest neighbour and adds
    a line to ``notes``) or a ``.npy`` of 0/1 or booleans."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        from zoo.data.image_levels import read_png_mask

        mask, note = read_png_mask(path, shape, resize=resize)
        if note and notes is not None:
            notes.append(note)
        return mask
    if suffix == ".npy":
        import numpy as np

        x = torch.as_tensor(np.load(path, allow_pickle=False))
        if x.numel() != math.prod(shape) or x.is_floating_point() or (
                x.numel() and (int(x.min()) < 0 or int(x.max()) > 1)):
            raise ValueError(f"{path}: a mask must hold {math.prod(shape)} values 0/1 "
                             f"(shape {list(shape)}), got {x.dtype} of shape {list(x.shape)}")
        return x.reshape(shape).bool()
    raise ValueError(f"cannot read a mask from {path.name}: use .png (white = known) or .npy")


def known_mask(shape: tuple[int, ...], keep: str | None, keep_mask: Path | None, *,
               resize: bool = False, notes: list[str] | None = None) -> Tensor:
    """The known region: a named half (``KEEP``) or a mask file; top half by default."""
    if keep is not None and keep_mask is not None:
        raise ValueError("use either --keep or --keep-mask, not both")
    if keep_mask is not None:
        return read_mask(keep_mask, shape, resize=resize, notes=notes)
    return known_region(shape, keep or KEEP[0])


def complete_image(model: ZooModel, n: int, image: Path, *, keep: str | None = None,
                   keep_mask: Path | None = None, temperature: float = 1.0,
                   seed: int | None = None, sweeps: int | None = None,
                   resize: bool = False,
                   notes: list[str] | None = None) -> tuple[Tensor, Tensor, Completion]:
    """``n`` completions of the image file ``image`` where ``keep`` (a half) or the mask file
    ``keep_mask`` says it is known; returns the given image, the mask, and the completions
    with their record (batches merged into one). Pictures of another size than the model's
    are refused unless ``resize``; what was resized is added to ``notes``."""
    if not is_discrete(model):
        family = getattr(model, "family", "") or type(model).__name__
        raise ValueError(f"--complete needs a model of discrete images; {family} models "
                         "continuous data, and completing given coordinates of it is not "
                         "supported")
    check_count(model, n)
    shape = tuple(model.config.shape)
    mask = known_mask(shape, keep, keep_mask, resize=resize, notes=notes)
    given = read_image(image, shape, model.config.levels, resize=resize, notes=notes)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    per_batch = max(1, BATCH_VALUES // values_per_sample(model))
    parts: list[Completion] = []
    for start in range(0, n, per_batch):
        parts.append(complete(model, given, mask, min(per_batch, n - start),
                              temperature=temperature, generator=generator, sweeps=sweeps))
    record = parts[0].record
    for part in parts[1:]:
        rows = {k: record.rows.get(k, 0) + part.record.rows.get(k, 0)
                for k in {**record.rows, **part.record.rows}}
        record = replace(record, rows=rows, seconds=record.seconds + part.record.seconds,
                         evaluations=record.evaluations + part.record.evaluations)
    samples = torch.cat([p.samples for p in parts])
    return given, mask, Completion(samples, record)


def write_completion(model: ZooModel, given: Tensor, mask: Tensor, samples: Tensor,
                     path: Path, *, nrow: int | None = None, scale: int | None = None) -> Path:
    """A ``.png`` is the picture given | mask | completions (``nrow`` panels a row, default
    ``2 + PER_ROW``); other formats hold the samples."""
    if path.suffix.lower() != ".png":
        return write_samples(model, samples, path)
    with atomic_path(path) as tmp:
        save_png(picture(given, mask, samples, model.config.levels, ncol=nrow, scale=scale), tmp)
    return path


def picture(given: Tensor, mask: Tensor, samples: Tensor, levels: int, *,
            ncol: int | None = None, scale: int | None = None):
    """A PIL image: the given image, the mask, then the completions, side by side."""
    panels = [Panel("given", levels_to_uint8(given, levels)), Panel("known", mask_picture(mask))]
    panels += [Panel(f"{i}", levels_to_uint8(x, levels)) for i, x in enumerate(samples, 1)]
    return labelled_panels(panels, ncol=ncol or min(len(panels), 2 + PER_ROW), scale=scale)
