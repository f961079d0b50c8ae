"""Image folders and parquet files as training and scoring data (issue 24, items 17-21).

A decompression bomb in a folder is refused naming the file; a class folder that is a
symbolic link is followed; a truncated image is found before the first training step;
scoring a parquet file writes nothing into the HF cache; a step that cannot fit in memory
is refused before training, saying what to lower.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

import faultkit
import numpy as np
import pytest
from PIL import Image

import zoo
from zoo.cli.commands import cli

TINY = ["--steps", "2", "-c", "hidden=[8]", "-q"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def pngs(folder: Path, n: int, size: int = 4, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(
            folder / f"{seed}-{i:03d}.png")
    return folder


def test_a_decompression_bomb_in_an_image_folder_is_refused_naming_it(tmp_path, cli_runner):
    # Item 17: "unexpected DecompressionBombError", and which file was not said.
    folder = pngs(tmp_path / "imgs", 3)
    faultkit.png_header(folder / "bomb.png", 30000, 30000)  # 900 million pixels claimed
    result = cli_runner.invoke(cli, ["train", "made", "--data", str(folder), "-o",
                                     str(tmp_path / "m"), *TINY])
    faultkit.refused_line(result, "bomb.png", "too large to read safely")
    assert not (tmp_path / "m").exists()


def test_a_class_folder_that_is_a_symbolic_link_is_followed(tmp_path, cli_runner):
    # Item 18: 5 of 35 images were used, silently.
    folder = pngs(tmp_path / "imgs" / "a", 5).parent
    (folder / "b").symlink_to(pngs(tmp_path / "elsewhere" / "b", 30, seed=1))
    (folder / "a" / "loop").symlink_to(folder)  # a cycle is walked once
    result = cli_runner.invoke(cli, ["train", "made", "--data", str(folder), "-o",
                                     str(tmp_path / "m"), "--steps", "2", "-c", "hidden=[8]"])
    assert result.exit_code == 0, result.output
    assert "35 examples" in result.output, result.output


def test_a_truncated_image_is_found_before_the_first_step(tmp_path, cli_runner, monkeypatch):
    # Item 19: the error came only after training, when the metrics were computed.
    folder = pngs(tmp_path / "imgs", 300, size=16)
    bad = sorted(folder.iterdir())[217]
    bad.write_bytes(bad.read_bytes()[:-60])  # the header whole, the pixels cut short
    from zoo.training import loop as training

    optimizers = []
    real = training.make_optimizer
    monkeypatch.setattr(training, "make_optimizer",
                        lambda *a, **k: optimizers.append(1) or real(*a, **k))
    result = cli_runner.invoke(cli, ["train", "made", "--data", str(folder), "-o",
                                     str(tmp_path / "m"), "--batch-size", "4", *TINY])
    faultkit.refused_line(result, bad.name, "cannot decode")
    assert optimizers == [], "training started before the truncated image was found"


@pytest.mark.slow  # two real processes that import `datasets`: about 15 s
def test_scoring_parquet_writes_nothing_into_the_hf_cache(tmp_path):
    # Item 20: a 4 kB file left 4.1 MB in HF_HOME/datasets; a truncated one left locks.
    # A real process: `datasets` reads HF_HOME once, when it is imported.
    pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    hf_home = tmp_path / "hf"
    env = faultkit.zoo_env(Path(os.environ["ZOO_HOME"]), HF_HOME=str(hf_home))
    vec = faultkit.tiny_flow(tmp_path / "vec")
    rng = np.random.default_rng(0)
    good = tmp_path / "x.parquet"
    pq.write_table(pa.table({"x": rng.standard_normal(50).astype("float32"),
                             "y": rng.standard_normal(50).astype("float32")}), good)
    done = faultkit.run_zoo(["score", str(vec), "--data", str(good)], env)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 51
    truncated = tmp_path / "t.parquet"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    done = faultkit.run_zoo(["score", str(vec), "--data", str(truncated)], env)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "t.parquet: not a readable parquet file" in done.stderr, done.stderr
    left = [p for p in hf_home.rglob("*") if p.is_file()] if hf_home.exists() else []
    assert left == [], left


@pytest.mark.slow  # a real process under a memory limit: about 8 s
def test_a_step_that_cannot_fit_is_refused_before_training(tmp_path):
    # Item 21: PixelCNN on 512x512 images ended "unexpected RuntimeError: can't allocate"
    # under a 5 GB limit, or was killed by the kernel. Run under a 6 GB address-space limit,
    # so that nothing can allocate gigabytes even if the check is missing.
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(4):
        Image.new("L", (512, 512), color=i).save(folder / f"{i}.png")
    limit = 6 << 30

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = faultkit.zoo_env(Path(os.environ["ZOO_HOME"]))
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "zoo", "train", "pixelcnn", "--data",
                           str(folder), "-o", str(tmp_path / "pc"), "--steps", "1"],
                          env=env, capture_output=True, text=True, timeout=300,
                          preexec_fn=cap)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("zoo: ")]
    assert len(lines) == 1 and "unexpected" not in lines[0], done.stderr
    for word in ("training step needs about", "GB", "--batch-size", "width", "resize"):
        assert word in lines[0], lines[0]
    assert not (tmp_path / "pc").exists()


def test_the_estimate_errs_low_against_a_real_step(monkeypatch):
    """The estimate counts what autograd keeps for the backward pass: a small PixelCNN's real
    step takes more than it says, never less (so a refused run would not have fitted)."""
    import torch

    from zoo.training.step_memory import step_bytes

    model = zoo.get_family("pixelcnn").build({"shape": [1, 16, 16], "levels": 4})
    saved, params = step_bytes(model, 8)
    assert params == sum(p.numel() * 4 for p in model.parameters())
    held = []

    def pack(t):
        held.append(t.untyped_storage().nbytes())
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.log_prob(torch.randint(0, 4, (8, 1, 16, 16)))
    assert 0 < saved <= sum(held), (saved, sum(held))


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for this module, written once its tests have run."""
    yield
    faultkit.record("hostile", "image folders: a PNG claiming 30000x30000 pixels among them; a class "
                    "folder that is a symbolic link (and a link cycle); one truncated PNG "
                    "among 300 with --batch-size 4", 3,
                    "the bomb refused in one line naming it, undecoded (it was \"unexpected "
                    "DecompressionBombError\"); the linked folder followed, 35 of 35 images "
                    "(it used 5, silently); the truncated file named before the first step "
                    "(it was found after training)", "no output folder where refused")
    faultkit.record("hostile", "`zoo score` on a parquet file and on a truncated one", 2,
                    "scored / one line naming the file", "nothing in HF_HOME (it held a "
                    "4.1 MB uncompressed copy, and lock files after the failure)")
    faultkit.record("hostile", "`zoo train pixelcnn` on 512x512 images under a 6 GB "
                    "address-space limit", 1, "refused before training: the GB a step needs, "
                    "the GB available, what to lower (it was \"unexpected RuntimeError: "
                    "can't allocate\", or the kernel's kill)", "no output folder")
