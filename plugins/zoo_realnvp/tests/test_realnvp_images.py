"""RealNVP on images: the multi-scale flow, dequantization, and the vector model's old artifacts."""

import json
import math

import pytest
import torch
from layout import FIXTURES

import zoo
from zoo.errors import ConfigError
from zoo.testing import check_family


def perturbed(config, seed=0, std=0.1):
    """A flow whose couplings are far from the identity (the zero init proves nothing):
    every parameter nudged by ``std / sqrt(fan_in)``, so each layer's output moves by ~std."""
    torch.manual_seed(seed)
    model = zoo.get_family("realnvp").build(config)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            p.add_(torch.randn_like(p) * std / math.sqrt(fan_in))
    return model.eval()


# -- the kit ------------------------------------------------------------------------------


@pytest.mark.parametrize("config, checks", [
    ({"shape": [1, 4, 4], "hidden": 8}, ["invertibility", "save_load", "sample", "bad_input"]),
    ({"shape": [1, 4, 4], "hidden": 8, "scales": 3}, ["invertibility"]),  # down to one pixel
    ({"shape": [1, 2, 2], "hidden": 8}, ["log_det", "invertibility", "normalisation"]),
    ({"shape": [2, 2, 2], "hidden": 8, "scales": 1}, ["normalisation", "invertibility"]),
])
def test_image_flows_pass_the_kit(config, checks):
    report = check_family(zoo.get_family("realnvp"), config=config)
    for name in checks:
        assert report.result(name).status == "passed", report.summary()


# -- the architecture ---------------------------------------------------------------------


def test_multiscale_structure():
    from zoo_realnvp.multiscale import ChannelCoupling, CheckerboardCoupling

    model = zoo.get_family("realnvp").build({"shape": [3, 8, 8], "scales": 3, "blocks": 1,
                                             "hidden": 8})
    kinds = [[type(layer).__name__ for layer in [*s.before, *s.after]] for s in model.scales]
    assert kinds == [["CheckerboardCoupling"] * 3 + ["ChannelCoupling"] * 3] * 2 + [
        ["CheckerboardCoupling"] * 4]
    # Half the channels factored out per scale: 3 -> 12 (squeezed) -> 6 -> 24 -> 12 channels.
    assert [s.after[0].net.inp.in_channels for s in model.scales[:2]] == [6, 12]
    assert model.scales[2].before[0].net.inp.in_channels == 12 + 1  # + the mask channel
    masks = [layer.mask for s in model.scales for layer in s.before
             if isinstance(layer, CheckerboardCoupling)]
    assert all(torch.equal(a + b, torch.ones_like(a)) for a, b in zip(masks, masks[1:])
               if a.shape == b.shape)
    assert sum(isinstance(m, ChannelCoupling) for m in model.modules()) == 6
    assert "scales.0.before.0.mask" in model.state_dict()  # stored, never re-drawn


def test_factored_out_values_skip_the_later_scales():
    # The first scale's factored-out half is final: changing what the last scale does to
    # the other half leaves it alone.
    from zoo_realnvp.multiscale import squeeze

    model = perturbed({"shape": [1, 4, 4], "hidden": 8})
    x = torch.randn(4, 1, 4, 4)
    z, _ = model(x)
    with torch.no_grad():
        for p in model.scales[1].parameters():
            p.add_(1.0)
    z2, _ = model(x)
    assert torch.equal(squeeze(z)[:, :2], squeeze(z2)[:, :2])
    assert not torch.allclose(squeeze(z)[:, 2:], squeeze(z2)[:, 2:])


def test_scale_is_bounded():
    model = perturbed({"shape": [1, 4, 4], "hidden": 8, "scale_bound": 0.5}, std=50.0)
    layer = model.scales[0].before[0]
    s, _ = layer.scale_shift(torch.randn(8, 1, 4, 4) * 100)
    assert s.abs().max() <= 0.5


