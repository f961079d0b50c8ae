"""The generic trainer: resumable checkpoints, devices, bf16, torch.compile fallback, sharding."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

from zoo import api
from zoo.catalog.recipe import Recipe
from zoo.data import Dataset
from zoo.errors import ConfigError, stop_behind
from zoo.training import checkpoint as ckpt
from zoo.training import distributed
from zoo.training.batches import Batches
from zoo.training.checkpoint import CheckpointError
from zoo.training.devices import CompiledOrEager, resolve_device
from zoo.training.loop import maximise_likelihood, training_examples

CONFIG = {"shape": [2], "couplings": 2, "hidden": 8}


def jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # A per-epoch draw that consumes the batch generator, like binarized MNIST's.
    return x + 0.05 * torch.randn(x.shape, generator=generator)


def ring(n: int = 300) -> torch.Tensor:
    # A noisy circle, made by torch (sklearn's import alone would cost seconds).
    g = torch.Generator().manual_seed(7)
    angle = 2 * torch.pi * torch.rand(n, generator=g)
    return torch.stack([angle.cos(), angle.sin()], 1) + 0.1 * torch.randn(n, 2, generator=g)


# Re-drawn every epoch, small enough that a short run crosses several epochs.
JITTER = Dataset("jitter-ring", "continuous", (2,), lambda split, root: ring(), per_epoch=jitter)
RECIPE = Recipe(steps=24, batch_size=64, lr=3e-3, eval_every=5, val_fraction=0.2,
                warmup_steps=3, grad_clip=5.0)


class Killed(Exception):
    """Stands for the process dying: everything in memory is lost."""




def build(seed: int = 0):
    torch.manual_seed(seed)
    return api.get_family("realnvp").build(CONFIG)


def train(**kwargs):
    model = build()
    result = maximise_likelihood(model, JITTER, RECIPE, progress=False, **kwargs)
    return model, result


def assert_same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def kill_at(step: int):
    def callback(at: int, record: dict) -> None:
        if at == step:
            raise Killed

    return callback


def test_killed_and_resumed_run_is_bit_identical(tmp_path, one_thread):
    reference, expected = train()
    with pytest.raises(Killed):
        train(checkpoint_dir=tmp_path, checkpoint_every=4, callback=kill_at(15))
    # Only the newest checkpoint is kept: step 12, three steps before the "kill".
    assert [step for step, _ in ckpt.list_checkpoints(tmp_path)] == [12]
    resumed, result = train(checkpoint_dir=tmp_path, resume=True)
    assert result.start_step == 12
    assert_same_weights(reference, resumed)
    assert result.history == expected.history
    assert result.train_nll == expected.train_nll
    assert (result.best_step, result.val_nll) == (expected.best_step, expected.val_nll)


def test_resume_replays_the_data_stream_mid_epoch(tmp_path, one_thread):
    # 240 training examples, batches of 64: step 7 is in the middle of the 3rd epoch, so the
    # resumed run must re-draw that epoch and seek into it.
    reference, _ = train(steps=9)
    with pytest.raises(Killed):
        train(steps=9, checkpoint_dir=tmp_path, checkpoint_every=7, callback=kill_at(9))
    tensors, meta = ckpt.load(ckpt.latest(tmp_path))
    assert meta["batches"]["epoch"] == 3 and meta["batches"]["position"] == 64
    resumed, _ = train(steps=9, checkpoint_dir=tmp_path, resume=True)
    assert_same_weights(reference, resumed)


def test_resume_without_a_checkpoint_starts_from_step_zero(tmp_path, one_thread, capsys):
    reference, _ = train(steps=6)
    resumed, result = train(steps=6, checkpoint_dir=tmp_path / "none", resume=True)
    assert result.start_step == 0
    assert "no checkpoint" in capsys.readouterr().err
    assert_same_weights(reference, resumed)


KILLER = textwrap.dedent("""
    import os, signal, sys, torch
    torch.set_num_threads(1)
    sys.path.insert(0, {tests!r})
    from test_training import train

    def die(step, record):
        if step == 15:
            os.kill(os.getpid(), signal.SIGKILL)

    train(checkpoint_dir={directory!r}, checkpoint_every=4, callback=die)
