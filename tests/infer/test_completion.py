"""Completion answers the question asked: samples of the exact ``p(unknown | known)``.

Every tiny model below has its weights scaled up until knowing part of the image changes the
distribution of the rest by a total variation of at least 0.2 (checked first, in each
test): near-independent models cannot tell a right sampler from a wrong one. The exact
conditional comes from enumerating ``log_prob`` over every image.
"""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch
from cli_run import run

import zoo
from zoo.checks import check_completion
from zoo.cli.sample_files import known_region
from zoo.infer.completion import DEFAULT_SWEEPS, complete, declared_orders, known_is_prefix

#: Tiny models of every discrete family and variant: (family, config, weight scale).
TINY = {
    "made-natural": ("made", {"shape": [1, 2, 2], "levels": 3, "hidden": [16]}, 3.0),
    "made-random-order": ("made", {"shape": [1, 2, 2], "levels": 3, "hidden": [16],
                                   "ordering": "random", "seed": 1}, 3.0),
    "made-ensemble": ("made", {"shape": [1, 2, 2], "levels": 3, "hidden": [16],
                               "ordering": "random", "masks": 3}, 3.0),
    "made-3x3-binary-ensemble": ("made", {"shape": [1, 3, 3], "levels": 2, "hidden": [24],
                                          "ordering": "random", "masks": 2}, 3.0),
    "pixelcnn-plain": ("pixelcnn", {"shape": [1, 2, 2], "levels": 3, "variant": "plain",
                                    "channels": 8, "layers": 1, "first_kernel": 3,
                                    "head_channels": 8}, 3.0),
    "pixelcnn-gated": ("pixelcnn", {"shape": [1, 2, 2], "levels": 3, "variant": "gated",
                                    "channels": 8, "layers": 1, "first_kernel": 3,
                                    "head_channels": 8}, 3.0),
}
REGIONS = ("top-half", "bottom-half", "left-half", "right-half", "scattered")
SAMPLES = 2000
MIN_P_VALUE = 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@functools.cache
def tiny(name: str):
    family, config, scale = TINY[name]
    torch.manual_seed(0)
    model = zoo.get_family(family).build(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def region(shape: tuple[int, ...], name: str) -> torch.Tensor:
    if name != "scattered":
        return known_region(shape, name)
    flat = torch.zeros(math.prod(shape), dtype=torch.bool)
    flat[[0, len(flat) - 1]] = True  # first and last pixel: a prefix of no order here
    if len(flat) > 4:
        flat[4] = True
    return flat.reshape(shape)


def every_image(model) -> torch.Tensor:
    shape, levels = tuple(model.config.shape), model.config.levels
    values = itertools.product(range(levels), repeat=math.prod(shape))
    return torch.tensor(list(values)).reshape(-1, *shape)


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    return 0.5 * float((p - q).abs().sum())


def hard_case(model, mask: torch.Tensor, temperature: float = 1.0):
    """The known values whose conditional differs most from the unknown part's marginal.

    Returns (given image, the candidate completions [M, D] in a fixed order, their exact
    conditional probabilities, TV(conditional, marginal)).
    """
    x = every_image(model)
    with torch.no_grad():
        probs = torch.softmax(model.log_prob(x).double() / temperature, 0)
    flat, known = x.reshape(len(x), -1), mask.reshape(-1)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(flat[:, known].tolist()):
        groups.setdefault(tuple(row), []).append(i)
    marginal = sum(probs[rows] for rows in groups.values())
    best = max(groups, key=lambda k: total_variation(
        probs[groups[k]] / probs[groups[k]].sum(), marginal))
    rows = groups[best]
    conditional = probs[rows] / probs[rows].sum()
    return x[rows[0]], flat[rows], conditional, total_variation(conditional, marginal)


def chi_square_p(samples: torch.Tensor, candidates: torch.Tensor,
                 probs: torch.Tensor) -> float:
    """p-value of the samples' counts over ``candidates`` against ``probs`` (pooling
    the cells expected below 5 into one)."""
    index = {tuple(row): j for j, row in enumerate(candidates.tolist())}
    counts = torch.zeros(len(candidates), dtype=torch.float64)
    for row in samples.reshape(len(samples), -1).tolist():
        counts[index[tuple(row)]] += 1  # a KeyError here: a known value was not kept
    expected = probs * counts.sum()
    small = expected < 5
    if small.any():
        counts = torch.cat([counts[~small], counts[small].sum().reshape(1)])
        expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    stat = ((counts - expected) ** 2 / expected).sum()
    dof = torch.tensor((len(counts) - 1) / 2, dtype=torch.float64)
    return float(torch.special.gammaincc(dof, stat / 2))


def clamp_and_draw(model, n: int, given, mask, generator) -> torch.Tensor:
    """Yesterday's completion: clamp the known values, draw the rest in the model's order."""
    known = check_completion(given, mask, n, model.shape, model.levels)
    return model.draw(n, 1.0, generator, known, fast=True)


# --- exactness ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", REGIONS)
@pytest.mark.parametrize("name", list(TINY))
def test_completion_follows_the_exact_conditional(name, where):
    model = tiny(name)
    mask = region(tuple(model.config.shape), where)
    given, candidates, conditional, power = hard_case(model, mask)
    assert power >= 0.2, f"the test has no power: conditioning moves the rest by TV {power:.3f}"
    out = model.sample(SAMPLES, given=given, mask=mask, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[:, mask], given[mask].expand(SAMPLES, -1))
    assert chi_square_p(out, candidates, conditional) > MIN_P_VALUE


@pytest.mark.parametrize("name, where", [
    ("pixelcnn-gated", "bottom-half"), ("pixelcnn-gated", "scattered"),
    ("pixelcnn-plain", "bottom-half"), ("pixelcnn-plain", "right-half"),
    ("made-natural", "bottom-half"), ("made-natural", "scattered"),
    ("made-random-order", "top-half"), ("made-ensemble", "scattered"),
    ("made-3x3-binary-ensemble", "top-half"),
])
def test_clamp_and_draw_fails_the_same_test(name, where):
    """The chi-square test above rejects the old sampler: it has the power to catch it."""
    model = tiny(name)
    mask = region(tuple(model.config.shape), where)
    given, candidates, conditional, _ = hard_case(model, mask)
    out = clamp_and_draw(model, SAMPLES, given, mask, torch.Generator().manual_seed(1))
    assert chi_square_p(out, candidates, conditional) < 1e-8


def test_pixelcnn_bottom_half_now_depends_on_the_given_bottom():
    """The issue's reproduction: two bottoms, the same seed, identical tops before."""
    model = tiny("pixelcnn-gated")
    mask = region((1, 2, 2), "bottom-half")
    a = torch.tensor([[[0, 0], [0, 0]]])
    b = torch.tensor([[[0, 0], [2, 2]]])
    tops = [model.sample(500, given=g, mask=mask, generator=torch.Generator().manual_seed(3))
            [:, 0, 0].float().mean() for g in (a, b)]
    assert abs(tops[0] - tops[1]) > 0.2
    old = [clamp_and_draw(model, 200, g, mask, torch.Generator().manual_seed(3))[:, :, 0]
           for g in (a, b)]
    assert torch.equal(old[0], old[1])


def test_default_sweeps_reach_total_variation_002_exactly():
    """The chain's exact distribution after DEFAULT_SWEEPS (start and kernel enumerated, no
    sampling noise) is within 0.02 of the conditional, for every tiny model and region."""
    from benchmarks.bench_completion import exact_gibbs_tv

    worst = 0.0
    for name in TINY:
        model = tiny(name)
        for where in REGIONS:
            mask = region(tuple(model.config.shape), where)
            given, *_ = hard_case(model, mask)
            worst = max(worst, exact_gibbs_tv(model, given, mask, [DEFAULT_SWEEPS])[0])
    assert worst <= 0.02


# --- which method, and the record -----------------------------------------------------------


def test_a_known_prefix_uses_the_ancestral_sampler_and_says_so():
    model = tiny("pixelcnn-gated")
    mask = region((1, 2, 2), "top-half")
    given = torch.zeros(1, 2, 2, dtype=torch.long)
    done = complete(model, given, mask, 5, generator=torch.Generator().manual_seed(0))
    assert done.record.method == "ancestral" and done.record.sweeps == 0
    assert "come first" in done.record.line()
    other = complete(model, given, region((1, 2, 2), "bottom-half"), 5)
    assert other.record.method == "gibbs" and other.record.sweeps == DEFAULT_SWEEPS
    assert other.record.positions == 2 and "not a prefix" in other.record.line()
    assert "Gibbs sweeps over 2 unknown positions" in other.record.line()


def test_ensemble_prefix_means_a_prefix_of_every_members_order():
    model = tiny("made-ensemble")
    orders = declared_orders(model)
    assert orders.shape == (3, 4)
    first = torch.zeros(1, 4, dtype=torch.bool)
    first[0, orders[0, 0]] = True
    shared = bool((orders[:, 0] == orders[0, 0]).all())
    assert bool(known_is_prefix(first, orders)[0]) == shared
    assert bool(known_is_prefix(torch.zeros(1, 4, dtype=torch.bool), orders)[0])
    assert bool(known_is_prefix(torch.ones(1, 4, dtype=torch.bool), orders)[0])


def test_per_example_masks_mix_methods_and_each_row_is_exact():
    model = tiny("made-natural")
    top, bottom = region((1, 2, 2), "top-half"), region((1, 2, 2), "bottom-half")
    cases = [hard_case(model, m) for m in (top, bottom)]
    n = 2 * SAMPLES
    given = torch.stack([cases[i % 2][0] for i in range(n)])
    mask = torch.stack([(top, bottom)[i % 2] for i in range(n)])
    done = complete(model, given, mask, generator=torch.Generator().manual_seed(4))
    assert done.record.rows == {"ancestral": SAMPLES, "gibbs": SAMPLES}
    assert done.record.method == "ancestral+gibbs"
    for i, (_, candidates, conditional, power) in enumerate(cases):
        assert power >= 0.2
        assert chi_square_p(done.samples[i::2], candidates, conditional) > MIN_P_VALUE


def test_temperature_targets_the_tempered_conditional():
    model = tiny("made-natural")
    mask = region((1, 2, 2), "top-half")
    given, candidates, conditional, _ = hard_case(model, mask, temperature=0.5)
    done = complete(model, given, mask, SAMPLES, temperature=0.5,
                    generator=torch.Generator().manual_seed(2))
    assert done.record.method == "gibbs"  # the ancestral path tempers each step instead
    assert chi_square_p(done.samples, candidates, conditional) > MIN_P_VALUE


def test_forcing_ancestral_on_a_non_prefix_is_refused():
    model = tiny("made-natural")
    with pytest.raises(ValueError, match="exact only when the known values come first"):
        complete(model, torch.zeros(1, 2, 2, dtype=torch.long), region((1, 2, 2), "bottom-half"),
                 method="ancestral")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="sweeps"):
            complete(model, torch.zeros(1, 2, 2, dtype=torch.long), region((1, 2, 2), "top-half"),
                     sweeps=bad)


