"""torch.hub loads zoo's models from the repository (issue 30, item 1): one function per
catalog entry, made from the catalog, from a checkout whether zoo is installed or not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from catalogs import catalog, tiny_entry
from layout import ROOT

# Run in a fresh interpreter: torch.hub imports hubconf once per process. With "hide", the
# installed distribution is made invisible first (its editable finder and its entry points),
# as in an environment where zoo is not installed: everything comes from the checkout.
DRIVER = r"""
import importlib.metadata as md, json, sys
if sys.argv[2] == "hide":
    sys.meta_path[:] = [f for f in sys.meta_path if "_EditableFinder" not in repr(f)]
    real = md.entry_points
    md.entry_points = lambda **kw: [] if kw.get("group") == "zoo" else real(**kw)
import torch
hub = torch.hub._import_module("hubconf", sys.argv[1] + "/hubconf.py")
import zoo
model = torch.hub.load(sys.argv[1], sys.argv[3], source="local", trust_repo=True)


def missing():
    try:
        torch.hub.load(sys.argv[1], "realnvp_missing", source="local", trust_repo=True)
    except Exception as exc:
        return str(exc)



print(json.dumps({
    "functions": sorted(n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_")
                        and getattr(getattr(hub, n), "__module__", "") == "hubconf"),
    "doc": getattr(hub, sys.argv[3]).__doc__.splitlines()[0],
    "family": model.family, "zoo_from": zoo.__file__,
    "log_prob": model.log_prob(torch.zeros(3, 2)).shape[0],
    "missing": missing(),
}))
"""

CATALOG = catalog(tiny_entry("realnvp-tiny", description="A tiny flow for torch.hub"),
                  tiny_entry("realnvp-other"))


def hub_load(tmp_path, entry: str, mode: str) -> subprocess.CompletedProcess:
    registry = tmp_path / "registry.yaml"
    registry.write_text(CATALOG)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ZOO_HOME": str(tmp_path / "home"),
           "ZOO_REGISTRY": str(registry), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TORCH_HOME": str(tmp_path / "torch")}
    return subprocess.run([sys.executable, "-c", DRIVER, str(ROOT), mode, entry],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)


@pytest.mark.parametrize("mode", ["installed", "hide"])
def test_torch_hub_loads_a_catalog_entry_from_the_checkout(tmp_path, mode):
    done = hub_load(tmp_path, "realnvp_tiny", mode)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["functions"] == ["realnvp_other", "realnvp_tiny"]  # one per entry, no more
    assert out["doc"] == "A tiny flow for torch.hub"
    assert out["family"] == "realnvp" and out["log_prob"] == 3
    assert out["missing"] == "Cannot find callable realnvp_missing in hubconf"  # one line
    if mode == "hide":
        assert out["zoo_from"].startswith(str(ROOT))
