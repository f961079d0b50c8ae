"""Tests of the pixelcnn family: causality, no blind spot, normalisation, samplers, artifacts."""

from __future__ import annotations

import itertools

import pytest
import torch

import zoo
import zoo.api
from zoo.checks import check_completion
from zoo.errors import ConfigError

VARIANTS = ("plain", "gated")


def build(variant: str = "gated", **config):
    config = {"shape": [1, 6, 5], "levels": 5, "variant": variant, "channels": 16, "layers": 2,
              "first_kernel": 3, "head_channels": 16, **config}
    torch.manual_seed(0)
    return zoo.get_family("pixelcnn").build(config).eval()


def input_gradients(model, i: int, j: int, seed: int = 0):
    """|d logits(i, j) / d input features| summed over channels: ``[H, W]``."""
    _, height, width = model.shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.levels, (1, 1, height, width), generator=g)
    e = model.embed(x).detach().requires_grad_(True)
    logits = model.net(e)
    # A random projection of the logits: no cancellation can hide a dependence.
    weights = torch.randn(model.levels, generator=g)
    (logits[0, :, i, j] * weights).sum().backward()
    return e.grad[0].abs().sum(0)


def earlier(i: int, j: int, height: int, width: int) -> torch.Tensor:
    """Bool ``[H, W]``: the pixels strictly before ``(i, j)`` in raster order."""
    order = torch.arange(height * width).view(height, width)
    return order < i * width + j


def window(i: int, j: int, radius: int, height: int, width: int) -> torch.Tensor:
    """Bool ``[H, W]``: earlier pixels at most ``radius`` rows up and columns away."""
    r = torch.arange(height).view(-1, 1)
    c = torch.arange(width).view(1, -1)
    near = (i - r <= radius) & ((c - j).abs() <= radius)
    return near & earlier(i, j, height, width)


# --- config ---------------------------------------------------------------------------


def test_minimal_config_is_a_complete_model():
    model = zoo.get_family("pixelcnn").build({"shape": [1, 2, 2], "levels": 3})
    x = torch.zeros(4, 1, 2, 2, dtype=torch.long)
    assert model.log_prob(x).shape == (4,)
    assert model.config.variant == "gated"


@pytest.mark.parametrize(
    "raw, words",
    [
        ({"shape": [3, 8, 8], "levels": 17}, "single-channel"),
        ({"shape": [64], "levels": 17}, "[1, H, W]"),
        ({"shape": [1, 100000, 100000], "levels": 2}, "elements"),
        ({"shape": [1, 8, 8], "levels": 17, "kernel": 4}, "odd"),
        ({"shape": [1, 8, 8], "levels": 1}, "at least 2"),
        ({"shape": [1, 8, 8], "levels": 17, "variant": "diagonal"}, "must be one of"),
        ({"shape": [1, 8, 8], "levels": 17, "channels": 4096, "layers": 256}, "parameters"),
        ({"shape": [1, 8, 8], "levels": 17, "widht": 3}, "unknown key"),
    ],
)
def test_absurd_or_wrong_configs_are_refused_before_allocation(raw, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        zoo.get_family("pixelcnn").parse_config(raw)


def test_catalog_entries_are_valid():
    for name in ("pixelcnn-digits", "pixelcnn-mnist", "pixelcnn-binarized-mnist"):
        entry = zoo.api.get_entry(name)
        config = zoo.get_family("pixelcnn").parse_config(entry.config)
        dataset = zoo.get_dataset(entry.dataset)
        assert tuple(config.shape) == dataset.shape and config.levels == dataset.levels


# --- causality ------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_do_not_depend_on_the_pixel_itself_or_later_ones(variant):
    model = build(variant)
    _, height, width = model.shape
    for i, j in itertools.product(range(height), range(width)):
        grad = input_gradients(model, i, j)
        later = ~earlier(i, j, height, width)
        assert torch.all(grad[later] == 0), f"logits at {(i, j)} see pixel at or after it"
        if (i, j) != (0, 0):
            assert grad.sum() > 0, f"logits at {(i, j)} see no input at all"


def test_gated_variant_has_no_blind_spot():
    # first_kernel 3 + two 3x3 layers: the receptive field reaches 1 + 2 = 3 pixels out.
    model = build("gated", shape=[1, 7, 8], first_kernel=3, kernel=3, layers=2)
    _, height, width = model.shape
    for i, j in itertools.product(range(height), range(width)):
        grad = input_gradients(model, i, j, seed=i * width + j)
        field = window(i, j, 3, height, width)
        blind = field & (grad == 0)
        assert not blind.any(), f"pixel {(i, j)} does not see {blind.nonzero().tolist()}"


def test_plain_variant_has_the_blind_spot_the_gated_one_removes():
    # Same kernels and depth as above: the plain stack misses pixels up and to the right.
    model = build("plain", shape=[1, 7, 8], first_kernel=3, kernel=3, layers=2)
    _, height, width = model.shape
    i, j = 5, 3
    grad = input_gradients(model, i, j)
    blind = window(i, j, 3, height, width) & (grad == 0)
    assert blind.any()
    rows, cols = blind.nonzero().unbind(1)
    assert torch.all(rows < i) and torch.all(cols > j), "the blind spot is up and to the right"


@pytest.mark.parametrize("variant", VARIANTS)
def test_masked_weights_have_no_effect(variant):
    """Masks are applied at every call: whatever sits under a zero of a mask is ignored."""
    model = build(variant)
    x = torch.randint(0, 5, (3, 1, 6, 5), generator=torch.Generator().manual_seed(1))
    before = model.log_prob(x)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "mask") and isinstance(module.mask, torch.Tensor):
                module.weight.add_(100.0 * (1 - module.mask))
    assert torch.equal(model.log_prob(x), before)


