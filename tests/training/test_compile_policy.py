"""``compile="auto"``: the trainer compiles only runs long enough to repay compiling."""

from __future__ import annotations

import shutil

import pytest
import torch

from zoo.training import devices

CPU = torch.device("cpu")


def test_short_runs_stay_eager():
    assert devices.resolve_compile("auto", CPU, devices.AUTO_COMPILE_MIN_STEPS - 1) is False


def test_long_runs_compile_where_inductor_can_build(monkeypatch):
    long = devices.AUTO_COMPILE_MIN_STEPS
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert devices.resolve_compile("auto", CPU, long) is True
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no C++ compiler: stay eager
    assert devices.resolve_compile("auto", CPU, long) is False


def test_explicit_choices_are_kept():
    assert devices.resolve_compile(True, CPU, 1) is True
    assert devices.resolve_compile(False, CPU, 10**7) is False
    assert devices.resolve_compile(None, CPU, 10**7) is False
    assert devices.resolve_compile("aot_eager", CPU, 1) == "aot_eager"


def test_fit_stays_eager_on_a_short_run(monkeypatch):
    from zoo import api
    from zoo.catalog.recipe import Recipe
    from zoo.training.loop import maximise_likelihood

    def refuse(*args, **kwargs):
        raise AssertionError("a short run must not compile")

    monkeypatch.setattr(devices, "CompiledOrEager", refuse)
    model = api.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    data = torch.randn(64, 2)
    result = maximise_likelihood(model, api.get_dataset("moons"),
                                 Recipe(steps=3, batch_size=16, val_fraction=0.0),
                                 train_data=data, progress=False)
    assert result.steps == 3


@pytest.mark.parametrize("family, config", [
    ("realnvp", {"shape": [2], "couplings": 2, "hidden": 8}),
    ("made", {"shape": [4], "levels": 3, "hidden": [8]}),
])
def test_the_training_objective_compiles_to_one_graph(family, config):
    """A graph break (a data-dependent branch such as an input check) splits the compiled
    step in two and costs a tenth of realnvp's step: the objective the trainer compiles
    must trace whole."""
    from zoo import api
    from zoo.training import distributed

    torch.manual_seed(0)
    model = api.get_family(family).build(config)
    model.train()
    x = (torch.randn(16, 2) if family == "realnvp" else torch.randint(0, 3, (16, 4)))
    explained = torch._dynamo.explain(distributed.NegLogLikelihood(model))(x)
    assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
    assert explained.graph_count == 1


@pytest.mark.parametrize("flags, compiles", [([], True), (["--compile"], True),
                                              (["--no-compile"], False)])
def test_zoo_train_compiles_by_the_run_length_unless_told(flags, compiles, monkeypatch, tmp_path,
                                                          tiny_catalog, cli_runner):
    """``zoo train`` decides like ``zoo pull`` (compile runs long enough to repay it), and
    ``--no-compile`` keeps a long run eager. The threshold is lowered to the tiny recipe's
    30 steps; the compiler itself is replaced by a recorder."""
    from zoo.cli.commands import cli

    calls = []

    def record(module, backend="inductor"):
        calls.append(backend)
        return module

    monkeypatch.setattr(devices, "AUTO_COMPILE_MIN_STEPS", 30)
    monkeypatch.setattr(devices, "CompiledOrEager", record)
    result = cli_runner.invoke(cli, ["train", "realnvp-tiny", "-q", "--device", "cpu",
                                     "-o", str(tmp_path / "out"), *flags])
    assert result.exit_code == 0, result.output
    assert bool(calls) is compiles


@pytest.mark.parametrize("compile, flags", [(None, []), (True, ["--compile"]),
                                            (False, ["--no-compile"])])
def test_worker_commands_carry_the_compile_choice(compile, flags, tmp_path):
    """What ``--nproc`` workers are told: the same choice, "decide by length" included."""
    from zoo.api.owndata import data_train_command
    from zoo.training.options import TrainOptions

    made = TrainOptions(compile=compile).flags()
    assert [a for a in made if "compile" in a] == flags
    made = data_train_command("realnvp", "points.csv", tmp_path / "out",
                              TrainOptions(compile=compile))
    assert [a for a in made if "compile" in a] == flags
