import json
import math

import pytest
import torch

import zoo
from zoo.artifact.io import sha256_file
from zoo.errors import ArtifactError, ConfigError


def perturbed(config=None, seed=0, std=0.4):
    """A RealNVP whose couplings are far from the identity (the zero init is too easy)."""
    torch.manual_seed(seed)
    model = zoo.get_family("realnvp").build(config or {"shape": [2], "couplings": 4, "hidden": 16})
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model.double()


@pytest.mark.parametrize("config", [
    {"shape": [2], "couplings": 4, "hidden": 16},
    {"shape": [5], "couplings": 3, "hidden": 8, "masks": "random", "activation": "tanh"},
    {"shape": [2], "couplings": 4, "hidden": 16, "coupling": "spline", "bins": 6,
     "spline_bound": 2.0},
    {"shape": [5], "couplings": 3, "hidden": 8, "coupling": "spline", "masks": "random"},
])
def test_invertible(config):
    model = perturbed(config)
    x = torch.randn(64, config["shape"][0], dtype=torch.float64)
    z, _ = model(x)
    assert torch.allclose(model.invert(z), x, atol=1e-5)
    assert not torch.allclose(z, x, atol=1e-2)  # the flow really transforms


@pytest.mark.parametrize("coupling", ["affine", "spline"])
@pytest.mark.parametrize("dim", [2, 3])
def test_logdet_matches_autograd_jacobian(dim, coupling):
    # spline_bound 2: points both inside the splines and in their identity tails.
    model = perturbed({"shape": [dim], "couplings": 4, "hidden": 16, "coupling": coupling,
                       "spline_bound": 2.0})
    x = torch.randn(5, dim, dtype=torch.float64)
    _, logdet = model(x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: model(v.unsqueeze(0))[0][0], x[i])
        sign, expected = torch.linalg.slogdet(jac)
        assert sign > 0
        assert torch.allclose(logdet[i], expected, atol=1e-9)


@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_density_integrates_to_one(coupling):
    # Moderate weights keep the density smooth enough for a 600x600 grid to resolve it,
    # while the flow still moves points by ~0.7 on average.
    model = perturbed({"shape": [2], "couplings": 4, "hidden": 16, "coupling": coupling},
                      std=0.25)
    samples = model.sample(4000, generator=torch.Generator().manual_seed(0)).double()
    lo = samples.min(0).values - 3
    hi = samples.max(0).values + 3
    n = 600
    xs = torch.linspace(lo[0].item(), hi[0].item(), n, dtype=torch.float64)
    ys = torch.linspace(lo[1].item(), hi[1].item(), n, dtype=torch.float64)
    grid = torch.cartesian_prod(xs, ys)
    with torch.no_grad():
        density = model.log_prob(grid).exp()
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])
    total = (density.sum() * cell).item()
    assert abs(total - 1.0) < 0.01, total


