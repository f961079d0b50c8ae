"""zoo.pictures: sample grids, labelled panels, density plots and training curves, and the
PNGs ``zoo sample`` writes for every kind of sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo import pictures
from zoo.pictures import BORDER, BORDER_RGB, Panel


def png(path: Path) -> Image.Image:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.convert("RGB")


def as_tensor(picture: Image.Image) -> torch.Tensor:
    """The pixels of an RGB picture, ``int64 [H, W, 3]``."""
    return torch.from_numpy(np.array(picture.convert("RGB"))).long()


def levels_image(levels: int, count: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randint(0, levels, (count, *shape), generator=torch.Generator().manual_seed(seed))


# -- grids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("count, shape, nrow, width, height", [
    (64, (1, 8, 8), None, 8 * (8 * 8 + BORDER) + BORDER, 8 * (8 * 8 + BORDER) + BORDER),  # digits
    (64, (1, 28, 28), None, 8 * (28 * 3 + BORDER) + BORDER, 8 * (28 * 3 + BORDER) + BORDER),
    (10, (1, 8, 8), 4, 4 * (8 * 16 + BORDER) + BORDER, 3 * (8 * 16 + BORDER) + BORDER),
    (5, (12,), 3, 3 * (12 * 15 + BORDER) + BORDER, 2 * (1 * 15 + BORDER) + BORDER),  # sequences
    (4, (3, 5, 5), None, 2 * (5 * 52 + BORDER) + BORDER, 2 * (5 * 52 + BORDER) + BORDER),  # RGB
    (2, (2, 3, 3), None, 2 * (6 * 43 + BORDER) + BORDER, 3 * 43 + 2 * BORDER),  # 2 channels
    (1, (1, 2, 600), None, 600 + 2 * BORDER, 2 + 2 * BORDER),  # wide enough: not scaled
])
def test_default_grids_are_at_least_512_pixels_wide(count, shape, nrow, width, height):
    grid = pictures.image_grid(levels_image(4, count, shape), 4, nrow=nrow)
    assert grid.size == (width, height)
    assert grid.size[0] >= pictures.MIN_WIDTH


def test_scale_and_nrow_override_the_defaults():
    grid = pictures.image_grid(levels_image(17, 10, (1, 8, 8)), 17, nrow=5, scale=3)
    assert grid.size == (5 * (8 * 3 + BORDER) + BORDER, 2 * (8 * 3 + BORDER) + BORDER)


def test_nearest_neighbour_blocks_border_and_grey_levels():
    levels, scale = 5, 4
    x = torch.arange(2 * 9).reshape(2, 1, 3, 3) % levels
    grid = pictures.image_grid(x, levels, nrow=2, scale=scale)
    pixels = as_tensor(grid)
    for i in range(2):
        left = BORDER + i * (3 * scale + BORDER)
        for r in range(3):
            for c in range(3):
                top, lft = BORDER + r * scale, left + c * scale
                block = pixels[top:top + scale, lft:lft + scale]
                grey = round(int(x[i, 0, r, c]) * 255 / (levels - 1))
                assert (block == grey).all(), (i, r, c)  # one flat block: nothing interpolated
        # the border column left of each image
        assert (pixels[:, left - 1] == torch.tensor(BORDER_RGB)).all()
    assert (pixels[0] == torch.tensor(BORDER_RGB)).all()


def test_grey_levels_map_to_black_and_white():
    assert pictures.levels_to_uint8(torch.tensor([0, 1, 2, 255]), 256).tolist() == [0, 1, 2, 255]
    assert pictures.levels_to_uint8(torch.tensor([0, 8, 16]), 17).tolist() == [0, 128, 255]
    assert pictures.levels_to_uint8(torch.tensor([0, 1]), 2).tolist() == [0, 255]


@pytest.mark.parametrize("scale", [0, 65, 2.5, True])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ValueError, match="scale must be"):
        pictures.image_grid(levels_image(2, 4, (1, 4, 4)), 2, scale=scale)


def test_a_picture_too_large_is_refused_before_it_is_drawn():
    with pytest.raises(ValueError, match="megapixels"):
        pictures.image_grid(torch.zeros(4096, 1, 28, 28, dtype=torch.long), 2, scale=64)


def test_labelled_panels_one_row_with_labels_under_the_images():
    x = levels_image(17, 4, (1, 8, 8))
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[..., :4, :] = True
    panels = [Panel("given", pictures.levels_to_uint8(x[0], 17)),
              Panel("known", pictures.mask_picture(mask)),
              *(Panel(f"completion {i}", pictures.levels_to_uint8(c, 17))
                for i, c in enumerate(x[1:], 1))]
    picture = pictures.labelled_panels(panels)
    width, height = picture.size
    assert width >= pictures.MIN_WIDTH
    # one row: taller than the scaled images (labels below), far less tall than two rows
    scale = pictures.default_scale(len(panels), 8)
    assert 8 * scale + 10 < height < 2 * 8 * scale
    two_rows = pictures.labelled_panels(panels, ncol=3, scale=scale)
    assert two_rows.size[1] == 2 * height
    # the label rows hold dark text pixels; a plain white row would not
    pixels = as_tensor(picture)
    assert (pixels[8 * scale + 6:] < 100).any()
    with pytest.raises(ValueError, match="uint8"):
        pictures.labelled_panels([Panel("raw levels", x[0])])


# -- plots ----------------------------------------------------------------------------------


def test_density_plot_and_scatter_sizes(tmp_path: Path):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    with torch.no_grad():
        points = flow.sample(300, generator=torch.Generator().manual_seed(0))
    pictures.density_plot(flow.log_prob, points, tmp_path / "d.png", title="density")
    assert png(tmp_path / "d.png").size == (640, 560)
    pictures.density_plot(None, torch.randn(300, 5), tmp_path / "s.png", title="scatter")
    assert png(tmp_path / "s.png").size == (560, 560)


def test_training_curve_size(tmp_path: Path):
    history = [{"step": s, "train_nll": 5 / s ** 0.5, "val_nll": 5 / s ** 0.5 + 0.1}
               for s in range(10, 210, 10)]
    pictures.training_curve(history, tmp_path / "t.png", title="curve", best_step=200,
                            test_nll=0.5)
    assert png(tmp_path / "t.png").size == (720, 450)
    with pytest.raises(ValueError, match="empty"):
        pictures.training_curve([], tmp_path / "none.png", title="none")


def test_robust_limits_ignore_the_first_steps():
    low, high = pictures._robust_limits([[100.0, 10.0, 2.0, 1.5, 1.2, 1.1, 1.0, 1.0]])
    assert low < 1.0 and 2.0 < high < 10.0


# -- zoo sample -----------------------------------------------------------------------------


@pytest.fixture
def artifacts(tmp_path: Path) -> dict[str, Path]:
    """Untrained tiny models of each sample kind, saved as artifacts."""
    torch.manual_seed(0)
    built = {
        "image": zoo.get_family("made").build({"shape": [1, 4, 4], "levels": 3}),
        "sequence": zoo.get_family("made").build({"shape": [6], "levels": 3}),
        "2d": zoo.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8}),
        "3d": zoo.get_family("realnvp").build({"shape": [3], "couplings": 2, "hidden": 8}),
    }
    return {kind: zoo.save(model, tmp_path / kind) for kind, model in built.items()}


@pytest.mark.parametrize("kind, args, size", [
    ("image", [], (8 * (4 * 16 + BORDER) + BORDER, 8 * (4 * 16 + BORDER) + BORDER)),
    ("image", ["--nrow", "16", "--scale", "2"],
     (16 * (4 * 2 + BORDER) + BORDER, 4 * (4 * 2 + BORDER) + BORDER)),
    ("sequence", [], (8 * (6 * 11 + BORDER) + BORDER, 8 * (1 * 11 + BORDER) + BORDER)),
    ("2d", [], (640, 560)),
    ("3d", [], (560, 560)),
])
def test_zoo_sample_png_sizes(artifacts, cli_runner, tmp_path: Path, kind, args, size):
    from zoo.cli.commands import cli

    out = tmp_path / f"{kind}.png"
    result = cli_runner.invoke(cli, ["sample", str(artifacts[kind]), "-n", "64", "-o", str(out),
                                     "--seed", "0", *args])
    assert result.exit_code == 0, result.output
    assert png(out).size == size


@pytest.mark.parametrize("kind, args, message", [
    ("image", ["--scale", "2", "-o", "x.npy"], "--scale only apply to .png image grids"),
    ("2d", ["--nrow", "4"], "--nrow only apply to image grids"),
    ("image", ["--scale", "65"], "65 is not in the range 1<=x<=64"),
])
def test_grid_options_out_of_place_are_refused(artifacts, cli_runner, tmp_path: Path, kind,
                                               args, message, monkeypatch):
    from zoo.cli.commands import cli

    monkeypatch.chdir(tmp_path)
    result = cli_runner.invoke(cli, ["sample", str(artifacts[kind]), "-n", "4", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.glob("*.npy")) == [] and list(tmp_path.glob("*.png")) == []


def test_the_cli_scale_limit_is_the_pictures_limit():
    from zoo.cli.commands import cli

    option = next(p for p in cli.commands["sample"].params if p.name == "scale")
    assert option.type.max == pictures.MAX_SCALE


def test_score_histograms_share_one_axis_and_the_legend_covers_nothing():
    edges = [float(e) for e in range(11)]
    fig = pictures.histogram_figure(
        [pictures.Histogram("scored\n(5 examples)", [0.2] * 5 + [0.0] * 5),
         pictures.Histogram("training examples", [0.0] * 5 + [0.2] * 5)],
        edges, title="5 examples scored", xlabel="log p(x) (nats)",
        marks=[("training 1st percentile", 5.0)])
    [ax] = fig.axes
    assert ax.get_xlim() == (0.0, 10.0)
    renderer = fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    plot = ax.get_window_extent(renderer)
    page = fig.bbox
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "scored\n(5 examples)", "training examples", "training 1st percentile"]
    assert legend.x0 > plot.x1 or legend.y1 < plot.y0  # beside the axes, not on them
    assert page.x0 <= legend.x0 and legend.x1 <= page.x1 and legend.y0 >= page.y0


def test_density_plot_draws_the_data_under_the_samples_on_axes_that_cover_both(tmp_path,
                                                                               monkeypatch):
    drawn = []
    monkeypatch.setattr(pictures, "_save_figure", lambda fig, path: drawn.append(fig))
    samples = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
    data = samples + 20.0  # far from the samples: the axes must reach them
    pictures.density_plot(lambda x: -0.5 * (x ** 2).sum(1), samples, tmp_path / "p.png",
                          title="t", data=data, labels=["lon", "lat"])
    ax = drawn[0].axes[0]
    assert ax.get_xlim()[1] > 20 and ax.get_ylim()[1] > 20 and ax.get_xlim()[0] < 0
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("lon", "lat")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["200 training rows",
                                                                   "200 samples"]
