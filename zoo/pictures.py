"""Pictures of models: sample grids, labelled panels, density plots and training curves.

Discrete samples become a grid of images scaled with nearest-neighbour (so that no image
pixel is blurred) to at least :data:`MIN_WIDTH` pixels, separated by a thin border; grey
levels ``0..levels-1`` map to black..white. Pictures that need words under each image (a
completion: the given image, what is known, the completions) use :func:`labelled_panels`,
which follows the same rules. Continuous samples are drawn over the model's density
(:func:`density_plot`), a training run's history becomes :func:`training_curve`, and
distributions of scores are compared by :func:`histograms`.

This module depends on torch, PIL and matplotlib only (no other part of zoo). matplotlib
is imported when a plot is drawn, never at import time, and only its Agg canvas is used
(no ``pyplot``: no GUI backend, no global figure state, and half the import time).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from PIL import Image

MIN_WIDTH = 512  # pixels: a grid narrower than this is scaled up by default
MAX_SCALE = 64  # the largest --scale (an 8x8 image becomes 512 pixels wide)
MAX_PIXELS = 1 << 26  # a picture larger than this (64 megapixels) is refused, not written
BORDER = 2  # pixels between (and around) images, after scaling
BORDER_RGB = (96, 110, 128)  # slate: visible against black and white images alike
LABEL_RGB = (20, 20, 20)
BACKGROUND_RGB = (255, 255, 255)
LABEL_SIZE = 14  # points of the label font


@dataclass(frozen=True)
class Panel:
    """One labelled image of :func:`labelled_panels`.

    ``image`` is ``uint8`` ``[H, W]`` (grey), ``[1, H, W]`` or ``[3, H, W]`` (RGB), as made by
    :func:`levels_to_uint8` (data levels) or :func:`mask_picture` (a bool mask).
    """

    label: str
    image: Tensor


# -- values to pixels -----------------------------------------------------------------------


def levels_to_uint8(x: Tensor, levels: int) -> Tensor:
    """Grey values of data levels: ``0`` is black (0), ``levels-1`` is white (255), rounded
    to the nearest grey in between. Same shape as ``x``, dtype ``uint8``."""
    top = max(1, levels - 1)
    x = x.detach().cpu().long().clamp(0, top)
    return ((x * 255 + top // 2) // top).to(torch.uint8)


def mask_picture(mask: Tensor) -> Tensor:
    """A bool mask ``[..., H, W]`` as an RGB picture ``[3, H, W]``: known (true) positions
    white, unknown ones the border colour, so it reads as "this part was given"."""
    known = mask.detach().cpu().bool()
    while known.dim() > 2:
        known = known.any(0)
    colour = torch.tensor(BORDER_RGB, dtype=torch.uint8).view(3, 1, 1)
    white = torch.full((3, 1, 1), 255, dtype=torch.uint8)
    return torch.where(known.unsqueeze(0), white, colour)


def as_images(samples: Tensor, levels: int) -> Tensor:
    """Discrete samples ``[B, *shape]`` as RGB pictures ``uint8 [B, 3, H, W]``.

    ``[B, D]`` (sequences) become one-row images, ``[B, H, W]`` and ``[B, 1, H, W]`` grey
    images, ``[B, 3, H, W]`` colour images; other channel counts are shown side by side,
    one grey image per channel.
    """
    x = samples.detach().cpu()
    if x.dim() < 2:
        raise ValueError(f"expected samples [B, *shape], got shape {list(x.shape)}")
    b = x.shape[0]
    if x.dim() == 2:
        x = x.reshape(b, 1, 1, -1)
    elif x.dim() == 3:
        x = x.unsqueeze(1)
    elif x.dim() > 4:
        x = x.reshape(b, 1, 1, -1)
    grey = levels_to_uint8(x, levels)
    if grey.shape[1] == 3:
        return grey
    if grey.shape[1] != 1:  # channels side by side: [B, C, H, W] -> [B, 1, H, C*W]
        grey = grey.permute(0, 2, 1, 3).reshape(b, 1, grey.shape[2], -1)
    return grey.expand(-1, 3, -1, -1).contiguous()


# -- grids ----------------------------------------------------------------------------------


def grid_columns(count: int, nrow: int | None = None) -> int:
    """The columns of a grid of ``count`` images: ``nrow`` if given, else a square-ish grid."""
    if nrow is not None:
        if nrow < 1:
            raise ValueError(f"nrow must be positive, got {nrow}")
        return min(nrow, max(1, count))
    return max(1, math.ceil(math.sqrt(count)))


def default_scale(columns: int, width: int, min_width: int = MIN_WIDTH) -> int:
    """The smallest whole factor that makes ``columns`` images of ``width`` pixels at least
    ``min_width`` pixels wide together (1 when they already are)."""
    return max(1, min(MAX_SCALE, math.ceil(min_width / max(1, columns * width))))


def image_grid(samples: Tensor, levels: int, *, nrow: int | None = None,
               scale: int | None = None, min_width: int = MIN_WIDTH) -> Image.Image:
    """The grid picture of discrete samples ``[B, *shape]``: ``nrow`` images a row (default:
    a square-ish grid), each pixel drawn as a ``scale`` x ``scale`` block (default: the
    smallest factor that makes the grid ``min_width`` pixels wide), a thin border between."""
    images = as_images(samples, levels)
    columns = grid_columns(len(images), nrow)
    h, w = images.shape[-2:]
    scale = _check_scale(scale) if scale is not None else default_scale(columns, w, min_width)
    rows = max(1, math.ceil(len(images) / columns))
    _check_size(columns * (w * scale + BORDER) + BORDER, rows * (h * scale + BORDER) + BORDER)
    canvas = _canvas(columns * (w * scale + BORDER) + BORDER, rows * (h * scale + BORDER) + BORDER,
                     BORDER_RGB)
    big = upscale(images, scale)
    for i, image in enumerate(big):
        top = BORDER + (i // columns) * (h * scale + BORDER)
        left = BORDER + (i % columns) * (w * scale + BORDER)
        canvas[:, top:top + h * scale, left:left + w * scale] = image
    return to_pil(canvas)


def labelled_panels(panels: Sequence[Panel], *, ncol: int | None = None,
                    scale: int | None = None, min_width: int = MIN_WIDTH) -> Image.Image:
    """A grid of images, each with its label underneath: ``ncol`` panels a row (default: all
    in one row), pixels scaled with nearest-neighbour exactly as in :func:`image_grid`.

    The completion picture is one row: ``[Panel("given", levels_to_uint8(x[0], L)),
    Panel("known", mask_picture(mask)), *(Panel(f"completion {i}", levels_to_uint8(c[0], L))
    for i, c in enumerate(completions, 1))]``. Panels may differ in size; each is centred
    in a cell as large as the largest.
    """
    if not panels:
        raise ValueError("labelled_panels needs at least one panel")
    images = [_rgb(p.image) for p in panels]
    columns = len(panels) if ncol is None else grid_columns(len(panels), ncol)
    h = max(img.shape[-2] for img in images)
    w = max(img.shape[-1] for img in images)
    scale = _check_scale(scale) if scale is not None else default_scale(columns, w, min_width)
    font = _font()
    label_h = _text_height(font) + 2 * BORDER + 2
    cell_w = max(w * scale, *(_text_width(font, p.label) for p in panels)) + 4 * BORDER
    cell_h = h * scale + label_h + 2 * BORDER
    rows = math.ceil(len(panels) / columns)
    _check_size(columns * cell_w, rows * cell_h)
    canvas = _canvas(columns * cell_w, rows * cell_h, BACKGROUND_RGB)
    frame = torch.tensor(BORDER_RGB, dtype=torch.uint8).view(3, 1, 1)
    spots = []
    for i, image in enumerate(images):
        ih, iw = image.shape[-2] * scale, image.shape[-1] * scale
        top = (i // columns) * cell_h + BORDER + (h * scale - ih) // 2
        left = (i % columns) * cell_w + (cell_w - iw) // 2
        canvas[:, top - BORDER:top + ih + BORDER, left - BORDER:left + iw + BORDER] = frame
        canvas[:, top:top + ih, left:left + iw] = upscale(image.unsqueeze(0), scale)[0]
        spots.append(((i % columns) * cell_w + cell_w // 2, (i // columns) * cell_h
                      + h * scale + 2 * BORDER + 2))
    picture = to_pil(canvas)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(picture)
    for panel, (x, y) in zip(panels, spots):
        draw.text((x, y), panel.label, fill=LABEL_RGB, font=font, anchor="ma")
    return picture


def class_rows(rows: Sequence[Tensor], names: Sequence[str], levels: int, *,
               scale: int | None = None) -> Image.Image:
    """One labelled row of samples per class: ``rows[k]`` (discrete samples ``[n, *shape]``)
    drawn given class ``names[k]``, a thin border between images, the class name under its
    row. What a label-conditional model's card and ``zoo sample --label all`` show."""
    border = torch.tensor(BORDER_RGB, dtype=torch.uint8).view(3, 1, 1)
    panels = []
    for samples, name in zip(rows, names):
        images = as_images(samples.cpu(), levels)  # [n, 3, H, W]
        gap = border.expand(3, images.shape[2], 1)
        strip = torch.cat([part for image in images for part in (image, gap)][:-1], dim=2)
        panels.append(Panel(f"class {name}", strip))
    return labelled_panels(panels, ncol=1, scale=scale if scale is not None else 4)