""")


@pytest.mark.slow  # a fresh interpreter imports torch: seconds on a busy machine
def test_a_process_killed_by_sigkill_resumes_bit_identical(tmp_path, one_thread):
    script = KILLER.format(tests=str(Path(__file__).parent), directory=str(tmp_path / "run"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    reference, _ = train()
    resumed, result = train(checkpoint_dir=tmp_path / "run", resume=True)
    assert result.start_step == 12
    assert_same_weights(reference, resumed)


def checkpointed_run(directory: Path) -> Path:
    with pytest.raises(Killed):
        train(checkpoint_dir=directory, checkpoint_every=4, callback=kill_at(10))
    return ckpt.latest(directory)


def test_a_checkpoint_cut_short_is_refused(tmp_path, one_thread):
    sidecar = checkpointed_run(tmp_path)
    weights = sidecar.with_suffix(".safetensors")
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut short: \d+ bytes on disk, \d+ recorded"):
        train(checkpoint_dir=tmp_path, resume=True)


def test_a_corrupted_checkpoint_is_refused(tmp_path, one_thread):
    sidecar = checkpointed_run(tmp_path)
    weights = sidecar.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted: its sha256"):
        train(checkpoint_dir=tmp_path, resume=True)


def test_a_truncated_sidecar_is_refused(tmp_path, one_thread):
    sidecar = checkpointed_run(tmp_path)
    sidecar.write_text(sidecar.read_text()[:100])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        train(checkpoint_dir=tmp_path, resume=True)


def test_a_checkpoint_of_another_run_is_refused(tmp_path, one_thread):
    checkpointed_run(tmp_path)
    with pytest.raises(CheckpointError, match=r"different run \(recipe.lr"):
        model = build()
        maximise_likelihood(model, JITTER, dataclasses.replace(RECIPE, lr=1e-2), progress=False,
            checkpoint_dir=tmp_path, resume=True)


def test_cli_resume_of_a_cut_short_checkpoint_fails_in_one_line(tiny_catalog, cli_runner, tmp_path):
    from zoo.cli.commands import cli

    out = tmp_path / "out"
    runs = ckpt.default_directory("realnvp-tiny", out)
    model = build()
    entry = api.get_entry("realnvp-tiny")
    with pytest.raises(Killed):
        maximise_likelihood(model, api.get_dataset("moons"), entry.recipe, progress=False,
                            checkpoint_dir=runs, checkpoint_every=5, callback=kill_at(20))
    weights = ckpt.latest(runs).with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:-7])
    result = cli_runner.invoke(cli, ["train", "realnvp-tiny", "-o", str(out), "--resume", "-q"])
    assert result.exit_code != 0
    assert "cut short" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_train_with_checkpoints_resumes_and_cleans_up(tiny_catalog, cli_runner, tmp_path):
    from zoo.cli.commands import cli

    out = tmp_path / "out"
    result = cli_runner.invoke(cli, ["train", "realnvp-tiny", "-o", str(out), "--resume",
                                     "--checkpoint-every", "7", "-q", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [str(out)]
    assert api.is_complete(out)
    # A finished run's checkpoints are removed; they can only resume what is already done.
    assert not ckpt.default_directory("realnvp-tiny", out).exists()


def test_checkpoint_files_are_written_atomically_and_pruned(tmp_path):
    tensors = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int64)}
    for step in (3, 6, 9):
        ckpt.save(tmp_path, step, tensors, {"note": step}, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [6, 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000000006.json", "step-000000006.safetensors",
        "step-000000009.json", "step-000000009.safetensors"]
    loaded, meta = ckpt.load(ckpt.latest(tmp_path))
    assert meta["note"] == 9 and meta["step"] == 9
    assert torch.equal(loaded["a"], tensors["a"]) and torch.equal(loaded["b"], tensors["b"])
    # Weights without a sidecar (a writer killed between the two files) are not a checkpoint.
    (tmp_path / "step-000000012.safetensors").write_bytes(b"partial")
    assert ckpt.latest(tmp_path).name == "step-000000009.json"


def test_optimizer_state_round_trips_without_pickle():
    model = build()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.log_prob(torch.randn(8, 2)).mean().neg().backward()
    opt.step()
    tensors, meta = ckpt.split_optimizer_state(opt.state_dict())
    meta = json.loads(json.dumps(meta))
    fresh = torch.optim.AdamW(model.parameters(), lr=5.0)
    fresh.load_state_dict(ckpt.join_optimizer_state(tensors, meta))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for key, value in a["state"][pid].items():
            assert torch.equal(value, b["state"][pid][key])


# --- devices, bf16, compile -------------------------------------------------------------


def test_auto_device_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="expected one of auto, cpu, cuda"):
        resolve_device("gpu")


def test_auto_device_picks_this_ranks_gpu_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="only 2 GPU"):
        resolve_device("cuda:5")


def test_compile_failure_falls_back_to_eager_with_a_warning(one_thread):
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no compiler for you")

    reference, expected = train(steps=6)
    with pytest.warns(RuntimeWarning, match="torch.compile failed .*training continues eagerly"):
        model, result = train(steps=6, compile=broken_backend)
    assert_same_weights(reference, model)
    assert result.history == expected.history


def test_compile_with_a_working_backend_trains_like_eager(one_thread):
    torch._dynamo.reset()
    reference, _ = train(steps=4)
    compiled: list[int] = []

    def counting_backend(graph_module, example_inputs):
        compiled.append(len(graph_module.graph.nodes))  # the step really went through dynamo
        return graph_module.forward

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model, _ = train(steps=4, compile=counting_backend)
    assert compiled, "torch.compile never called the backend: the model ran eagerly"
    for a, b in zip(reference.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_stop_during_compile_is_raised_not_taken_for_a_compiler_failure():
    """Ctrl-C while the compiler imports an extension module reaches the wrapper as an
    ImportError raised from it, itself wrapped by torch.compile: falling back to eager would
    train on with the stop signals already ignored (zoo's handler ignores a second one)."""
    torch._dynamo.reset()

    def interrupted_backend(graph_module, example_inputs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise ImportError("initialization failed") from stop

    wrapper = CompiledOrEager(torch.nn.Linear(2, 2), backend=interrupted_backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(Exception) as raised:
            wrapper(torch.zeros(3, 2))
    assert stop_behind(raised.value) is not None, repr(raised.value)
    assert wrapper.is_compiled


def test_compiled_or_eager_raises_the_models_own_errors():
    wrapper = CompiledOrEager(torch.nn.Linear(2, 2), backend="eager")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        wrapper(torch.zeros(3, 5))


def test_bf16_autocast_trains(one_thread):
    """The forward pass really runs in bfloat16 (CPU autocast), the weights stay float32."""
    from benchmarks.gpu_checks import MatmulDtypes

    model = build()
    with MatmulDtypes() as products:
        result = maximise_likelihood(model, JITTER, RECIPE, steps=4, bf16=True, progress=False)
    assert torch.bfloat16 in products.seen, set(products.seen)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(torch.tensor(r["train_nll"])) for r in result.history)

    plain = build()
    with MatmulDtypes() as products:
        maximise_likelihood(plain, JITTER, RECIPE, steps=4, progress=False)
    assert products.seen and set(products.seen) == {torch.float32}


def test_a_float64_model_trains_and_samples_in_float64(one_thread):
    model = build().double()
    maximise_likelihood(model, JITTER, RECIPE, steps=3, progress=False)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert model.sample(5, generator=torch.Generator().manual_seed(0)).dtype == torch.float64


# --- sharding the global batch -------------------------------------------------------------


def test_ranks_split_each_global_batch_into_equal_slices():
    x = torch.arange(40.0).unsqueeze(1).repeat(1, 2)
    data = training_examples(JITTER, x)
    streams = [Batches(data, 8, torch.Generator().manual_seed(3),
                       ctx=distributed.Context(rank, 2)) for rank in range(2)]
    whole = Batches(data, 8, torch.Generator().manual_seed(3))
    for _ in range(12):  # crosses two epoch boundaries
        parts = [s.next() for s in streams]
        assert all(len(p) == 4 for p in parts)
        assert torch.equal(torch.cat(parts), whole.next())


def test_a_batch_that_does_not_split_evenly_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="batch_size 64 cannot be split evenly over 3 processes"):
        maximise_likelihood(build(), JITTER, RECIPE, progress=False)


def test_fit_rejects_bad_checkpoint_arguments():
    with pytest.raises(ValueError, match="need a checkpoint_dir"):
        maximise_likelihood(build(), JITTER, RECIPE, checkpoint_every=5)
    with pytest.raises(ValueError, match="checkpoint_every must be positive"):
        maximise_likelihood(build(), JITTER, RECIPE, checkpoint_every=0, checkpoint_dir=".")


def test_the_default_checkpoint_folder(isolated_home, tmp_path):
    assert ckpt.default_directory("realnvp-moons") == isolated_home / "runs" / "realnvp-moons"
    assert ckpt.default_directory("realnvp-moons", tmp_path / "out") == tmp_path / "out.checkpoints"



def test_removing_checkpoints_leaves_other_files(tmp_path):
    ckpt.save(tmp_path, 4, {"a": torch.zeros(2)}, {})
    (tmp_path / "notes.txt").write_text("mine")
    ckpt.remove_all(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    ckpt.remove_all(tmp_path / "missing")