@pytest.mark.parametrize("config, message", [
    ({"shape": [2], "levels": 17}, "levels: applies only to images"),
    ({"shape": [2], "scales": 3}, "scales: applies only to images"),
    ({"shape": [1, 8, 8], "couplings": 4}, "couplings: applies only to vectors"),
    ({"shape": [1, 6, 6], "scales": 3}, "multiples of 4"),
    ({"shape": [1, 1, 1], "scales": 1}, "nothing to couple"),
    ({"shape": [2, 2]}, "realnvp models vectors"),
    ({"shape": [1, 8, 8], "levels": 1}, "levels: must be at least 2"),
])
def test_bad_configs_are_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        zoo.get_family("realnvp").parse_config(config)


# -- dequantization -----------------------------------------------------------------------

LEVELS = {"shape": [1, 2, 2], "levels": 3, "hidden": 8}


def test_log_prob_is_a_normalised_density():
    # Feasible at D = 4: the density lives on the logit map's interval per value, so its
    # integral is that box's volume times the mean density at uniform points in it
    # (200 000 points: about 0.5% error).
    model = perturbed(LEVELS)
    lo, hi = -0.05 * 3 / 0.9, 3 * 0.95 / 0.9
    y = lo + torch.rand(200_000, 1, 2, 2, generator=torch.Generator().manual_seed(0)) * (hi - lo)
    with torch.no_grad():
        density = model.log_prob(y).double().exp()
    volume = (hi - lo) ** 4
    mass = (density.mean() * volume).item()
    stderr = (density.std() * volume / math.sqrt(len(y))).item()
    assert abs(mass - 1) < max(0.02, 4 * stderr), (mass, stderr)


