"""``hf-dataset:ORG/NAME[@REV]`` against a real Hub server on loopback (olah serving a
dataset repository from git), through ``datasets`` and the HF cache, online then offline.

Each load runs in a fresh process: huggingface_hub and datasets read ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` when they are imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hubserver import commit_files, olah_executable, running_olah
from layout import ROOT

LOAD = ("import sys; from zoo.data.open import open_data; s = open_data(sys.argv[1]); "
        "print(len(s), s.shape, s.columns, s.take([3]).tolist())")


def parquet_bytes(x: np.ndarray) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": x[:, 0], "y": x[:, 1]}), buf)
    return buf.getvalue().to_pybytes()


@pytest.mark.slow
def test_hf_dataset_from_the_hub_then_offline_from_the_cache(tmp_path):
    pytest.importorskip("datasets")
    if olah_executable() is None:
        pytest.skip("olah-cli not found")
    mirrors = tmp_path / "mirrors"
    repo = mirrors / "datasets" / "acme" / "points"
    (repo / "data").mkdir(parents=True)
    first = np.arange(20.0).reshape(10, 2)
    files = {"data/train-00000-of-00001.parquet": parquet_bytes(first),
             "README.md": b"---\nlicense: mit\n---\n# points\n"}
    v1 = commit_files(repo, files, "v1", lfs=tuple(files)[:1])
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN"):
        env.pop(var, None)

    def load(spec: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", LOAD, spec], env={**env, **extra},
                              capture_output=True, text=True, timeout=240)

    with running_olah(tmp_path, mirrors) as server:
        env["HF_ENDPOINT"] = server.url
        online = load(f"hf-dataset:acme/points@{v1}")
    assert online.returncode == 0, online.stderr[-2000:]
    assert online.stdout.split("\n")[0] == "10 (2,) ('x', 'y') [[6.0, 7.0]]"
    # The server is gone: offline mode serves the revision from the HF cache.
    offline = load(f"hf-dataset:acme/points@{v1}", HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr[-2000:]
    assert offline.stdout.split("\n")[0] == "10 (2,) ('x', 'y') [[6.0, 7.0]]"
    missing = load("hf-dataset:acme/never", HF_HUB_OFFLINE="1")
    assert missing.returncode != 0 and "hf-dataset:acme/never: cannot load the dataset" in missing.stderr
