"""Drawing samples for the command line, and writing them to files people can use.

Images become a PNG grid (``torchvision.utils.save_image``); 2-D continuous samples become
a scatter plot over the model's density; any samples can be saved as ``.pt``, ``.npy``,
``.csv`` or ``.safetensors``. Files are written to a temporary name and renamed.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from zoo.model import ZooModel

FORMATS = (".png", ".pt", ".npy", ".csv", ".safetensors")
KEEP = ("top-half", "bottom-half", "left-half", "right-half")


def is_discrete(model: ZooModel) -> bool:
    return getattr(model.config, "levels", None) is not None


def draw(model: ZooModel, n: int, *, temperature: float = 1.0, seed: int | None = None,
         complete: Path | None = None, keep: str = "top-half") -> Tensor:
    """``n`` samples of ``model``; with ``complete``, completions of that image."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    if complete is None:
        return model.sample(n, temperature=temperature, generator=generator)
    if not is_discrete(model):
        raise ValueError("--complete needs a model of discrete images")
    shape = tuple(model.config.shape)
    given = read_image(complete, shape, model.config.levels)
    return model.sample(n, temperature=temperature, generator=generator,
                        given=given, mask=known_region(shape, keep))


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


def read_image(path: Path, shape: tuple[int, ...], levels: int) -> Tensor:
    """An image of ``shape`` with values in ``0..levels-1`` from a PNG, ``.npy`` or ``.safetensors``."""
    suffix = path.suffix.lower()
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as img:
            gray = img.convert("L")
            if gray.size != (shape[-1], shape[-2]):
                gray = gray.resize((shape[-1], shape[-2]))
            values = torch.frombuffer(bytearray(gray.tobytes()), dtype=torch.uint8)
        x = values.reshape(shape[-2], shape[-1]).double()
        return torch.round(x * (levels - 1) / 255.0).long().reshape(shape)
    if suffix == ".npy":
        import numpy as np

        x = torch.as_tensor(np.load(path, allow_pickle=False))
    elif suffix == ".safetensors":
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if len(tensors) != 1:
            raise ValueError(f"{path}: expected one tensor, found {len(tensors)}")
        x = next(iter(tensors.values()))
    else:
        raise ValueError(f"cannot read an image from {path.name}: use .png, .npy or .safetensors")
    if x.numel() != math.prod(shape):
        raise ValueError(f"{path}: expected {math.prod(shape)} values for shape {list(shape)}, "
                         f"got shape {list(x.shape)}")
    if x.is_floating_point():
        raise ValueError(f"{path}: expected integer levels 0..{levels - 1}, got {x.dtype}")
    return x.reshape(shape).long()


def check_format(path: Path) -> str:
    """The output format named by ``path``'s suffix, or a ValueError listing the known ones."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"unknown output format {path.suffix!r}: use one of {', '.join(FORMATS)}")
    return suffix


def write_samples(model: ZooModel, samples: Tensor, path: Path) -> Path:
    """Save ``samples`` in the format named by ``path``'s suffix (atomically)."""
    suffix = check_format(path)
    samples = samples.detach().cpu()
    with atomic_path(path) as tmp:
        if suffix == ".png":
            if is_discrete(model) and samples.dim() == 4:
                save_grid(samples, model.config.levels, tmp)
            else:
                plot_points(model, samples, tmp)
        elif suffix == ".pt":
            # A plain tensor, for users who asked for .pt; their loader needs no code execution
            # (weights-only mode). zoo itself never reads .pt files.
            torch.save(samples, tmp)
        elif suffix == ".npy":
            import numpy as np

            np.save(tmp, samples.numpy(), allow_pickle=False)
        elif suffix == ".csv":
            import numpy as np

            flat = samples.reshape(len(samples), -1).numpy()
            np.savetxt(tmp, flat, delimiter=",", fmt="%d" if not flat.dtype.kind == "f" else "%.6g")
        else:
            from safetensors.torch import save_file

            save_file({"samples": samples.contiguous()}, str(tmp))
    return path


def save_grid(images: Tensor, levels: int, path: Path) -> None:
    from torchvision.utils import save_image

    nrow = max(1, math.ceil(math.sqrt(len(images))))
    save_image(images.float() / max(1, levels - 1), str(path), nrow=nrow, padding=1, format="png")


def plot_points(model: ZooModel, samples: Tensor, path: Path) -> None:
    """Scatter the first two coordinates; for 2-D models, over the model's density."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = samples.reshape(len(samples), -1).float()
    fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
    if points.shape[1] == 2:
        lo = torch.quantile(points, 0.005, dim=0) - 0.5
        hi = torch.quantile(points, 0.995, dim=0) + 0.5
        xs = torch.linspace(lo[0].item(), hi[0].item(), 200)
        ys = torch.linspace(lo[1].item(), hi[1].item(), 200)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        with torch.no_grad():
            density = model.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp()
        ax.contourf(gx.numpy(), gy.numpy(), density.reshape(gx.shape).numpy(), levels=30,
                    cmap="viridis")
        ax.set_xlim(lo[0].item(), hi[0].item())
        ax.set_ylim(lo[1].item(), hi[1].item())
    ax.scatter(points[:, 0].numpy(), points[:, 1].numpy() if points.shape[1] > 1 else
               torch.zeros(len(points)).numpy(), s=2, c="white", alpha=0.6, linewidths=0)
    ax.set_title(f"{len(points)} samples of {model.family}")
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
