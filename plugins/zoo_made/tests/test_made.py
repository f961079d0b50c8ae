"""The made family: masks and causality, exact normalisation, samplers, completion, save/load."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from zoo_made.masks import ranks_of

import zoo
from zoo.artifact.manifest import sha256_file
from zoo.checks import check_completion
from zoo.errors import ArtifactError, ConfigError

# Small configs that between them cover every option.
CONFIGS = {
    "onehot": {"shape": [1, 2, 3], "levels": 3, "hidden": [16]},
    "deep-direct-ensemble": {"shape": [1, 2, 3], "levels": 3, "hidden": [12, 12, 12],
                             "direct": True, "masks": 3, "ordering": "random"},
    "embedding-lowrank": {"shape": [6], "levels": 5, "hidden": [10], "inputs": "embedding",
                          "embedding_dim": 3, "output_rank": 2, "masks": 2},
    "direct-only": {"shape": [1, 2, 3], "levels": 3, "hidden": [], "direct": True},
    "even-random-order": {"shape": [1, 2, 3], "levels": 2, "hidden": [9, 7],
                          "connectivity": "even", "ordering": "random", "masks": 2,
                          "activation": "tanh"},
    "bernoulli": {"shape": [1, 2, 3], "levels": 2, "hidden": [12, 10], "head": "bernoulli",
                  "direct": True, "masks": 2, "ordering": "random"},
    "bernoulli-binary-bits": {"shape": [1, 2, 3], "levels": 2, "hidden": [12], "masks": 2,
                              "bit_inputs": "binary", "direct": True},
    "bernoulli-embedding": {"shape": [5], "levels": 2, "hidden": [], "direct": True,
                            "head": "bernoulli", "inputs": "embedding", "embedding_dim": 2},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def build(config: dict, *, seed: int = 0, scale: float = 3.0):
    """A model whose weights are scaled up so that its conditionals are far from uniform."""
    torch.manual_seed(seed)
    model = zoo.get_family("made").build(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def all_inputs(model) -> torch.Tensor:
    values = itertools.product(range(model.levels), repeat=model.positions)
    return torch.tensor(list(values)).view(-1, *model.shape)


def random_data(model, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(model.levels, (n, *model.shape), generator=g)


# --- causality ---------------------------------------------------------------------------


def leaks(model, k: int) -> tuple[list[tuple[int, int]], int]:
    """(position, input position) pairs where the logits of a position have a non-zero gradient
    with respect to the inputs of a position at or after it in ordering ``k``; and the number
    of allowed (earlier) pairs whose gradient is non-zero."""
    x = random_data(model, 5).reshape(5, model.positions)
    inputs = model.encode(x).detach().requires_grad_(True)
    logits = model.logits(inputs, k)  # [B, D, C]
    ranks = ranks_of(model.orderings[k])
    weights = torch.randn(logits.shape[0], model.levels, generator=torch.Generator().manual_seed(1))
    bad, used = [], 0
    for d in range(model.positions):
        (grad,) = torch.autograd.grad((logits[:, d] * weights).sum(), inputs, retain_graph=True)
        touched = grad.abs().amax((0, 2)) > 0  # [D]
        for q in range(model.positions):
            if touched[q] and ranks[q] >= ranks[d]:
                bad.append((d, q))
            elif touched[q]:
                used += 1
    return bad, used


@pytest.mark.parametrize("name", CONFIGS)
def test_causality_by_gradients_for_every_mask(name):
    model = build(CONFIGS[name])
    for k in range(model.num_masks):
        bad, used = leaks(model, k)
        assert bad == [], f"mask {k}: logits of position d depend on inputs (d, q) {bad}"
        # Not vacuous: positions do see earlier ones.
        assert used > 0


def test_causality_check_catches_a_leaking_mask():
    model = build(CONFIGS["deep-direct-ensemble"])
    layer = model.hidden[0]
    with torch.no_grad():
        # Let every unit of the first hidden layer of mask 1 see every input.
        layer.mask[1].fill_(True)
    assert leaks(model, 0)[0] == []
    assert leaks(model, 1)[0] != []


def test_masked_out_weights_have_no_effect():
    """Several masks share one dense weight and apply mask k functionally: the weights mask k
    cuts off may hold anything without changing network k."""
    model = build({"shape": [1, 2, 3], "levels": 3, "hidden": [12, 12], "direct": True,
                   "masks": 2, "ordering": "random"})
    flat = random_data(model, 8).reshape(8, -1)
    before = model.log_prob_components(flat)[0]
    with torch.no_grad():
        for layer in [*model.hidden, model.output, model.direct]:
            layer.weight[~layer.mask[0]] = 1e6
    after = model.log_prob_components(flat)[0]
    assert torch.allclose(before, after, atol=1e-4)


# --- one mask: only the live weights are parameters -----------------------------------------

SINGLE_MASK = {
    "deep-direct": {"shape": [1, 2, 3], "levels": 3, "hidden": [12, 9], "direct": True,
                    "ordering": "random"},
    "bernoulli-direct": {"shape": [1, 2, 3], "levels": 2, "hidden": [12], "direct": True},
    "lowrank-embedding": {"shape": [6], "levels": 5, "hidden": [10], "inputs": "embedding",
                          "embedding_dim": 3, "output_rank": 2},
    "direct-only": CONFIGS["direct-only"],
}


def masked_layers(model) -> dict:
    return model.masked_modules()


def packed_parts(model, tensor=None) -> dict:
    """Each one-mask layer's (live weights, bias) in ``tensor`` (``model.packed`` or its
    gradient), by layer name."""
    tensor = model.packed if tensor is None else tensor
    layers = masked_layers(model)
    segments = tensor.split([layer.segment_size for layer in layers.values()])
    return {name: layer.split(segment) for (name, layer), segment in zip(layers.items(), segments)}


def as_dense(model):
    """The same model with one dense weight per masked layer (the layout before packing):
    the packed weights scattered into place, the masked-out entries zero."""
    from zoo_made import model as made_model
    from zoo_made.layers import MaskedLinear

    original = made_model.PackedLinear
    made_model.PackedLinear = MaskedLinear
    try:
        dense = zoo.get_family("made").build(model.config)
    finally:
        made_model.PackedLinear = original
    assert dense.packed is None
    state = dict(model.state_dict())
    del state["packed"]
    for name, (weight, bias) in model.layer_weights(0).items():
        state[f"{name}.weight"] = weight.detach().clone()
        if bias is not None:
            state[f"{name}.bias"] = bias.detach().clone()
    dense.load_state_dict(state)
    return dense.train(model.training)


@pytest.mark.parametrize("name", SINGLE_MASK)
def test_one_mask_holds_only_the_weights_it_keeps(name):
    """Adam's second moment stays exactly 0 on a weight whose gradient is always 0, and sqrt
    of exact zeros is slow: a one-mask model keeps no such weight as a parameter. And an
    optimizer pays per parameter tensor: the masked layers' live weights and biases are one."""
    model = build(SINGLE_MASK[name])
    layers = masked_layers(model)
    assert layers
    dense = model.layer_weights(0)
    for prefix, (live, bias) in packed_parts(model).items():
        mask = layers[prefix].mask[0]
        assert live.shape == (int(mask.sum()),)
        assert f"{prefix}.weight" not in model.state_dict()
        assert not list(layers[prefix].parameters())
        weight = dense[prefix][0]
        assert torch.equal(weight[mask], live) and (weight[~mask] == 0).all()
        assert (bias is None) == (dense[prefix][1] is None)
        assert bias is None or torch.equal(bias, dense[prefix][1])
    # Every parameter is live: the dense count less exactly the masked-out entries.
    dead = sum(int((~layer.mask).sum()) for layer in layers.values())
    params = sum(p.numel() for p in model.parameters())
    assert params == model.config.sizes()[0] - dead
    others = [n for n, _ in model.named_parameters() if n != "packed"]
    assert not any(n.startswith(("hidden.", "output.", "direct.")) for n in others)