def test_completion_of_a_continuous_model_is_refused_by_the_discrete_path():
    flow = zoo.get_family("realnvp").build({"shape": [2]})
    with pytest.raises(ValueError, match="discrete"):
        complete(flow, torch.zeros(2), torch.tensor([True, False]))


# --- a family that declares nothing but log_prob --------------------------------------------


class Table(zoo.ZooModel):
    """A third-party model with no order and no conditionals: a table of log-probabilities."""

    def __init__(self, shape, levels, seed):
        super().__init__()
        self.config = type("Config", (), {"shape": shape, "levels": levels})()
        count = levels ** math.prod(shape)
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(torch.randn(count, generator=g, dtype=torch.float64) * 2)
        self.powers = levels ** torch.arange(math.prod(shape) - 1, -1, -1)

    def log_prob(self, x):
        index = (x.reshape(len(x), -1) * self.powers).sum(1)
        return torch.log_softmax(self.table, 0)[index]

    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        raise NotImplementedError


def test_a_model_with_only_log_prob_is_completed_exactly_by_gibbs():
    model = Table((1, 3, 3), 2, seed=5).eval()
    assert declared_orders(model) is None
    mask = region((1, 3, 3), "scattered")
    given, candidates, conditional, power = hard_case(model, mask)
    assert power >= 0.2
    done = complete(model, given, mask, SAMPLES, generator=torch.Generator().manual_seed(6))
    assert done.record.method == "gibbs" and "declares no generation order" in done.record.reason
    assert chi_square_p(done.samples, candidates, conditional) > MIN_P_VALUE


