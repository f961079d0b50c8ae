"""Data-parallel training: two gloo processes on localhost, launched through torchrun."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from layout import SUPPORT

from zoo import api
from zoo.errors import ConfigError, ZooError
from zoo.training import distributed

WORKER = SUPPORT / "ddp_worker.py"


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run tests/support/ddp_worker.py in 2 processes through zoo's launcher; load what each saved."""
    from safetensors.torch import load_file

    out = tmp_path_factory.mktemp("ddp")
    launcher = "import sys; from zoo.training.distributed import launch; launch(2, sys.argv[1:])"
    proc = subprocess.run([sys.executable, "-c", launcher, str(WORKER), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [(load_file(str(out / f"rank{r}.safetensors")), json.loads((out / f"rank{r}.json").read_text()))
            for r in range(2)]


def test_both_ranks_hold_identical_parameters_after_every_step(two_ranks):
    from ddp_worker import STEPS

    (r0, m0), (r1, m1) = two_ranks
    assert (m0["world_size"], m1["world_size"]) == (2, 2)
    for step in range(1, STEPS + 1):
        assert torch.equal(r0[f"step{step}"], r1[f"step{step}"]), f"ranks differ after step {step}"
        # The sharded validation NLL is reduced over both ranks: the same number on each.
        assert torch.equal(r0[f"val{step}"], r1[f"val{step}"])
    assert torch.equal(r0["final"], r1["final"]) and m0["best_step"] == m1["best_step"]
    # The parameters do move: identical ranks are not identical because nothing happened.
    assert not torch.equal(r0["step1"], r0[f"step{STEPS}"])


def test_two_processes_with_half_batches_match_one_process_with_the_whole(two_ranks):
    from ddp_worker import DATASET, RECIPE, STEPS, flat, make_model

    from zoo.training.loop import maximise_likelihood

    (r0, _), _ = two_ranks
    model = make_model()
    single: dict[str, torch.Tensor] = {}

    def record(step: int, rec: dict) -> None:
        single[f"step{step}"] = flat(model)
        single[f"val{step}"] = torch.tensor([rec["val_nll"], rec["train_nll"]], dtype=torch.float64)

    maximise_likelihood(model, DATASET, RECIPE, progress=False, callback=record, device="cpu")
    for step in range(1, STEPS + 1):
        torch.testing.assert_close(r0[f"step{step}"], single[f"step{step}"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(r0[f"val{step}"], single[f"val{step}"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r0["final"], flat(model), rtol=1e-4, atol=1e-5)


def test_torchrun_arguments_name_a_local_free_port():
    args = distributed.torchrun_args(2, ["-m", "zoo", "train", "realnvp-moons"], port=29999)
    assert args == ["--nnodes", "1", "--nproc-per-node", "2", "--max-restarts", "0",
                    "--master-addr", "127.0.0.1", "--master-port", "29999",
                    "-m", "zoo", "train", "realnvp-moons"]
    port = distributed.free_port()
    assert 0 < port < 65536


def test_context_reads_torchruns_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = distributed.context()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (1, 2, 1, False)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="do not describe a process group"):
        distributed.context()


def test_a_process_group_needs_torchruns_rendezvous(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ConfigError, match="torchrun --nproc-per-node N"):
        with distributed.process_group(torch.device("cpu")):
            pass


def test_backends():
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(torch.device("cuda", 0)) == "nccl"


def test_api_train_with_nproc_launches_the_cli_in_workers(tiny_catalog, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(distributed, "launch", lambda n, command: calls.append((n, command)))
    out = api.train("realnvp-tiny", output=tmp_path / "out", steps=5, nproc=2, device="cpu",
                    checkpoint_every=2, progress=False)
    assert out == tmp_path / "out"
    assert calls == [(2, ["-m", "zoo", "train", "realnvp-tiny", "--output", str(tmp_path / "out"),
                          "--steps", "5", "--device", "cpu", "--checkpoint-every", "2",
                          "--checkpoint-dir", str(tmp_path / "out.checkpoints"), "--quiet"])]


def test_nproc_that_does_not_divide_the_batch_is_refused_before_launching(tiny_catalog, monkeypatch):
    monkeypatch.setattr(distributed, "launch", lambda *a: pytest.fail("launched"))
    with pytest.raises(ConfigError, match="batch_size 64 cannot be split evenly over 3 processes"):
        api.train("realnvp-tiny", nproc=3)


def test_nproc_inside_torchrun_is_refused(tiny_catalog, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ZooError, match="already belongs to a process group"):
        api.train("realnvp-tiny", nproc=2)


@pytest.mark.slow  # three interpreters start (launcher + 2 workers) and train realnvp-tiny
def test_cli_nproc_2_writes_one_artifact_like_one_process(tiny_catalog, tmp_path):
    from safetensors.torch import load_file

    def run(nproc: int, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "zoo", "train", "realnvp-tiny", "-q",
                               "--nproc", str(nproc), "--device", "cpu", "-o", str(out)],
                              capture_output=True, text=True, timeout=300)

    two = run(2, tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert two.stdout.strip().splitlines() == [str(tmp_path / "two")]
    one = run(1, tmp_path / "one")
    assert one.returncode == 0, one.stderr
    a = load_file(str(tmp_path / "one" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
