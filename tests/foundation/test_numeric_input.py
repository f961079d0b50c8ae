"""Bad numbers in, clear errors out: for every installed family, ``log_prob`` refuses NaN, inf,
wrong dtypes, wrong shapes and out-of-range values with a ValueError (never a silent NaN),
and ``sample`` refuses a non-positive temperature or sample count.

The families are the ones installed when the tests run: realnvp today, made and pixelcnn as
their plugins land, any third-party family too. Each gets the tiny model its config allows
(``shape`` plus ``levels`` for discrete data), saved and loaded back as an artifact.
"""

from __future__ import annotations

import math

import faultkit
import pytest
import torch

import zoo
from zoo.plugin.registry import registry

CONTINUOUS_SHAPE = [2]
DISCRETE_SHAPE, LEVELS = [1, 2, 2], 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def installed(kind: str) -> list[str]:
    reg = registry()
    return [n for n in reg.names("families") if reg.get("families", n).obj.data_kind == kind]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, str]:
    """Per family, the path of a tiny artifact with non-trivial weights (built once)."""
    folder = tmp_path_factory.mktemp("numeric")
    paths = {}
    for name in installed("continuous") + installed("discrete"):
        family = zoo.get_family(name)
        torch.manual_seed(0)
        model = family.build(tiny_config(family))
        with torch.no_grad():  # zero-initialised output layers would make all inputs alike
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
        paths[name] = str(zoo.save(model, folder / name))
    return paths


def tiny_config(family) -> dict:
    if family.data_kind == "continuous":
        return {"shape": CONTINUOUS_SHAPE}
    return {"shape": DISCRETE_SHAPE, "levels": LEVELS}


@pytest.fixture
def tiny(artifacts):
    """``tiny(family)``: the family's tiny model, loaded from its artifact (eval mode)."""
    return lambda name: zoo.load(artifacts[name])


def valid_batch(model, n: int = 4) -> torch.Tensor:
    if getattr(model.config, "levels", None) is not None:  # realnvp has the field, unset
        return torch.randint(0, LEVELS, (n, *DISCRETE_SHAPE))
    return torch.randn(n, *CONTINUOUS_SHAPE)


def continuous_bad_inputs() -> dict[str, object]:
    x = torch.zeros(3, *CONTINUOUS_SHAPE)
    nan, pinf, ninf = x.clone(), x.clone(), x.clone()
    nan[1, 0], pinf[0, 1], ninf[2, 0] = math.nan, math.inf, -math.inf
    wide = torch.zeros(2, *CONTINUOUS_SHAPE, dtype=torch.float64)
    wide[0, 0] = 1e300  # finite in float64, inf once the model computes in float32
    return {
        "nan": nan, "+inf": pinf, "-inf": ninf, "beyond float32": wide,
        "int64": torch.zeros(3, *CONTINUOUS_SHAPE, dtype=torch.int64),
        "bool": torch.zeros(3, *CONTINUOUS_SHAPE, dtype=torch.bool),
        "complex": torch.zeros(3, *CONTINUOUS_SHAPE, dtype=torch.complex64),
        "one example without batch dim": torch.zeros(*CONTINUOUS_SHAPE),
        "wrong width": torch.zeros(3, CONTINUOUS_SHAPE[0] + 1),
        "extra dim": torch.zeros(3, *CONTINUOUS_SHAPE, 1),
        "a list": [[0.0] * CONTINUOUS_SHAPE[0]],
        "a numpy array": torch.zeros(3, *CONTINUOUS_SHAPE).numpy(),
    }


def discrete_bad_inputs() -> dict[str, object]:
    x = torch.zeros(3, *DISCRETE_SHAPE, dtype=torch.int64)
    low, high, huge = x.clone(), x.clone(), x.clone()
    low[0, 0, 0, 0], high[1, 0, 1, 1], huge[2, 0, 0, 1] = -1, LEVELS, 2**62
    nan = torch.zeros(3, *DISCRETE_SHAPE)
    nan[0, 0, 0, 0] = math.nan
    return {
        "value -1": low, "value = levels": high, "value 2^62": huge,
        "float": torch.zeros(3, *DISCRETE_SHAPE), "float with nan": nan,
        "bool": torch.zeros(3, *DISCRETE_SHAPE, dtype=torch.bool),
        "complex": torch.zeros(3, *DISCRETE_SHAPE, dtype=torch.complex64),
        "no batch dim": torch.zeros(*DISCRETE_SHAPE, dtype=torch.int64),
        "wrong size": torch.zeros(3, 1, 3, 3, dtype=torch.int64),
        "missing channel": torch.zeros(3, *DISCRETE_SHAPE[1:], dtype=torch.int64),
        "a list": [[[[0, 1], [1, 0]]]],
    }