def test_bin_masses_sum_to_one_and_bounds_lie_below_them():
    # P(x) is the density's mass on x's bin ([x, x+1) per value, the outer bins stretched to
    # the support's edges): the 81 masses of levels 3, D = 4 sum to 1. The dequantization
    # bound (K = 1) and the importance-weighted one (K = 16) lie below log P(x), and below
    # the log-mass of [x, x+1)^D, which K = 16 approaches much more closely than K = 1.
    model = perturbed(LEVELS)
    lo, hi = -0.05 * 3 / 0.9, 3 * 0.95 / 0.9
    index = torch.arange(81)
    x = ((index[:, None] // 3 ** torch.arange(4)) % 3).reshape(81, 1, 2, 2)
    reps = x.repeat(2000, 1, 1, 1)
    left = torch.where(reps == 0, lo, reps.double())
    width = torch.where(reps == 2, hi, reps + 1.0) - left
    u = torch.rand(reps.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        stretched = model.log_prob((left + u * width).float()).double() + width.log().sum((1, 2, 3))
        log_p = torch.logsumexp(stretched.reshape(2000, 81), 0) - math.log(2000)
        inner = model.log_likelihood(reps, generator=torch.Generator().manual_seed(1))
        log_inner = torch.logsumexp(inner.double().reshape(2000, 81), 0) - math.log(2000)
        k1 = model.log_likelihood(x.repeat(50, 1, 1, 1), generator=torch.Generator()
                                  .manual_seed(2)).reshape(50, 81).double().mean(0)
        k16 = model.log_likelihood(x.repeat(50, 1, 1, 1), samples=16,
                                   generator=torch.Generator().manual_seed(3)
                                   ).reshape(50, 81).double().mean(0)
    assert abs(log_p.exp().sum().item() - 1) < 0.01
    assert (log_inner < log_p + 0.05).all()  # equal for middle bins, up to Monte Carlo noise
    gap1, gap16 = (log_inner - k1).mean().item(), (log_inner - k16).mean().item()
    assert 0 < gap16 < 0.5 * gap1, (gap1, gap16)


def test_log_prob_takes_values_and_log_likelihood_takes_levels():
    model = perturbed(LEVELS)
    levels = torch.randint(0, 3, (5, 1, 2, 2))
    with pytest.raises(ValueError, match="use log_likelihood"):
        model.log_prob(levels)
    with pytest.raises(ValueError, match=r"values must lie in 0\.\.2"):
        model.log_likelihood(levels + 1)
    with pytest.raises(ValueError, match="expected integer values"):
        model.log_likelihood(levels.float())
    outside = levels.float() + 0.5
    outside[0, 0, 0, 0] = -0.2  # the support is (-1/6, 3 + 1/6) per value
    outside[1, 0, 0, 0] = 3.2
    lp = model.log_prob(outside)
    assert torch.isinf(lp[:2]).all() and (lp[:2] < 0).all() and torch.isfinite(lp[2:]).all()
    assert model.likelihood_bound and zoo.get_family("realnvp").likelihood_bound(LEVELS)
    assert not zoo.get_family("realnvp").likelihood_bound({"shape": [1, 2, 2]})


def test_samples_are_levels():
    model = perturbed({"shape": [1, 4, 4], "levels": 17, "hidden": 8})
    a = model.sample(300, generator=torch.Generator().manual_seed(4))
    b = model.sample(300, generator=torch.Generator().manual_seed(4))
    assert a.dtype == torch.int64 and a.shape == (300, 1, 4, 4) and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 16 and len(a.unique()) > 10
    assert torch.isfinite(model.log_likelihood(a)).all()


def test_the_generic_trainer_fits_the_bound_and_evaluation_marks_it():
    from zoo.catalog.recipe import Recipe
    from zoo.data import Dataset
    from zoo.infer.evaluation import evaluate_on
    from zoo.training.loop import maximise_likelihood

    torch.manual_seed(0)
    probs = torch.linspace(0.1, 0.9, 16).reshape(1, 1, 4, 4)
    data = (torch.rand(256, 1, 4, 4, generator=torch.Generator().manual_seed(5)) < probs).long()
    dataset = Dataset("bits", "discrete", (1, 4, 4), lambda split, root: data, levels=2)
    model = zoo.get_family("realnvp").build({"shape": [1, 4, 4], "levels": 2, "hidden": 8,
                                             "blocks": 1})
    before = evaluate_on(model, data)
    maximise_likelihood(model, dataset, Recipe(steps=60, batch_size=64, lr=0.01, eval_every=30),
                        progress=False)
    after = evaluate_on(model, data)
    assert after.bound and after.samples == 1 and after.nll < before.nll - 0.5
    tighter = evaluate_on(model, data, samples=8)
    assert tighter.samples == 8 and tighter.nll < after.nll
    assert evaluate_on(model, data).nll == after.nll  # fixed dequantization noise
    with pytest.raises(ValueError, match="apply to dequantized models"):
        evaluate_on(perturbed({"shape": [1, 2, 2], "hidden": 8}), torch.randn(4, 1, 2, 2),
                 samples=4)


# -- the vector model stays as it was ---------------------------------------------------


def test_a_vector_artifact_is_written_as_before(tmp_path):
    fixture = json.loads((FIXTURES / "realnvp-vector-format1" / "config.json").read_text())
    model = zoo.load(FIXTURES / "realnvp-vector-format1")
    path = zoo.save(model, tmp_path / "again")
    again = json.loads((path / "config.json").read_text())["config"]
    assert {k: again[k] for k in fixture["config"]} == fixture["config"]
    assert not {"scales", "blocks", "levels", "alpha"} & set(again)  # no image-only keys
    image = zoo.get_family("realnvp").build({"shape": [1, 2, 2], "hidden": 4})
    stored = json.loads((zoo.save(image, tmp_path / "img") / "config.json").read_text())
    assert "couplings" not in stored["config"] and stored["config"]["scales"] == 2


def test_an_artifact_saved_before_image_flows_loads_bit_identically():
    expected = json.loads((FIXTURES / "realnvp-vector-format1.expected.json").read_text())
    model = zoo.load(FIXTURES / "realnvp-vector-format1")
    x = torch.tensor(expected["x"])
    got = [v.hex() for v in model.log_prob(x).double().tolist()]
    assert got == expected["log_prob_hex"]
    samples = model.sample(4, generator=torch.Generator().manual_seed(7))
    assert [[v.hex() for v in row] for row in samples.double().tolist()] == \
        expected["samples_seed7_hex"]