@pytest.mark.parametrize("name", SINGLE_MASK)
def test_packed_and_dense_layouts_give_the_same_log_prob_and_gradients(name):
    model = build(SINGLE_MASK[name])
    dense = as_dense(model)
    x = random_data(model, 16)
    packed_lp, dense_lp = model.log_prob(x), dense.log_prob(x)
    assert torch.equal(packed_lp, dense_lp)
    packed_lp.sum().backward()
    dense_lp.sum().backward()
    dense_layers = masked_layers(dense)
    for prefix, (live, bias) in packed_parts(model, model.packed.grad).items():
        other = dense_layers[prefix]
        assert torch.equal(live, other.weight.grad[other.mask[0]]), prefix
        # The dense layout's masked-out gradients are exactly the zeros packing leaves out.
        assert (other.weight.grad[~other.mask[0]] == 0).all()
        assert (bias is None) == (other.bias is None)
        assert bias is None or torch.equal(bias, other.bias.grad), prefix
    grads = {n: p.grad for n, p in dense.named_parameters()}
    for pname, p in model.named_parameters():
        if pname != "packed":
            assert torch.equal(p.grad, grads[pname]), pname


@pytest.mark.parametrize("block", [1 << 22, 7])
def test_packed_layers_draw_the_dense_layouts_initial_weights(monkeypatch, block):
    """The same seed gives the same model as before packing, also when a large layer's dense
    draw is made in blocks of rows (forced here by a small block)."""
    from zoo_made import layers

    monkeypatch.setattr(layers, "INIT_BLOCK", block)
    masks = torch.rand(1, 9, 5, generator=torch.Generator().manual_seed(0)) < 0.5
    torch.manual_seed(3)
    dense = layers.MaskedLinear(masks)
    torch.manual_seed(3)
    packed = layers.PackedLinear(masks)
    segment = torch.full((packed.segment_size,), math.nan)
    packed.init_segment(segment)
    live, bias = packed.split(segment)
    assert torch.equal(live, dense.weight[masks[0]])
    assert torch.equal(bias, dense.bias)


