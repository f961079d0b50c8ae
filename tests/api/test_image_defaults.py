"""Images follow the same rule as tables (issue 27, item 5): with no ``-c`` options,
``zoo train FAMILY --data IMAGES`` starts from defaults that follow the image size, the
levels the data actually uses and the number of images, anchored on the catalog's tuned
recipes, and the levels of uint8 data and of 8-bit pictures are the ones they use."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zoo
from zoo.api import get_entry
from zoo.api.owndata import plan
from zoo.data.image_levels import from_8bit, levels_in_use
from zoo.data.infer import fit_data
from zoo.data.open import open_data
from zoo.pictures import levels_to_uint8

#: Recipe keys the defaults set, compared with the entry they reproduce.
BUDGET = ("steps", "batch_size", "lr", "val_fraction", "eval_every", "warmup_steps",
          "grad_clip")


def digits_train() -> np.ndarray:
    """sklearn's digits of the ``digits`` protocol's training split, as uint8 0..16."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.uint8)
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(0)).numpy()
    return images[order[:1437]]


def mnist_like(levels: int, count: int = 60_000) -> np.ndarray:
    """``count`` 28x28 uint8 images whose values span 0..levels-1."""
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    images[0, 0, 0] = levels - 1
    return images


def same_as_entry(p, name: str, fewer_steps: bool = False) -> None:
    """The entry's network and recipe; with ``fewer_steps``, at most its steps."""
    entry = get_entry(name)
    config = p.family.config_dict(p.config)
    assert {k: config[k] for k in entry.config} == entry.config, name
    recipe = entry.recipe
    for key in BUDGET:
        if fewer_steps and key in ("steps", "eval_every"):
            assert getattr(p.recipe, key) <= getattr(recipe, key), (name, key)
        else:
            assert getattr(p.recipe, key) == getattr(recipe, key), (name, key)


@pytest.mark.parametrize("family", ["made", "pixelcnn", "realnvp"])
def test_digits_defaults_are_the_digits_entries(family):
    """The digits as uint8: levels 17 from the values, and the entry's network and budget,
    so that the defaults reach the entry's NLL in its build time."""
    p = plan(family, digits_train())
    assert p.config.levels == 17 and "the largest value is 16" in p.note
    same_as_entry(p, f"{family}-digits")
    assert any(line.startswith(f"{family} defaults for 1437 images of 1x8x8 at 17 levels")
               for line in p.notes), p.notes


@pytest.mark.parametrize(("family", "levels", "entry"), [
    ("made", 2, "made-binarized-mnist-cpu"), ("made", 256, "made-mnist-cpu"),
    ("pixelcnn", 2, "pixelcnn-binarized-mnist-cpu"), ("realnvp", 256, "realnvp-mnist-cpu")])
def test_mnist_sized_defaults_are_the_cpu_tier_entries(family, levels, entry):
    p = plan(family, mnist_like(levels))
    assert p.config.levels == levels
    # Images binarized once gain less from the entry's last passes (drawn again each epoch).
    same_as_entry(p, entry, fewer_steps=entry == "made-binarized-mnist-cpu")


def test_sizes_and_budgets_follow_the_data():
    few = plan("pixelcnn", mnist_like(256, count=2000))
    many = plan("pixelcnn", mnist_like(256))
    small = plan("pixelcnn", digits_train())
    assert few.config.dropout > 0 and many.config.dropout == 0  # few images: regularised
    assert few.recipe.steps < many.recipe.steps  # passes over fewer images
    assert small.config.layers < many.config.layers  # a receptive field that fits the image
    assert small.config.first_kernel < many.config.first_kernel
    binary = plan("pixelcnn", mnist_like(2))
    assert binary.config.variant == "plain"
    # Scoring batches bounded by the activations (4,096 images of 32 channels: 2 GB) and,
    # at 256 levels, by the logits.
    assert binary.recipe.eval_batch_size == 500 and many.recipe.eval_batch_size < 100
    made = plan("made", mnist_like(256, count=2000))
    assert made.config.inputs == "embedding" and made.config.masks == 1  # bounded memory
    assert plan("made", digits_train()).config.inputs == "onehot"