# --- the command line -----------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path):
    """A tiny MADE (8x8 would be slow: 4x4, 3 levels) saved as an artifact directory, and a
    given image."""
    import numpy as np

    torch.manual_seed(0)
    model = zoo.get_family("made").build({"shape": [1, 4, 4], "levels": 3, "hidden": [16]})
    path = zoo.save(model, tmp_path / "tiny-made")
    np.save(tmp_path / "given.npy", np.arange(16).reshape(1, 4, 4) % 3)
    return path, tmp_path / "given.npy"


def run_cli(*args, code=0):
    from click.testing import CliRunner

    return run(CliRunner(), *args, code=code).output


def test_cli_writes_given_mask_and_completions_side_by_side(stored, tmp_path):
    import numpy as np
    from PIL import Image

    model_dir, given = stored
    out = tmp_path / "grid.png"
    text = run_cli("sample", model_dir, "--complete", given, "--keep", "bottom-half", "-n", 8,
                   "-o", out, "--seed", 1, "--sweeps", 2)
    assert text.splitlines()[0].startswith("completion: gibbs; 2 Gibbs sweeps over 8 unknown")
    with Image.open(out) as img:
        assert img.width >= 512 and img.width > 4 * img.height  # one row of ten panels
        drawn = np.array(img.convert("RGB"))
    # The picture is zoo.pictures' labelled panels of given, mask, completions, in order:
    # the same seed to .npy gives the completions it shows.
    from zoo.cli.completion_files import picture

    run_cli("sample", model_dir, "--complete", given, "--keep", "bottom-half", "-n", 8,
            "-o", tmp_path / "same.npy", "--seed", 1, "--sweeps", 2)
    samples = torch.as_tensor(np.load(tmp_path / "same.npy"))
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[:, 2:] = True
    expected = picture(torch.as_tensor(np.load(given)), mask, samples, 3)
    assert np.array_equal(np.array(expected.convert("RGB")), drawn)
    wrong = picture(torch.as_tensor(np.load(given)), ~mask, samples, 3)
    assert not np.array_equal(np.array(wrong.convert("RGB")), drawn)
    text = run_cli("sample", model_dir, "--complete", given, "-n", 2, "-o", tmp_path / "a.npy")
    assert text.startswith("completion: ancestral")  # top half known: the fast path