def old_layout_artifact(model, path, *, garbage: bool = False, dense: bool = True):
    """``model`` saved as earlier code wrote it: each masked layer's ``bias`` and its dense
    ``weight`` [out, in] (``dense``: before packing; masked-out entries zero or, with
    ``garbage``, anything), or its ``live_weight`` (packed layer by layer)."""
    path = zoo.save(model, path)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    del state["packed"]
    g = torch.Generator().manual_seed(9)
    for prefix, (weight, bias) in model.layer_weights(0).items():
        mask = masked_layers(model)[prefix].mask[0]
        weight = weight.detach().clone()
        if garbage:
            junk = torch.randn(weight.shape, generator=g) * 1e3
            weight = torch.where(mask, weight, junk)
        state[f"{prefix}.weight" if dense else f"{prefix}.live_weight"] = (
            weight if dense else weight[mask])
        if bias is not None:
            state[f"{prefix}.bias"] = bias.detach().clone()
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((path / "config.json").read_text())
    config["weights_sha256"] = sha256_file(path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize("layout", ["dense-zeros", "dense-garbage", "live-per-layer"])
@pytest.mark.parametrize("name", SINGLE_MASK)
def test_an_artifact_in_an_older_one_mask_layout_still_loads(tmp_path, name, layout):
    """Artifacts written before packing hold dense weights, later ones each layer's live
    weights; the family packs either on load (``upgrade_tensors``) into the same model:
    same log_prob, same samples."""
    model = build(SINGLE_MASK[name])
    path = old_layout_artifact(model, tmp_path / "old", garbage=layout == "dense-garbage",
                               dense=layout != "live-per-layer")
    stored = load_file(str(path / "model.safetensors"))
    assert "packed" not in stored
    loaded = zoo.load(path)
    x = random_data(model, 20)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert torch.equal(loaded.sample(10, generator=torch.Generator().manual_seed(0)),
                       model.sample(10, generator=torch.Generator().manual_seed(0)))


def test_an_older_layout_that_does_not_fit_is_refused(tmp_path):
    """A per-layer tensor of the wrong size is not packed: the load names what differs."""
    model = build(SINGLE_MASK["deep-direct"])
    path = old_layout_artifact(model, tmp_path / "old", dense=False)
    state = load_file(str(path / "model.safetensors"))
    state["output.live_weight"] = state["output.live_weight"][:-1]
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((path / "config.json").read_text())
    config["weights_sha256"] = sha256_file(path / "model.safetensors")
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="missing tensors.*packed"):
        zoo.load(path)


def test_a_dense_artifact_with_another_mask_is_refused(tmp_path):
    """Old weights are packed with the mask the config derives, and the file's own mask is
    still checked: a rewritten one is refused, naming it."""
    model = build(SINGLE_MASK["deep-direct"])
    with torch.no_grad():
        model.hidden[0].mask.fill_(True)
    path = old_layout_artifact(model, tmp_path / "old", garbage=True)
    with pytest.raises(ArtifactError, match="buffer 'hidden.0.mask' is not the one"):
        zoo.load(path)