BAD_TEMPERATURES = [0, 0.0, -1.0, -1e-9, math.nan, math.inf, -math.inf, True, "1", None]
BAD_COUNTS = [0, -1, 1.5, True, "3", None, 2.0]


def test_some_family_is_installed():
    assert installed("continuous") or installed("discrete")


@pytest.mark.parametrize("family", installed("continuous"))
def test_continuous_log_prob_refuses_bad_input(family, tiny):
    model = tiny(family)
    good = model.log_prob(valid_batch(model))
    assert good.shape == (4,) and torch.isfinite(good).all()
    for what, x in continuous_bad_inputs().items():
        with pytest.raises(ValueError) as info:
            model.log_prob(x)
        assert str(info.value), what


@pytest.mark.parametrize("family", installed("discrete"))
def test_discrete_log_prob_refuses_bad_input(family, tiny):
    model = tiny(family)
    good = model.log_prob(valid_batch(model))
    assert good.shape == (4,) and torch.isfinite(good).all()
    for what, x in discrete_bad_inputs().items():
        with pytest.raises(ValueError) as info:
            model.log_prob(x)
        assert str(info.value), what


@pytest.mark.parametrize("family", installed("continuous"))
def test_huge_finite_input_is_an_error_or_a_number_never_nan(family, tiny):
    """Values inside float32 that overflow inside the model: a ValueError, or -inf, never NaN."""
    model = tiny(family)
    for value in (1e10, 1e20, 1e30, 3e38, -3e38):
        x = torch.full((2, *CONTINUOUS_SHAPE), value)
        x[1, 0] = 0.0
        try:
            out = model.log_prob(x)
        except ValueError as exc:
            assert "NaN" in str(exc) or "range" in str(exc)
        else:
            assert not torch.isnan(out).any(), (value, out)


@pytest.mark.parametrize("family", installed("continuous") + installed("discrete"))
def test_sampling_refuses_bad_temperature_and_count(family, tiny):
    model = tiny(family)
    assert len(model.sample(2, generator=torch.Generator().manual_seed(0))) == 2
    for temperature in BAD_TEMPERATURES:
        with pytest.raises(ValueError, match="temperature"):
            model.sample(2, temperature=temperature)
    for n in BAD_COUNTS:
        with pytest.raises(ValueError, match="samples"):
            model.sample(n)


@pytest.mark.parametrize("family", installed("continuous") + installed("discrete"))
def test_a_freshly_built_model_checks_too(family):
    """Not only loaded models: a model straight from ``build`` (train mode) refuses as well."""
    fam = zoo.get_family(family)
    model = fam.build(tiny_config(fam))
    bad = (continuous_bad_inputs()["nan"] if fam.data_kind == "continuous"
           else discrete_bad_inputs()["value = levels"])
    with pytest.raises(ValueError):
        model.log_prob(bad)
    with pytest.raises(ValueError):
        model.sample(0)


@pytest.mark.parametrize("family", installed("continuous") + installed("discrete"))
def test_cli_sample_refuses_bad_count_and_temperature(family, artifacts, cli_runner, tmp_path):
    from zoo.cli.commands import cli

    for args, word in ((["-n", "0"], "samples"), (["-n", "-3"], "samples"),
                       (["-t", "0"], "temperature"), (["-t", "-1"], "temperature"),
                       (["-t", "nan"], "temperature")):
        out = tmp_path / "samples.pt"
        result = cli_runner.invoke(cli, ["sample", artifacts[family], "-o", str(out), *args])
        assert result.exit_code != 0, args
        assert word in result.output and "Traceback" not in result.output, result.output
        assert not out.exists()


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for the cases of this module, written once its tests have
    run (a fixture, not a test: it asserts nothing; ``benchmarks/guarantees.py`` prints the
    table only from a run in which every test passed)."""
    yield
    continuous, discrete = installed("continuous"), installed("discrete")
    families = ", ".join(continuous + discrete)
    faultkit.record("numeric", f"log_prob on NaN, ±inf, beyond-float32, wrong dtypes, "
                    f"shapes and types, out-of-range levels ({families})",
                    len(continuous) * len(continuous_bad_inputs())
                    + len(discrete) * len(discrete_bad_inputs()),
                    "ValueError saying what was expected; never a NaN", "n/a (no store)")
    faultkit.record("numeric", f"log_prob on finite values that overflow inside the model "
                    f"(1e10 .. 3e38; {', '.join(continuous)})", 5 * len(continuous),
                    "a number (-inf at worst) or a ValueError; never a NaN", "n/a")
    faultkit.record("numeric", f"sample with temperature <= 0, NaN, inf, non-numbers, and "
                    f"n <= 0 or non-integers ({families}; API and CLI)",
                    (len(continuous) + len(discrete))
                    * (len(BAD_TEMPERATURES) + len(BAD_COUNTS) + 5),
                    "ValueError / one-line CLI error; no file written", "n/a")
