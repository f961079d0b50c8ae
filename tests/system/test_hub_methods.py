"""The Hub's model methods on every zoo model (issue 30, item 2): ``from_pretrained``,
``save_pretrained`` and ``push_to_hub``, against the local Hub server the hub tests run."""

from __future__ import annotations

import pytest
import torch
from hubserver import HubServer, hub_server, tiny_artifacts  # noqa: F401  (fixtures)
from test_hub import SECRET, FakeHub, hf_env, hub_env  # noqa: F401  (fixtures)
from zoo_made.model import MADE
from zoo_realnvp.model import RealNVP

import zoo
from zoo.artifact.io import read_config
from zoo.errors import HubError, NotFoundError, ZooError
from zoo.plugin import ZooModel

X = torch.tensor([[0.1, -0.2], [1.0, 0.5]])


def test_save_pretrained_writes_an_artifact_that_from_pretrained_loads(tmp_path):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    path = flow.save_pretrained(tmp_path / "flow", description="mine")
    assert read_config(path).description == "mine"
    for cls in (ZooModel, RealNVP):
        loaded = cls.from_pretrained(path)
        assert isinstance(loaded, RealNVP) and torch.equal(loaded.log_prob(X), flow.log_prob(X))
    with pytest.raises(ZooError, match="overwrite=True"):
        flow.save_pretrained(path)


def test_a_model_of_another_family_is_refused_in_one_line(tmp_path):
    path = zoo.get_family("realnvp").build({"shape": [2]}).save_pretrained(tmp_path / "flow")
    with pytest.raises(ZooError, match=r"holds a 'realnvp' model \(RealNVP\), not a MADE") as err:
        MADE.from_pretrained(path)
    assert "\n" not in str(err.value)


def test_from_pretrained_reads_the_hub_by_repo_and_revision(hub_env: HubServer):  # noqa: F811
    first = hub_env.commits["acme/moons"][0]
    latest = RealNVP.from_pretrained("acme/moons")
    pinned = ZooModel.from_pretrained("acme/moons", revision="v1")
    assert torch.equal(pinned.log_prob(X), zoo.load(f"hf-hub:acme/moons@{first}").log_prob(X))
    assert torch.equal(latest.log_prob(X), zoo.load("hf-hub:acme/moons").log_prob(X))
    assert not torch.equal(latest.log_prob(X), pinned.log_prob(X))
    with pytest.raises(HubError, match="acme/nothing not found"):
        ZooModel.from_pretrained("acme/nothing")
    with pytest.raises(HubError, match="not a zoo artifact"):
        ZooModel.from_pretrained("hf-hub:acme/notzoo")


def test_names_that_are_neither_are_one_line(tmp_path):
    with pytest.raises(NotFoundError, match="no artifact at"):
        ZooModel.from_pretrained(str(tmp_path / "nowhere" / "flow"))
    with pytest.raises(ZooError, match="a revision applies to a Hub repository"):
        ZooModel.from_pretrained("realnvp-moons", revision="v1")


def test_push_to_hub_publishes_the_artifact_with_a_zoo_card(hf_env, tmp_path,  # noqa: F811
                                                            monkeypatch: pytest.MonkeyPatch):
    fake = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    result = flow.push_to_hub("acme/mine", commit_message="from python")
    assert fake.names()[-1] == "upload_folder"
    assert fake.kwargs("upload_folder")["commit_message"] == "from python"
    assert sorted(fake.uploaded) == ["README.md", "config.json", "model.safetensors"]
    assert "library_name: zoo" in fake.uploaded["README.md"].decode().split("---")[1]
    assert result.repo == "acme/mine"