# --- normalisation --------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("inputs", ["embedding", "scaled"])
def test_probabilities_of_all_images_sum_to_one(variant, inputs):
    model = build(variant, shape=[1, 2, 2], levels=3, inputs=inputs)
    images = torch.tensor(list(itertools.product(range(3), repeat=4))).view(81, 1, 2, 2)
    total = model.log_prob(images).double().exp().sum().item()
    assert total == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("shape", [[1, 1, 1], [1, 1, 3], [1, 3, 1]])
def test_any_image_size_is_normalised(shape):
    model = build("gated", shape=shape, levels=4)
    d = shape[1] * shape[2]
    images = torch.tensor(list(itertools.product(range(4), repeat=d))).view(-1, *shape)
    assert model.log_prob(images).double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    assert model.sample(3).shape == (3, *shape)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("levels", [2, 5])
def test_the_embedding_folded_into_the_first_kernel_is_the_same_function(variant, levels):
    """Fewer levels than embedding dimensions: scoring convolves the one-hot with the table
    folded into the first kernel. It must equal the network run on the embedded image,
    border pixels (zero padding) included, and so must its gradients."""
    model = build(variant, levels=levels)
    assert model.folds_embedding
    with torch.no_grad():  # a non-trivial table: the folded path must really use it
        model.embedding.weight.normal_()
    x = torch.randint(0, levels, (3, 1, 6, 5), generator=torch.Generator().manual_seed(1))
    folded, reference = model.logits(x), model.net(model.embed(x))
    assert torch.allclose(folded, reference, atol=1e-5)
    (g_folded,) = torch.autograd.grad(folded.square().sum(), model.embedding.weight)
    (g_reference,) = torch.autograd.grad(reference.square().sum(), model.embedding.weight)
    assert torch.allclose(g_folded, g_reference, atol=1e-4, rtol=1e-4)
    assert not build(variant, levels=17).folds_embedding  # more levels than dimensions


def test_log_prob_is_the_sum_of_per_pixel_log_softmax():
    model = build("plain")
    x = torch.randint(0, 5, (4, 1, 6, 5), generator=torch.Generator().manual_seed(2))
    logits = model.logits(x)
    expected = torch.distributions.Categorical(logits=logits.permute(0, 2, 3, 1)).log_prob(x[:, 0])
    torch.testing.assert_close(model.log_prob(x), expected.sum((1, 2)))