def cell_probabilities_and_counts(model, samples, bins=12, per=50):
    """The model's probability of each of bins x bins cells (midpoint rule, per x per points
    a cell) over a box around the samples, and how many samples fall in each."""
    lo = samples.min(0).values - 0.5
    hi = samples.max(0).values + 0.5
    cells = bins * per
    width = (hi - lo) / cells
    axes = [lo[d] + width[d] * (torch.arange(cells, dtype=torch.float64) + 0.5) for d in (0, 1)]
    with torch.no_grad():
        density = model.log_prob(torch.cartesian_prod(*axes)).exp()
    probs = (density * width.prod()).reshape(bins, per, bins, per).sum((1, 3)).reshape(-1)
    which = ((samples - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)
    counts = torch.bincount(which[:, 0] * bins + which[:, 1], minlength=bins * bins)
    return probs, counts.double()


def test_sample_matches_log_prob_and_temperature():
    from zoo.testing.distribution import _chi_square

    model = perturbed(std=0.25)
    g = torch.Generator().manual_seed(3)
    a = model.float().sample(100, generator=g)
    b = model.sample(100, generator=torch.Generator().manual_seed(3))
    assert a.shape == (100, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    model = model.double()

    # Samples follow the density log_prob describes: chi-square over 144 cells.
    samples = model.sample(20000, generator=torch.Generator().manual_seed(1))
    probs, counts = cell_probabilities_and_counts(model, samples)
    assert abs(probs.sum().item() - 1) < 0.01
    p_value, stat, dof = _chi_square(counts, probs)
    assert p_value > 1e-4, (stat, dof)
    # ... and the test has the power to see a sampler 10% too wide.
    wide = model.sample(20000, temperature=1.1, generator=torch.Generator().manual_seed(1))
    probs, counts = cell_probabilities_and_counts(model, wide)
    assert _chi_square(counts, probs)[0] < 1e-6

    # Temperature: colder samples sit where log_prob is higher, and spread less.
    cold = model.sample(2000, temperature=0.5, generator=torch.Generator().manual_seed(1))
    warm = model.sample(2000, temperature=1.0, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert model.log_prob(cold).mean() > model.log_prob(warm).mean() + 0.5
    assert cold.std(0).sum() < warm.std(0).sum()


def test_save_load_identical(tmp_path):
    model = perturbed({"shape": [3], "couplings": 3, "hidden": 8, "masks": "random"}).float()
    path = zoo.save(model, tmp_path / "flow")
    loaded = zoo.load(path)
    x = torch.randn(32, 3)
    assert torch.equal(model.log_prob(x), loaded.log_prob(x))
    assert torch.equal(loaded.masks, model.masks) and torch.equal(loaded.first, model.first)


@pytest.mark.parametrize("bad, message", [
    (torch.randn(4, 3), r"expected shape \[B, 2\]"),
    (torch.randn(4), r"expected shape \[B, 2\]"),
    (torch.ones(4, 2, dtype=torch.long), "floating-point"),
    (torch.tensor([[0.0, float("nan")]]), "NaN or infinite"),
    (torch.tensor([[0.0, float("inf")]]), "NaN or infinite"),
    ([[0.0, 1.0]], "torch.Tensor"),
])
def test_bad_input(bad, message):
    model = zoo.get_family("realnvp").build({"shape": [2]})
    with pytest.raises(ValueError, match=message):
        model.log_prob(bad)


@pytest.mark.parametrize("n, temperature", [(0, 1.0), (-3, 1.0), (2.5, 1.0), (4, 0.0), (4, -1.0)])
def test_bad_sampling_arguments(n, temperature):
    model = zoo.get_family("realnvp").build({"shape": [2]})
    with pytest.raises(ValueError):
        model.sample(n, temperature=temperature)


@pytest.mark.parametrize("config", [{"shape": [1]}, {"shape": [2], "hidden": 10**9},
                                    {"shape": [2], "couplings": 0}, {"shape": [2], "depth": 3},
                                    {"shape": [2], "coupling": "spline", "bins": 1},
                                    {"shape": [2], "coupling": "cubic"},
                                    {"shape": [2], "coupling": "spline", "spline_bound": 0.0}])
def test_config_rejected_before_allocation(config):
    with pytest.raises(ConfigError):
        zoo.get_family("realnvp").build(config)


def test_pulled_artifact_has_no_pickle_and_passes_its_hash(tiny_catalog):
    path = zoo.pull("realnvp-tiny", progress=False)
    assert sorted(p.name for p in path.iterdir()) == [  # the model's files, then its pictures
        "README.md", "config.json", "history.json", "model.safetensors", "samples.png",
        "training.png"]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["weights_sha256"] == sha256_file(path / "model.safetensors")
    raw = (path / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert {"masks", "first", "second"} <= set(header)  # masks travel with the weights
    assert not raw.startswith(b"PK") and b"\x80\x02" not in raw[:16]  # not a torch.save zip/pickle
    card = (path / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: zoo" in card
    assert math.isfinite(cfg["metrics"]["test_nll"])
    # A flipped byte is detected on load.
    flipped = bytearray(raw)
    flipped[-1] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(ArtifactError, match="sha256"):
        zoo.load("realnvp-tiny")


def test_pull_is_deterministic_and_second_pull_is_cached(tiny_catalog, tmp_path):
    first = zoo.pull("realnvp-tiny", progress=False)
    digest = sha256_file(first / "model.safetensors")
    mtime = (first / "model.safetensors").stat().st_mtime_ns
    assert zoo.pull("realnvp-tiny") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == mtime  # nothing rebuilt
    other = zoo.train("realnvp-tiny", output=tmp_path / "again", progress=False)
    assert sha256_file(other / "model.safetensors") == digest


def test_a_fresh_spline_coupling_is_the_identity_and_tails_stay_put():
    model = zoo.get_family("realnvp").build({"shape": [2], "couplings": 3, "hidden": 8,
                                             "coupling": "spline", "spline_bound": 1.0})
    x = torch.tensor([[-3.0, 0.2], [0.5, -0.99], [1.0, 7.0]])
    z, logdet = model(x)
    assert torch.allclose(z, x, atol=1e-6) and torch.allclose(logdet, torch.zeros(3), atol=1e-6)
    model = perturbed({"shape": [2], "couplings": 1, "hidden": 8, "coupling": "spline",
                       "spline_bound": 1.0})
    x = torch.tensor([[0.3, -5.0], [0.3, 4.0], [0.3, 0.5]], dtype=torch.float64)
    z, logdet = model(x)  # coupling 0 keeps coordinate 0 and moves coordinate 1 within [-1, 1]
    assert torch.equal(z[:2], x[:2]) and torch.equal(logdet[:2], torch.zeros(2, dtype=torch.float64))
    assert z[2, 1] != x[2, 1] and -1 <= z[2, 1] <= 1


def test_the_coupling_networks_are_stacked_one_tensor_per_layer_and_parity():
    """Per-tensor costs (optimizer, gradient accumulation, compile guards) dominate a small
    flow's step: the couplings' networks are held as one tensor per layer for the even
    couplings and one for the odd ones, whatever the number of couplings."""
    model = zoo.get_family("realnvp").build({"shape": [5], "couplings": 5, "hidden": 8,
                                             "layers": 3})
    params = dict(model.named_parameters())
    assert len(params) == 2 * 2 * 4  # weights and biases, 4 layers, two parities
    assert params["nets.0.weights.0"].shape == (3, 8, 3)  # 3 even couplings keep 3 coordinates
    assert params["nets.1.weights.0"].shape == (2, 8, 2)  # 2 odd ones keep the other 2
    assert params["nets.1.weights.3"].shape == (2, 6, 8)  # and rewrite 3: a scale and a shift each
    single = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    assert {name.split(".")[1] for name, _ in single.named_parameters()} == {"0"}
    x = torch.randn(6, 2)
    assert torch.isfinite(single.log_prob(x)).all()


def test_a_fresh_whitened_flow_is_the_full_covariance_gaussian_of_its_rows():
    """whiten: the first layer is L^-1 (x - mean) with L L^T the rows' covariance, so before
    training the flow's density is exactly the maximum-likelihood Gaussian's (log-det of the
    triangular map included), and its samples have the rows' covariance."""
    from torch.distributions import MultivariateNormal

    from zoo.data.source import Examples, TensorSource

    torch.manual_seed(0)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.5, 0.0], [0.3, -1.0, 0.2]])
    x = torch.randn(4000, 3) @ mixing.T + torch.tensor([5.0, -3.0, 100.0])
    model = zoo.get_family("realnvp").build({"shape": [3], "standardize": True, "whiten": True,
                                   "coupling": "spline"})
    model.initialize_from_data(Examples(TensorSource(x), "continuous"))
    gaussian = MultivariateNormal(x.double().mean(0), torch.cov(x.double().T, correction=0))
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(x[:50]).double(),
                                   gaussian.log_prob(x[:50].double()), atol=1e-2, rtol=0)
        drawn = model.sample(20000, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.cov(drawn.T.double()), torch.cov(x.T.double()),
                               atol=0.1, rtol=0.05)


def test_whiten_needs_standardize():
    with pytest.raises(ConfigError, match="set standardize: true"):
        zoo.get_family("realnvp").parse_config({"shape": [3], "whiten": True})