def test_the_users_keys_and_steps_win():
    p = plan("pixelcnn", digits_train(), config={"channels": 8, "recipe.lr": 0.01}, steps=40)
    assert p.config.channels == 8 and p.config.layers == 2  # the rest stays the defaults'
    assert p.recipe.steps == 40 and p.recipe.lr == 0.01
    assert p.recipe.eval_every == 40 * 50 // 600 or p.recipe.eval_every == 40
    short = plan("made", digits_train(), steps=3)
    assert short.recipe.eval_every == 3  # one validation pass, at the end


def test_an_entry_keeps_its_own_config():
    p = plan("pixelcnn-digits", digits_train())
    assert not any("defaults for" in line for line in p.notes)
    assert p.config.levels == 17


@pytest.mark.parametrize(("greys", "levels"), [
    (np.round(np.arange(17) * 255 / 16), 17),  # drawn as zoo draws 17 levels
    (np.floor(np.arange(17) * 255 / 16), 17),  # scaled by 255 / 16 and truncated
    (np.round(np.delete(np.arange(17), 15) * 255 / 16), 17),  # one level never used
    ([0, 255], 2),
    ([0, 127, 128, 255], 256),  # 127 and 128 would read as the same level of 3
    (np.arange(17), 256),  # 0..16 stored as they are: no coarse grid
    (np.round(np.arange(16) * 255 / 16) + 2, 256),  # two greys off a grid: not on it
    (np.arange(256), 256),
    (np.random.default_rng(1).integers(0, 256, 60), 256)])
def test_the_levels_pictures_use(greys, levels):
    present = np.zeros(256, dtype=bool)
    present[np.asarray(greys, dtype=int)] = True
    assert levels_in_use(present) == levels


def test_pictures_train_and_score_at_the_levels_they_use(tmp_path):
    """A folder of digits drawn at 17 levels trains at 17, reading each picture back as the
    levels it shows, and scoring reads them the same way: the same log-probabilities as the
    digits given as levels."""
    from PIL import Image

    digits = digits_train()[:40]
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(levels_to_uint8(torch.from_numpy(digits).long(), 17)):
        Image.fromarray(image.numpy()).save(folder / f"{i:03d}.png")
    fitted = fit_data(open_data(folder), "discrete")
    assert fitted.config["levels"] == 17 and "use 17 greys" in fitted.note
    read = fitted.examples.take(np.arange(40))
    assert torch.equal(read[:, 0], torch.from_numpy(digits).long())
    model = zoo.fit("made", folder, config={"hidden": [16]}, steps=2, progress=False)
    assert model.config.levels == 17
    as_levels = model.log_prob(torch.from_numpy(digits).long().unsqueeze(1))
    assert torch.allclose(zoo.score(model, folder).float(), as_levels.float(), atol=1e-4)
    assert torch.equal(from_8bit(torch.tensor([0, 16, 255]), 17), torch.tensor([0, 1, 16]))


def test_uint8_levels_from_a_look_at_big_data(tmp_path, monkeypatch):
    """Big data gets a look, not a pass: its largest value + 1 when the values seen stay
    low (checked batch by batch later), else the dtype's 256, so that a rare bright value
    cannot stop a long run."""
    from zoo.data import checks, infer

    monkeypatch.setattr(infer, "FULL_PASS_BYTES", 0)
    monkeypatch.setattr(checks, "GLANCE_BLOCKS", 2)
    monkeypatch.setattr(checks, "GLANCE_BLOCK", 8)
    low = np.zeros((100, 4, 4), dtype=np.uint8)
    low[3, 0, 0] = 16
    np.save(tmp_path / "low.npy", low)
    fitted = fit_data(open_data(tmp_path / "low.npy"), "discrete")
    assert fitted.config["levels"] == 17 and fitted.examples.check is not None
    bright = low.copy()
    bright[4, 0, 0] = 200
    np.save(tmp_path / "bright.npy", bright)
    fitted = fit_data(open_data(tmp_path / "bright.npy"), "discrete")
    assert fitted.config["levels"] == 256 and "range of uint8" in fitted.note