def upscale(images: Tensor, scale: int) -> Tensor:
    """Nearest-neighbour scaling of ``[B, C, H, W]`` by a whole factor: every pixel becomes a
    ``scale`` x ``scale`` block of the same value (nothing is interpolated)."""
    if scale == 1:
        return images
    return images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def to_pil(picture: Tensor) -> Image.Image:
    """An RGB ``uint8 [3, H, W]`` tensor as a PIL image."""
    from PIL import Image

    return Image.fromarray(picture.permute(1, 2, 0).contiguous().numpy(), mode="RGB")


def save_png(picture: Image.Image, path: str | Path) -> None:
    """Write ``picture`` as PNG to ``path`` (no metadata: the same picture, the same bytes)."""
    picture.save(str(path), format="PNG", optimize=False)


def _canvas(width: int, height: int, rgb: tuple[int, int, int]) -> Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).view(3, 1, 1).expand(3, height, width).clone()


def _rgb(image: Tensor) -> Tensor:
    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        raise ValueError(f"panel images must be uint8 (use levels_to_uint8), got {image.dtype}")
    if image.dim() == 2:
        image = image.unsqueeze(0)
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"panel images must be [H, W], [1, H, W] or [3, H, W], got "
                         f"{list(image.shape)}")
    return image.expand(3, -1, -1)


