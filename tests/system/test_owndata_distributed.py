"""User data across processes: each rank reads only its share of each global batch; a
checkpoint records the data's fingerprint and refuses other data on resume; two torchrun
launchers (`--nnodes 2`, c10d rendezvous on loopback) train together and write one artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from layout import ROOT

import zoo
from zoo.data.open import open_data
from zoo.data.source import ArraySource, Examples
from zoo.training import distributed
from zoo.training.checkpoint import CheckpointError
from zoo.training.loop import Batches


class Counting(ArraySource):
    """An array source that records every row it is asked for."""

    def __init__(self, array):
        super().__init__(array, "counting")
        self.rows: list[int] = []

    def read(self, index):
        self.rows.extend(index.tolist())
        return super().read(index)


def test_each_rank_reads_only_its_share_of_each_global_batch():
    data = np.arange(80, dtype=np.float32).reshape(40, 2)
    sources = [Counting(data) for _ in range(2)]
    streams = [Batches(Examples(s, "continuous"), 8, torch.Generator().manual_seed(3),
                       ctx=distributed.Context(rank, 2)) for rank, s in enumerate(sources)]
    whole = Batches(Examples(ArraySource(data, "whole"), "continuous"), 8,
                    torch.Generator().manual_seed(3))
    for step in range(1, 13):  # crosses two epoch boundaries
        parts = [s.next() for s in streams]
        assert torch.equal(torch.cat(parts), whole.next())
        assert [len(s.rows) for s in sources] == [4 * step, 4 * step]
    assert not set(sources[0].rows[:4]) & set(sources[1].rows[:4])


class Killed(Exception):
    pass


def test_resume_refuses_a_checkpoint_of_other_data(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(64, 2)), rng.normal(size=(64, 2))
    np.save(tmp_path / "a.npy", a.astype(np.float32))
    np.save(tmp_path / "b.npy", b.astype(np.float32))
    options = dict(config={"couplings": 1, "hidden": 4}, steps=6, batch_size=16, progress=False,
                   checkpoint_dir=tmp_path / "ckpt", checkpoint_every=2)

    def die(step, record):
        if step == 4:
            raise Killed

    with pytest.raises(Killed):
        zoo.fit("realnvp", tmp_path / "a.npy", recipe={"eval_every": 1}, callback=die, **options)
    with pytest.raises(CheckpointError, match="different run .*data"):
        zoo.fit("realnvp", tmp_path / "b.npy", recipe={"eval_every": 1}, resume=True, **options)
    resumed = zoo.fit("realnvp", tmp_path / "a.npy", recipe={"eval_every": 1}, resume=True, **options)
    assert resumed.fit_result.start_step == 2  # the newest checkpoint before the kill


def test_fingerprint_follows_the_contents(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 2), dtype=np.float32))
    first = open_data(tmp_path / "a.npy").fingerprint()
    np.save(tmp_path / "a.npy", np.ones((4, 2), dtype=np.float32))
    assert open_data(tmp_path / "a.npy").fingerprint() != first


@pytest.mark.slow
def test_two_torchrun_nodes_on_loopback_train_one_artifact(tmp_path):
    """Two launchers, `--nnodes 2 --nproc-per-node 1`, meet through c10d on 127.0.0.1."""
    rng = np.random.default_rng(0)
    np.savetxt(tmp_path / "points.csv", rng.normal(size=(96, 2)), delimiter=",")
    port = distributed.free_port()
    out = tmp_path / "flow"
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins"),
                                          os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--nproc-per-node", "1", "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "zoo-test",
               "--max-restarts", "0", "-m", "zoo", "train", "realnvp",
               "--data", str(tmp_path / "points.csv"), "-o", str(out), "-q", "--steps", "4",
               "--batch-size", "16", "-c", "couplings=1", "-c", "hidden=4"]
    nodes = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        outputs = [node.communicate(timeout=180)[0] for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(outputs)
    assert sum(str(out) in o.splitlines() for o in outputs) == 1  # rank 0 alone reports
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["source"]["examples"] == 96
    zoo.load(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging")] == []