# --- exact likelihood ----------------------------------------------------------------------


@pytest.mark.parametrize("config", [
    {"shape": [1, 2, 2], "levels": 3, "hidden": [16]},
    {"shape": [1, 2, 2], "levels": 3, "hidden": [16, 8], "masks": 4, "ordering": "random",
     "direct": True},
    {"shape": [4], "levels": 3, "hidden": [8], "masks": 3, "inputs": "embedding",
     "output_rank": 2},
], ids=["single-mask", "ensemble", "ensemble-embedding-lowrank"])
def test_probabilities_of_all_sequences_sum_to_one(config):
    model = build(config)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(all_inputs(model)).double(), 0).exp().item()
    assert abs(total - 1) < 1e-5


def test_ensemble_log_prob_is_log_mean_of_member_probabilities():
    model = build({"shape": [1, 2, 2], "levels": 3, "hidden": [16], "masks": 4,
                   "ordering": "random"})
    x = random_data(model, 16)
    members = model.log_prob_components(x.reshape(16, -1))
    assert members.shape == (4, 16)
    expected = torch.log(members.double().exp().mean(0))
    assert torch.allclose(model.log_prob(x).double(), expected, atol=1e-5)
    # The members are different models, so the mixture is not any one of them.
    assert (members[0] - members[1]).abs().max() > 0.1


def test_sample_mask_training_uses_one_member_per_batch():
    model = build({"shape": [1, 2, 2], "levels": 3, "hidden": [16], "masks": 3,
                   "ordering": "random", "mask_training": "sample"})
    x = random_data(model, 8)
    members = model.log_prob_components(x.reshape(8, -1))
    model.train()
    torch.manual_seed(0)
    picked = model.log_prob(x)
    assert any(torch.allclose(picked, m) for m in members)
    model.eval()
    assert torch.allclose(model.log_prob(x), torch.logsumexp(members, 0) - math.log(3))


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_levels(levels):
    config = {"shape": [1, 3, 3], "levels": levels, "hidden": [32], "inputs": "embedding",
              "embedding_dim": 4}
    model = build(config, scale=1.0)
    x = random_data(model, 4)
    lp = model.log_prob(x)
    assert lp.shape == (4,) and torch.isfinite(lp).all() and (lp < 0).all()
    s = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 3, 3) and s.dtype == torch.int64
    assert 0 <= s.min() and s.max() < levels


def test_dropout_only_while_training():
    model = build({"shape": [1, 2, 3], "levels": 3, "hidden": [32], "dropout": 0.5})
    x = random_data(model, 8)
    assert torch.equal(model.log_prob(x), model.log_prob(x))
    model.train()
    assert not torch.equal(model.log_prob(x), model.log_prob(x))