def _check_scale(scale: int) -> int:
    if not isinstance(scale, int) or isinstance(scale, bool) or not 1 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be a whole number from 1 to {MAX_SCALE}, got {scale!r}")
    return scale


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ValueError(f"the picture would be {width}x{height} pixels, more than "
                         f"{MAX_PIXELS // 1_000_000} megapixels: draw fewer samples or lower --scale")


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=LABEL_SIZE)  # a scalable font (Pillow >= 10.1)
    except (TypeError, OSError, ImportError):  # older Pillow, or no FreeType: the bitmap font
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _text_height(font: Any) -> int:
    _, top, _, bottom = font.getbbox("Ag")
    return int(bottom - top)


# -- plots ----------------------------------------------------------------------------------


def _figure(width: float, height: float, *, margins: tuple[float, float, float, float]) -> Any:
    """A matplotlib figure on the Agg canvas (imported here: plots are rare, imports slow),
    with fixed ``margins`` (left, bottom, right, top, in inches): a layout engine would
    measure every label first and take longer than the drawing itself."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    left, bottom, right, top = margins
    fig = Figure(figsize=(width, height), dpi=100)
    fig.subplots_adjust(left=left / width, bottom=bottom / height, right=1 - right / width,
                        top=1 - top / height)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Any, path: str | Path) -> None:
    # No "Software" entry: the bytes then depend on the drawing only.
    fig.savefig(str(path), format="png", metadata={"Software": None})


def density_plot(log_prob: Callable[[Tensor], Tensor] | None, samples: Tensor, path: str | Path,
                 *, title: str, grid: int = 100, data: Tensor | None = None,
                 labels: Sequence[str] | None = None,
                 data_label: str = "training rows") -> None:
    """Scatter continuous ``samples`` (their first two coordinates); for 2-D data with
    ``log_prob``, over the model's density evaluated on a ``grid`` x ``grid`` lattice.
    ``data`` (the training rows) is drawn under the samples on the same axes, which cover
    both; ``labels`` name the coordinates (a table's columns)."""
    points = _first_two(samples)
    rows = _first_two(data) if data is not None and len(data) else None
    two_d = samples[0].numel() <= 2 and log_prob is not None
    fig = _figure(6.4 if two_d else 5.6, 5.6, margins=(0.75, 0.6, 1.3 if two_d else 0.25, 0.4))
    ax = fig.subplots()
    both = points if rows is None else torch.cat([points, rows])
    finite = both[torch.isfinite(both).all(1)]
    if len(finite):
        lo = torch.quantile(finite[:, :2], 0.005, dim=0)
        hi = torch.quantile(finite[:, :2], 0.995, dim=0)
        pad = 0.15 * (hi - lo).clamp(min=1e-3)
        lo, hi = lo - pad, hi + pad
    else:
        lo, hi = torch.tensor([-1.0, -1.0]), torch.tensor([1.0, 1.0])
    if two_d:
        xs = torch.linspace(lo[0].item(), hi[0].item(), grid)
        ys = torch.linspace(lo[1].item(), hi[1].item(), grid)
        gx, gy = torch.meshgrid(xs, ys, indexing="xy")
        with torch.no_grad():
            density = log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).float().cpu().exp()
        shown = ax.imshow(density.reshape(grid, grid).numpy(), origin="lower", cmap="viridis",
                          extent=(lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item()),
                          interpolation="bilinear", aspect="auto")
        # The colour bar in the right margin, as tall as the axes.
        bar = fig.add_axes((1 - 1.05 / 6.4, 0.6 / 5.6, 0.18 / 6.4, 1 - 1.0 / 5.6))
        fig.colorbar(shown, cax=bar, label="model density p(x)")
    if rows is not None:
        ax.scatter(rows[:, 0].numpy(), rows[:, 1].numpy(), s=4, c="#e8743b", alpha=0.8,
                   linewidths=0, label=f"{len(rows)} {data_label}", rasterized=True)
    ax.scatter(points[:, 0].numpy(), points[:, 1].numpy(), s=3, c="white" if two_d else "C0",
               alpha=0.7 if two_d else 0.5, linewidths=0,
               label=f"{len(points)} samples", rasterized=True)
    ax.set_xlim(lo[0].item(), hi[0].item())
    ax.set_ylim(lo[1].item(), hi[1].item())
    names = list(labels or [])[:2] if labels is not None and len(labels) >= 2 else ["x₁", "x₂"]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1] if samples[0].numel() > 1 else "")
    if not two_d and samples[0].numel() > 2:
        title += f" (first 2 of {samples[0].numel()} coordinates)"
    ax.set_title(title)
    legend = ax.legend(loc="upper right", markerscale=4, framealpha=0.85)
    if two_d:
        legend.legend_handles[-1].set_color("black")  # white dots on a white legend box
    _save_figure(fig, path)