# --- sampling -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("levels", [2, 17])  # 2: the embedding folded into the first layer
def test_incremental_logits_match_a_full_forward_pass(variant, levels):
    model = build(variant, shape=[1, 7, 9], levels=levels, first_kernel=5, layers=3)
    assert model.folds_embedding == (levels == 2)
    x = torch.randint(0, levels, (4, 1, 7, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        full = model.logits(x)
        stepper = model.stepper(4)
        for i, j in itertools.product(range(7), range(9)):
            torch.testing.assert_close(stepper.step(i, j), full[:, :, i, j], rtol=0, atol=1e-5)
            stepper.write(j, model.step_features(x[:, 0, i, j]))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("levels", [2, 17, 256])
def test_fast_and_naive_samplers_give_identical_samples(variant, levels):
    model = build(variant, shape=[1, 6, 7], levels=levels)
    fast = model.sample(6, generator=torch.Generator().manual_seed(5), temperature=0.8)
    stats = model.sampling_stats
    naive = model.sample_naive(6, generator=torch.Generator().manual_seed(5), temperature=0.8)
    assert torch.equal(fast, naive)
    # The fast sampler really is incremental: the reference computation is a rare fall-back.
    assert stats["reference_steps"] <= stats["pixels"] // 10
    assert fast.dtype == torch.long and fast.min() >= 0 and fast.max() < levels
    assert len(set(fast.flatten().tolist())) > 1


def test_every_fall_back_still_gives_the_reference_draw(monkeypatch):
    """Force the margin check to fail everywhere: the fall-back path alone must match."""
    import zoo_pixelcnn.model as pixelcnn_model

    model = build("gated", levels=17)
    monkeypatch.setattr(pixelcnn_model, "ROUNDING_TOLERANCE", 1e6)
    fast = model.sample(4, generator=torch.Generator().manual_seed(6))
    assert model.sampling_stats["reference_steps"] == model.sampling_stats["pixels"]
    naive = model.sample_naive(4, generator=torch.Generator().manual_seed(6))
    assert torch.equal(fast, naive)



@pytest.mark.parametrize(("variant", "levels", "tolerance"),
                         [("plain", 2, 0.5), ("plain", 5, 0.05), ("gated", 2, 0.02),
                          ("gated", 5, 0.02)])
def test_a_reference_draw_that_differs_from_the_float32_one_is_followed(
        variant, levels, tolerance, monkeypatch):
    """The fast sampler checks a row's close calls after drawing the row; where the
    reference overturns a draw it must step the rest of the row again. Force that: a wide
    tolerance makes many draws close calls (not all: the others follow from the draws
    before them, through logits scaled to a trained model's size), and the reference
    reverses every logit, so it overturns most of them."""
    import zoo_pixelcnn.model as pixelcnn_model

    model = build(variant, levels=levels, shape=[1, 8, 8])
    with torch.no_grad():
        model.net.head.out.weight.mul_(30.0)
        model.net.head.out.bias.mul_(30.0)
    exact = pixelcnn_model.Decider.reference_logits
    monkeypatch.setattr(pixelcnn_model, "ROUNDING_TOLERANCE", tolerance)
    monkeypatch.setattr(pixelcnn_model.Decider, "reference_logits",
                        lambda self, b, i, j: -exact(self, b, i, j))
    fast = model.sample(8, generator=torch.Generator().manual_seed(6))
    stats = model.sampling_stats
    naive = model.sample_naive(8, generator=torch.Generator().manual_seed(6))
    assert torch.equal(fast, naive)
    assert 0 < stats["reference_draws"] < 8 * stats["pixels"] // 2, stats


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_fall_back_in_context_gives_the_reference_draw(variant, monkeypatch):
    """A conditional model's float64 reference sees each image's own context."""
    import zoo_pixelcnn.model as pixelcnn_model

    model = build(variant, levels=17, classes=[str(k) for k in range(4)])
    context = torch.tensor([0, 1, 2, 3, 3, 0])
    monkeypatch.setattr(pixelcnn_model, "ROUNDING_TOLERANCE", 1e6)
    fast = model.sample(6, context=context, generator=torch.Generator().manual_seed(6))
    assert model.sampling_stats["reference_draws"] == 6 * model.sampling_stats["pixels"]
    naive = model.sample_naive(6, context=context, generator=torch.Generator().manual_seed(6))
    monkeypatch.setattr(pixelcnn_model, "ROUNDING_TOLERANCE", 1e-4)
    plain = model.sample(6, context=context, generator=torch.Generator().manual_seed(6))
    assert torch.equal(fast, naive) and torch.equal(fast, plain)

@pytest.mark.parametrize("entry", ["pixelcnn-digits", "pixelcnn-mnist",
                                   "pixelcnn-binarized-mnist", "pixelcnn-binarized-mnist-cpu"])
def test_fast_equals_naive_on_the_catalog_configs_with_close_calls(entry, monkeypatch):
    """The catalog's networks (on a small image; many-level logits scaled to a trained
    model's size) and a tolerance wide enough that some draws but not all go to the
    reference: the mixed case (one sampler's draw clear, the other's not) must give the
    same samples."""
    import zoo_pixelcnn.model as pixelcnn_model

    from zoo.catalog import catalog

    config = {**catalog().get(entry).config, "shape": [1, 5, 7]}
    torch.manual_seed(0)
    model = zoo.get_family("pixelcnn").build(config).eval()
    if model.levels > 2:
        with torch.no_grad():
            model.net.head.out.weight.mul_(30.0)
            model.net.head.out.bias.mul_(30.0)
    monkeypatch.setattr(pixelcnn_model, "ROUNDING_TOLERANCE", 3e-3)
    fast = model.sample(8, generator=torch.Generator().manual_seed(1))
    stats = model.sampling_stats
    naive = model.sample_naive(8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fast, naive)
    assert 0 < stats["reference_draws"] < 8 * stats["pixels"]


def test_row_noise_is_the_per_pixel_noise_in_raster_order():
    """Drawing a row's Gumbel noise at once consumes the CPU generator as one draw per
    pixel did: the samples for a seed are the same as before the change."""
    from zoo_pixelcnn.model import gumbel_noise

    g = torch.Generator().manual_seed(3)
    row = gumbel_noise(4, 5, g, torch.device("cpu"), width=6)
    g = torch.Generator().manual_seed(3)
    pixels = torch.stack([gumbel_noise(4, 5, g, torch.device("cpu"))[0] for _ in range(6)])
    assert torch.equal(row, pixels)


def test_the_float64_reference_follows_the_weights():
    model = build("gated", levels=17)
    first = model.float64_copy()
    assert model.float64_copy() is first  # kept while nothing changes
    x = torch.randint(0, 17, (2, 1, 6, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model.net.head.out.bias.add_(1.0)
        second = model.float64_copy()
        torch.testing.assert_close(second.logits(x).float(), model.logits(x))
    assert "_float64" not in str(list(model.state_dict()))


def test_sampling_follows_the_generator_and_temperature():
    model = build("plain", levels=17)
    a = model.sample(8, generator=torch.Generator().manual_seed(1))
    b = model.sample(8, generator=torch.Generator().manual_seed(1))
    c = model.sample(8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # A lower temperature concentrates the samples where the model puts more mass.
    cold = model.sample(32, temperature=0.3, generator=torch.Generator().manual_seed(3))
    warm = model.sample(32, temperature=1.0, generator=torch.Generator().manual_seed(3))
    assert model.log_prob(cold).mean() > model.log_prob(warm).mean() + 1.0


@pytest.mark.parametrize("variant", VARIANTS)
def test_completion_keeps_known_pixels_and_matches_the_reference(variant):
    model = build(variant, levels=17)
    g = torch.Generator().manual_seed(7)
    given = torch.randint(0, 17, (1, 6, 5), generator=g)
    known = torch.rand(1, 6, 5, generator=g) < 0.5
    # The clamp-and-draw sampler (zoo.infer.completion's fast path for a known prefix; the
    # proposal otherwise), incremental and reference, on a scattered mask.
    checked = check_completion(given, known, 10, model.shape, model.levels)
    out = model.draw(10, 1.0, torch.Generator().manual_seed(8), checked, fast=True)
    assert torch.equal(out[:, known], given[known].expand(10, -1))
    assert not torch.equal(out, out[:1].expand_as(out)), "unknown pixels are drawn"
    ref = model.draw(10, 1.0, torch.Generator().manual_seed(8), checked, fast=False)
    assert torch.equal(out, ref)
    top = torch.zeros_like(known)
    top[:, :3] = True  # a known prefix: sample() takes the same path
    assert torch.equal(model.sample(4, given=given, mask=top,
                                    generator=torch.Generator().manual_seed(9)),
                       model.sample_naive(4, given=given, mask=top,
                                          generator=torch.Generator().manual_seed(9)))
    everything = torch.ones_like(known)
    assert torch.equal(model.sample(3, given=given, mask=everything), given.expand(3, 1, 6, 5))


# --- artifacts and errors -------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_then_load_gives_identical_log_prob_and_samples(tmp_path, variant):
    model = build(variant, levels=17, dropout=0.1)
    x = torch.randint(0, 17, (5, 1, 6, 5), generator=torch.Generator().manual_seed(4))
    path = zoo.save(model, tmp_path / "model")
    loaded = zoo.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert any(name.endswith("mask") for name, _ in loaded.named_buffers())
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    b = loaded.sample(3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "x, words",
    [
        (torch.zeros(2, 1, 6, 5), "integer"),
        (torch.full((2, 1, 6, 5), 5), "0..4"),
        (torch.full((2, 1, 6, 5), -1), "0..4"),
        (torch.zeros(2, 6, 5, dtype=torch.long), "shape"),
        (torch.zeros(2, 2, 6, 5, dtype=torch.long), "shape"),
        ([[0, 1]], "torch.Tensor"),
    ],
)
def test_bad_input_is_a_clear_value_error(x, words):
    with pytest.raises(ValueError, match=words):
        build("plain").log_prob(x)


def test_bad_sampling_arguments_are_value_errors():
    model = build("plain")
    with pytest.raises(ValueError, match="positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="both"):
        model.sample(2, given=torch.zeros(1, 6, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="0..4"):
        model.sample(2, given=torch.full((1, 6, 5), 9), mask=torch.ones(1, 6, 5, dtype=torch.bool))


def test_training_lowers_the_nll():
    from zoo.catalog.recipe import Recipe
    from zoo.training.loop import train_model

    model = build("gated", shape=[1, 8, 8], levels=17)
    dataset = zoo.get_dataset("digits")
    data = dataset.load("train")[:256]
    before = -model.log_prob(data).mean().item()
    recipe = Recipe(steps=40, batch_size=64, lr=3e-3, val_fraction=0.0, eval_every=40)
    train_model(zoo.get_family("pixelcnn"), model, dataset, recipe, train_data=data, progress=False)
    after = -model.log_prob(data).mean().item()
    assert after < before - 20