# --- sampling ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_naive_and_incremental_samplers_agree(name, temperature):
    model = build(CONFIGS[name])
    fast = model.sample(64, temperature=temperature, generator=torch.Generator().manual_seed(3))
    naive = model.sample_naive(64, temperature=temperature,
                               generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast, naive)
    other = model.sample(64, temperature=temperature, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(fast, other)


def test_samplers_agree_on_a_large_image():
    model = build({"shape": [1, 10, 10], "levels": 256, "hidden": [64, 64],
                   "inputs": "embedding", "embedding_dim": 4, "output_rank": 8,
                   "direct": True}, scale=1.0)
    fast = model.sample(6, generator=torch.Generator().manual_seed(0))
    naive = model.sample_naive(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fast, naive)


def test_samplers_agree_on_completion():
    model = build(CONFIGS["deep-direct-ensemble"])
    given = random_data(model, 32, seed=1)
    mask = torch.rand(32, *model.shape, generator=torch.Generator().manual_seed(2)) < 0.4
    # The clamp-and-draw samplers (zoo.infer.completion's fast path and proposal) agree.
    known = check_completion(given, mask, 32, model.shape, model.levels)
    fast = model.draw(32, 1.0, torch.Generator().manual_seed(5), known, fast=True)
    naive = model.draw(32, 1.0, torch.Generator().manual_seed(5), known, fast=False)
    assert torch.equal(fast, naive)


def test_low_temperature_gives_the_mode_path():
    model = build(CONFIGS["onehot"])
    a = model.sample(8, temperature=1e-6, generator=torch.Generator().manual_seed(0))
    b = model.sample(8, temperature=1e-6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, a[:1].expand_as(a))


def exact_distribution(model) -> tuple[torch.Tensor, torch.Tensor]:
    x = all_inputs(model)
    with torch.no_grad():
        return x, torch.softmax(model.log_prob(x).double(), 0)


def chi_square_p(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs * counts.sum()
    stat = ((counts - expected) ** 2 / expected).sum()
    dof = torch.tensor((len(probs) - 1) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(dof, stat / 2))


def flat_index(x: torch.Tensor, levels: int) -> torch.Tensor:
    flat = x.reshape(len(x), -1)
    powers = levels ** torch.arange(flat.shape[1] - 1, -1, -1)
    return (flat * powers).sum(1)


def test_ensemble_samples_follow_the_mixture(monkeypatch):
    model = build({"shape": [1, 2, 2], "levels": 3, "hidden": [16], "masks": 3,
                   "ordering": "random"})
    _, probs = exact_distribution(model)
    x = model.sample(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(flat_index(x, 3), minlength=81).double()
    assert chi_square_p(counts, probs) > 1e-4
    # The test has the power to see a sampler that draws from one member instead of the mixture.
    monkeypatch.setattr(type(model), "_choose_components",
                        lambda self, x, known, generator, device, terms=None: torch.zeros(
                            len(x), dtype=torch.long))
    x = model.sample(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(flat_index(x, 3), minlength=81).double()
    assert chi_square_p(counts, probs) < 1e-6


def test_completion_keeps_known_values():
    for name in CONFIGS:
        model = build(CONFIGS[name])
        given = random_data(model, 40, seed=1)
        mask = torch.rand(40, *model.shape, generator=torch.Generator().manual_seed(2)) < 0.5
        out = model.sample(40, generator=torch.Generator().manual_seed(3), given=given, mask=mask)
        assert torch.equal(out[mask], given[mask])
        # Unbatched given/mask broadcast to every sample.
        one = model.sample(5, generator=torch.Generator().manual_seed(3), given=given[0],
                           mask=mask[0])
        assert torch.equal(one[:, mask[0]], given[0][mask[0]].expand(5, -1))


def test_ensemble_completion_of_a_known_prefix_is_the_exact_conditional():
    """Natural order, three connectivities: the top row is a prefix of every member's order,
    so each sample picks its member with probability proportional to p_k(top row)."""
    model = build({"shape": [1, 2, 2], "levels": 3, "hidden": [16], "masks": 3}, scale=4.0)
    x, probs = exact_distribution(model)
    top = torch.tensor([[2, 0]])
    rows = (x[:, 0, 0] == top).all(1)
    conditional = probs[rows] / probs[rows].sum()  # over the 9 bottom rows, in raster order
    given = torch.zeros(1, 2, 2, dtype=torch.long)
    given[0, 0] = top
    mask = torch.zeros(1, 2, 2, dtype=torch.bool)
    mask[0, 0] = True
    out = model.sample(20000, generator=torch.Generator().manual_seed(0), given=given, mask=mask)
    counts = torch.bincount(flat_index(out[:, 0, 1], 3), minlength=9).double()
    assert chi_square_p(counts, conditional) > 1e-4
    # Picking the member uniformly instead would be detectably wrong for this model.
    flat = x[rows].reshape(9, -1)
    with torch.no_grad():
        members = model.log_prob_components(flat).double()  # log p_k(top, bottom)
    uniform = (members - torch.logsumexp(members, 1, keepdim=True)).exp().mean(0)
    assert chi_square_p(uniform * 20000, conditional) < 1e-4


def test_completion_with_everything_known_returns_the_input():
    model = build(CONFIGS["deep-direct-ensemble"])
    given = random_data(model, 3)
    out = model.sample(3, given=given, mask=torch.ones_like(given, dtype=torch.bool))
    assert torch.equal(out, given)


def test_sampling_arguments_are_checked():
    model = build(CONFIGS["onehot"])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            model.sample(bad)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(ValueError):
            model.sample(2, temperature=bad)
    with pytest.raises(ValueError, match="both"):
        model.sample(2, given=random_data(model, 2))
    with pytest.raises(ValueError):
        model.sample(2, given=random_data(model, 2) + 5,
                     mask=torch.ones(2, *model.shape, dtype=torch.bool))


# --- persistence and input checks --------------------------------------------------------


def test_save_load_gives_identical_log_prob_and_samples(tmp_path):
    config = {"shape": [1, 2, 3], "levels": 3, "hidden": [12, 12], "masks": 2,
              "ordering": "random", "direct": True, "seed": 7}
    model = build(config)
    x = random_data(model, 20)
    # Another global random state at load: the orderings come from the config's seed.
    torch.manual_seed(123)
    loaded = zoo.load(zoo.save(model, tmp_path / "made"))
    assert torch.equal(loaded.orderings, model.orderings)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    assert torch.equal(loaded.sample(10, generator=torch.Generator().manual_seed(0)),
                       model.sample(10, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("head, missing, then", [
    ("categorical", ["head", "bit_inputs"], {"head": "categorical"}),
    ("bernoulli", ["bit_inputs"], {"head": "bernoulli", "bit_inputs": "binary"}),
])
def test_an_artifact_older_than_a_config_key_keeps_its_meaning(tmp_path, head, missing, then):
    """Artifacts written before ``head`` (then ``bit_inputs``) existed lack the key; today's
    defaults (one Bernoulli logit, signed bits) would be another model: the old two-logit
    one would not load, an old Bernoulli one would load and give other numbers."""
    config = {"shape": [1, 2, 3], "levels": 2, "hidden": [12], **then}
    model = build(config)
    path = zoo.save(model, tmp_path / "old-made")
    config_file = path / "config.json"
    stored = json.loads(config_file.read_text())
    for key in missing:
        del stored["config"][key]
    config_file.write_text(json.dumps(stored))
    loaded = zoo.load(path)
    assert {k: getattr(loaded.config, k) for k in then} == then
    x = random_data(model, 20)
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))


def test_masks_other_than_the_configs_are_refused_on_load(tmp_path):
    """The masks and orderings of another seed are another model: the file must hold the
    ones its config derives (tests/artifact/test_derived_buffers.py has the hostile versions)."""
    config = {"shape": [1, 2, 3], "levels": 3, "hidden": [12, 12], "masks": 2,
              "ordering": "random", "direct": True}
    model = build(config)
    other = build({**config, "seed": 7})
    with torch.no_grad():
        for name, buf in other.named_buffers():
            model.get_buffer(name).copy_(buf)
    path = zoo.save(model, tmp_path / "made")
    with pytest.raises(ArtifactError, match="buffer 'orderings' is not the one its config"):
        zoo.load(path)


@pytest.mark.parametrize("bad, match", [
    (lambda x: x.float(), "integer"),
    (lambda x: x.bool(), "integer"),
    (lambda x: x + 3, r"0\.\.2"),
    (lambda x: x - 2, r"0\.\.2"),
    (lambda x: x.reshape(4, 6), r"\[B, 1, 2, 3\]"),
    (lambda x: x[:, 0], r"\[B, 1, 2, 3\]"),
    (lambda x: x.tolist(), "torch.Tensor"),
])
def test_bad_input_is_a_value_error_that_says_what_was_expected(bad, match):
    model = build(CONFIGS["onehot"])
    x = torch.ones(4, 1, 2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=match):
        model.log_prob(bad(x))


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config, match", [
    ({"shape": [1, 8, 8]}, "levels"),
    ({"shape": [1, 8, 8], "levels": 17, "width": 3}, "unknown key 'width'"),
    ({"shape": [1, 8, 8], "levels": 1}, "levels"),
    ({"shape": [1, 8, 8], "levels": 17, "hidden": []}, "direct"),
    ({"shape": [1, 8, 8], "levels": 17, "hidden": [0]}, "hidden"),
    ({"shape": [1, 8, 8], "levels": 17, "output_rank": 17}, "output_rank"),
    ({"shape": [1, 8, 8], "levels": 3, "head": "bernoulli"}, "bernoulli models two levels"),
    ({"shape": [1, 8, 8], "levels": 2, "head": "bernoulli", "output_rank": 1}, "output_rank"),
    ({"shape": [1, 8, 8], "levels": 17, "masks": 2, "connectivity": "even"}, "same"),
    ({"shape": [1, 8, 8], "levels": 17, "ordering": "spiral"}, "ordering"),
    ({"shape": [1, 8, 8], "levels": 17, "dropout": 1.0}, "dropout"),
    ({"shape": [0, 8], "levels": 17}, "shape"),
    ({"shape": [1, 28, 28], "levels": 256, "hidden": [8192, 8192]}, "parameters"),
    ({"shape": [1, 1 << 15, 1 << 15], "levels": 2}, "shape"),
    ({"shape": [1, 28, 28], "levels": 256, "hidden": [1000], "inputs": "embedding",
      "output_rank": 8, "masks": 64, "direct": True}, "mask entries"),
])
def test_bad_configs_are_refused_before_allocation(config, match):
    with pytest.raises(ConfigError, match=match):
        zoo.get_family("made").build(config)


@pytest.mark.parametrize("config", [
    *CONFIGS.values(),
    {"shape": [1, 7, 7], "levels": 9, "hidden": [20, 20], "inputs": "embedding",
     "embedding_dim": 4, "output_rank": 3},
    {"shape": [1, 3, 3], "levels": 5, "hidden": [8], "output_rank": 2, "direct": True},
    {"shape": [1, 3, 3], "levels": 5, "hidden": [], "output_rank": 2, "direct": True},
    {"shape": [1, 3, 3], "levels": 5, "hidden": [], "direct": True},
])
def test_sizes_counts_exactly_the_parameters_the_model_has(config):
    """``sizes()`` counts the dense layout (the limits are checked before any mask is
    drawn); a one-mask model holds all of it but the masked-out weights."""
    model = zoo.get_family("made").build(config)
    dead = 0
    if model.num_masks == 1:
        dead = sum(int((~layer.mask).sum()) for layer in masked_layers(model).values())
    assert model.config.sizes()[0] == sum(p.numel() for p in model.parameters()) + dead


def test_bernoulli_head_has_one_logit_and_one_input_per_position():
    # 64 positions, 512 hidden units: 64*512 + 512 + 512*64 + 64 weights and biases, half of
    # what a two-logit head with one-hot inputs needs.
    made = zoo.get_family("made")
    bernoulli = made.build({"shape": [1, 8, 8], "levels": 2, "hidden": [512], "head": "bernoulli"})
    softmax = made.build({"shape": [1, 8, 8], "levels": 2, "hidden": [512], "head": "categorical"})
    assert bernoulli.config.sizes()[0] == 66_112
    assert softmax.config.sizes()[0] == 131_712
    x = torch.randint(2, (4, 1, 8, 8))
    logits = bernoulli.conditional_logits(x)
    assert logits.shape == (4, 2, 1, 8, 8) and torch.equal(logits[:, 0], torch.zeros(4, 1, 8, 8))
    expected = torch.log_softmax(logits, 1).gather(1, x[:, None]).sum((1, 2, 3, 4))
    assert torch.allclose(bernoulli.log_prob(x), expected, atol=1e-5)


def test_head_auto_is_bernoulli_for_two_levels_with_a_full_output_only():
    made = zoo.get_family("made")
    assert made.build({"shape": [4], "levels": 2}).bernoulli
    assert not made.build({"shape": [4], "levels": 3}).bernoulli
    assert not made.build({"shape": [4], "levels": 2, "output_rank": 1}).bernoulli
    assert not made.build({"shape": [4], "levels": 2, "head": "categorical"}).bernoulli


def test_defaults_give_a_complete_model():
    model = zoo.get_family("made").build({"shape": [1, 2, 2], "levels": 3})
    assert model.log_prob(torch.zeros(2, 1, 2, 2, dtype=torch.long)).shape == (2,)
    assert {"orderings", "hidden.0.mask", "output.mask"} <= set(model.state_dict())


def test_trains_with_the_generic_trainer():
    from zoo.catalog.recipe import Recipe
    from zoo.training.loop import maximise_likelihood

    model = zoo.get_family("made").build({"shape": [1, 4, 4], "levels": 5, "hidden": [32],
                                          "masks": 2, "ordering": "random",
                                          "mask_training": "sample", "dropout": 0.1})
    g = torch.Generator().manual_seed(0)
    # A learnable source: each row repeats one random level.
    data = torch.randint(5, (256, 1, 4, 1), generator=g).expand(256, 1, 4, 4).contiguous()
    before = -model.log_prob(data).mean().item()
    recipe = Recipe(steps=150, batch_size=64, lr=1e-2, val_fraction=0.1, eval_every=50)
    result = maximise_likelihood(model, zoo.get_dataset("digits"), recipe, train_data=data, progress=False)
    after = -model.log_prob(data).mean().item()
    assert after < before - 5 and result.val_nll is not None