def _first_two(samples: Tensor) -> Tensor:
    """Points as float ``[N, 2]`` on the CPU: the first two coordinates (a 1-D point at 0)."""
    points = samples.detach().reshape(len(samples), -1).float().cpu()
    if points.shape[1] == 1:
        points = torch.cat([points, torch.zeros_like(points)], 1)
    return points[:, :2]


def training_curve(history: Sequence[Mapping[str, float]], path: str | Path, *, title: str,
                   best_step: int | None = None, test_nll: float | None = None) -> None:
    """Training and validation NLL against the step, the best step marked (and the test NLL
    of the published weights as a dotted line, when given)."""
    records = [r for r in history if "step" in r]
    if not records:
        raise ValueError("the training history is empty: nothing to draw")
    fig = _figure(7.2, 4.5, margins=(0.8, 0.6, 0.2, 0.4))
    ax = fig.subplots()
    steps = [r["step"] for r in records]
    train = [(r["step"], r["train_nll"]) for r in records if _finite(r.get("train_nll"))]
    val = [(r["step"], r["val_nll"]) for r in records if _finite(r.get("val_nll"))]
    shown: list[list[float]] = []
    if train:
        ax.plot(*zip(*train), color="C0", lw=1.6, label="training (running mean of batches)")
        shown.append([v for _, v in train])
    if val:
        ax.plot(*zip(*val), color="C1", lw=1.6, marker="o", ms=3, label="validation (held out)")
        shown.append([v for _, v in val])
    if test_nll is not None and math.isfinite(test_nll):
        ax.axhline(test_nll, color="C2", ls=":", lw=1.4, label=f"test split ({test_nll:.4g})")
        shown.append([test_nll])
    best = dict(val).get(best_step) if best_step is not None else None
    if best is not None:
        ax.axvline(best_step, color="0.4", ls="--", lw=1)
        ax.plot([best_step], [best], marker="*", ms=14, color="C3", ls="none",
                label=f"best step {best_step} (validation {best:.4g})")
    ax.set_ylim(*_robust_limits(shown))
    ax.set_xlim(0, max(steps) * 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (nats per example)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", framealpha=0.9)
    _save_figure(fig, path)


@dataclass(frozen=True)
class Histogram:
    """One series of :func:`histograms`: the fraction of its examples in each bin."""

    label: str
    fractions: Sequence[float]


def histograms(series: Sequence[Histogram], edges: Sequence[float], path: str | Path, *,
               title: str, xlabel: str, marks: Sequence[tuple[str, float]] = ()) -> None:
    """Several histograms over the same bins on one axis, and vertical ``marks``
    ``(label, x)``; the legend sits in the right margin, so it covers nothing."""
    _save_figure(histogram_figure(series, edges, title=title, xlabel=xlabel, marks=marks), path)


def histogram_figure(series: Sequence[Histogram], edges: Sequence[float], *, title: str,
                     xlabel: str, marks: Sequence[tuple[str, float]] = ()) -> Any:
    """The figure :func:`histograms` saves (for tests: where its legend lies)."""
    fig = _figure(9.0, 4.2, margins=(0.8, 0.6, 2.9, 0.4))
    ax = fig.subplots()
    colours = ("#4c72b0", "#dd8452", "#55a868", "#8172b3")
    for i, one in enumerate(series):
        colour = colours[i % len(colours)]
        ax.stairs(list(one.fractions), list(edges), fill=True, color=colour, alpha=0.35)
        ax.stairs(list(one.fractions), list(edges), color=colour, lw=1.4, label=one.label)
    for i, (label, x) in enumerate(marks):
        ax.axvline(x, color="#c44e52", ls=("--", ":", "-.")[i % 3], lw=1.3, label=label)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of examples per bin")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, frameon=False,
              fontsize=9)
    return fig


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _robust_limits(series: list[list[float]]) -> tuple[float, float]:
    """Y limits that show where training ends up: the first steps' NLL can be ten times the
    final one and would flatten the rest of the curve, so the top is the largest value of
    each series' last three quarters (its first quarter may be cut off above that)."""
    if not series:
        return 0.0, 1.0
    low = min(min(s) for s in series)
    high = max(max(s[len(s) // 4:]) for s in series)
    if high - low < 1e-9:
        high = low + max(1e-3, abs(low) * 0.01)
    pad = 0.08 * (high - low)
    return low - pad, high + 3 * pad  # room at the top for the legend