def test_cli_keep_mask_png(stored, tmp_path):
    import numpy as np
    from PIL import Image

    model_dir, given = stored
    mask = np.zeros((4, 4), np.uint8)
    mask[::2, ::2] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    run_cli("sample", model_dir, "--complete", given, "--keep-mask", tmp_path / "mask.png",
            "-n", 3, "-o", tmp_path / "out.npy", "--sweeps", 1)
    out = torch.as_tensor(np.load(tmp_path / "out.npy"))
    known = torch.as_tensor(mask > 0)
    assert torch.equal(out[:, 0][:, known], torch.as_tensor(np.load(given))[0][known].expand(3, -1))


@pytest.mark.parametrize("extra, words", [
    (["--keep", "top-half", "--keep-mask", "MASK"], "either --keep or --keep-mask"),
    (["--keep-mask", "GIVEN"], "cannot read a mask from given.npy"),
])
def test_cli_completion_errors_are_one_line(stored, tmp_path, extra, words):
    from PIL import Image

    model_dir, given = stored
    Image.new("L", (4, 4)).save(tmp_path / "m.png")
    extra = [str(tmp_path / "m.png") if a == "MASK" else a for a in extra]
    extra = [str(tmp_path / "m.bmp") if a == "GIVEN" else a for a in extra]
    (tmp_path / "m.bmp").write_bytes(b"x")
    text = run_cli("sample", model_dir, "--complete", given, *extra, "-o", tmp_path / "x.png",
                   code=1)
    assert words.replace("given.npy", "m.bmp") in text and len(text.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_complete_help_lists_the_formats_it_reads(stored, tmp_path):
    text = " ".join(run_cli("sample", "--help").split())
    assert ".safetensors of levels" in text and ".pt" not in text.split("--complete")[1][:120]
    model_dir, _ = stored
    (tmp_path / "img.pt").write_bytes(b"x")
    out = run_cli("sample", model_dir, "--complete", tmp_path / "img.pt", code=1)
    assert "use .png, .npy or .safetensors" in out


def test_cli_refuses_completion_of_a_continuous_model(tmp_path):
    import numpy as np

    flow = zoo.get_family("realnvp").build({"shape": [2]})
    path = zoo.save(flow, tmp_path / "flow")
    np.save(tmp_path / "x.npy", np.zeros(2, dtype=np.int64))
    out = run_cli("sample", path, "--complete", tmp_path / "x.npy", code=1)
    assert "realnvp models continuous data" in out and "not supported" in out
