"""The inputs of `zoo sample --complete` (issue 24, items 22-26): the mask has the same
decompression-bomb guard as the given image; RGB models complete RGB pictures; a picture of
another size is refused unless `--resize`, which says what it scaled; RealNVP says it
cannot complete; and 8-bit pictures become a model's levels by one rule everywhere.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import faultkit
import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cli.commands import cli
from zoo.data.image_levels import from_8bit
from zoo.pictures import levels_to_uint8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def saved(tmp_path: Path, family: str, config: dict, name: str) -> Path:
    torch.manual_seed(0)
    return zoo.save(zoo.get_family(family).build(config), tmp_path / name)


@pytest.fixture
def grey(tmp_path) -> Path:
    """A PixelCNN of 4x4 grey images with 17 levels (as pixelcnn-digits has)."""
    return saved(tmp_path, "pixelcnn", {"shape": [1, 4, 4], "levels": 17}, "grey")


def png(path: Path, height: int, width: int, channels: int = 1, seed: int = 0) -> Path:
    shape = (height, width) if channels == 1 else (height, width, channels)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def sample(cli_runner, model: Path, *args: str):
    return cli_runner.invoke(cli, ["sample", str(model), "-n", "2", *args])


def test_a_mask_that_is_a_decompression_bomb_is_refused(tmp_path, grey, cli_runner):
    # Item 22: "unexpected DecompressionBombError"; a 10000^2 mask was decoded, with
    # Pillow's raw warning. Neither is decoded now.
    given = png(tmp_path / "g.png", 4, 4)
    for side, name in ((30000, "bomb.png"), (10000, "large.png")):
        faultkit.png_header(tmp_path / name, side, side)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a raw DecompressionBombWarning fails the test
            result = sample(cli_runner, grey, "--complete", str(given), "--keep-mask",
                            str(tmp_path / name), "-o", str(tmp_path / "c.png"))
        faultkit.refused_line(result, name, "too large to read safely")
    assert not (tmp_path / "c.png").exists()


def test_an_rgb_model_completes_an_rgb_png(tmp_path, cli_runner):
    # Item 23: "unexpected RuntimeError: shape '[3, 4, 4]' is invalid".
    rgb = saved(tmp_path, "made", {"shape": [3, 4, 4], "levels": 4, "hidden": [8]}, "rgb")
    picture = png(tmp_path / "rgb.png", 4, 4, channels=3)
    for extra in (["--keep", "top-half"], ["--keep-mask", str(png(tmp_path / "m.png", 4, 4))]):
        result = sample(cli_runner, rgb, "--complete", str(picture), *extra, "-o",
                        str(tmp_path / "c.png"))
        assert result.exit_code == 0, result.output
    from zoo.cli.sample_files import read_image

    levels = read_image(picture, (3, 4, 4), 4)
    pixels = torch.from_numpy(np.array(Image.open(picture))).permute(2, 0, 1)
    assert torch.equal(levels, from_8bit(pixels, 4))  # channel by channel, in order


def test_a_picture_of_another_size_is_refused_unless_resize(tmp_path, grey, cli_runner):
    # Item 24: a 3x7 mask or image for a 4x4 model was stretched without a word.
    wrong, right = png(tmp_path / "w.png", 7, 3), png(tmp_path / "r.png", 4, 4)
    out = str(tmp_path / "c.png")
    faultkit.refused_line(sample(cli_runner, grey, "--complete", str(wrong), "-o", out),
             "w.png", "3x7", "4x4", "--resize")
    faultkit.refused_line(sample(cli_runner, grey, "--complete", str(right), "--keep-mask", str(wrong),
                    "-o", out), "w.png", "mask", "3x7", "4x4")
    result = sample(cli_runner, grey, "--complete", str(wrong), "--keep-mask", str(wrong),
                    "--resize", "-o", out)
    assert result.exit_code == 0, result.output
    assert "image resized from 3x7 to 4x4" in result.stderr
    assert "mask resized from 3x7 to 4x4" in result.stderr


def test_realnvp_says_it_cannot_complete(tmp_path, cli_runner):
    # Item 25: "log_prob takes floating-point values of shape ..., got torch.int64".
    flow = saved(tmp_path, "realnvp", {"shape": [1, 8, 8], "levels": 17}, "flow")
    picture = png(tmp_path / "d.png", 8, 8)
    faultkit.refused_line(sample(cli_runner, flow, "--complete", str(picture), "-o", str(tmp_path / "c.png")),
             "realnvp cannot complete", "not autoregressive")
    model = zoo.load(flow)
    with pytest.raises(ValueError, match="realnvp cannot complete"):
        zoo.complete(model, torch.zeros(1, 8, 8, dtype=torch.long),
                     torch.ones(1, 8, 8, dtype=torch.bool))


def test_one_rule_reads_pngs_as_levels_for_completion_and_scoring(tmp_path, grey, cli_runner):
    # Item 26: --complete mapped v to round(v*(C-1)/255) while `zoo score` refused the same
    # PNGs ("value 80 is outside the model's levels 0..16").
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        png(folder / f"{i}.png", 4, 4, seed=i)
    result = cli_runner.invoke(cli, ["score", str(grey), "--data", str(folder)])
    assert result.exit_code == 0, result.output
    scores = [float(v) for v in result.stdout.split()[1:]]
    from zoo.cli.sample_files import read_image

    model = zoo.load(grey)
    levels = torch.stack([read_image(p, (1, 4, 4), 17) for p in sorted(folder.iterdir())])
    with torch.no_grad():
        expect = model.log_prob(levels).double()
    assert np.allclose(scores, expect.numpy(), rtol=1e-6), (scores, expect)
    # The rule inverts the way zoo draws levels: a picture zoo wrote reads back as its levels.
    all_levels = torch.arange(17)
    assert torch.equal(from_8bit(levels_to_uint8(all_levels, 17), 17), all_levels)


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for this module, written once its tests have run."""
    yield
    faultkit.record("hostile", "`zoo sample --complete`: a --keep-mask PNG claiming 30000² and "
                    "10000² pixels; a picture of another size (image, mask); RGB pictures for an "
                    "RGB model; a RealNVP model (CLI and zoo.complete)", 7,
                    "the masks refused in one line naming them, undecoded (it was \"unexpected "
                    "DecompressionBombError\" and a raw warning); a size mismatch refused naming "
                    "both sizes, scaled with --resize and reported (it was stretched silently); "
                    "RGB completed (it was \"unexpected RuntimeError\"); RealNVP: one line, it "
                    "cannot complete", "no file written where refused")
    faultkit.record("hostile", "the same 8-bit PNGs to `zoo score` (image folder) and "
                    "`--complete` for a model of 17 levels", 2,
                    "both read level round(v*16/255), the inverse of zoo's pictures (score "
                    "refused them)", "nothing written")
