"""zoo.artifact.hub against a real Hub server on loopback (olah), and at the huggingface_hub boundary.

Downloads run the real huggingface_hub client against olah serving git repositories built
from real artifacts (see ``hubserver.py``). What olah cannot do (uploads; the Hub's exact
error answers) is tested at the huggingface_hub API boundary: ``HfApi`` methods replaced for
push, and HTTP answers crafted with an ``httpx2.MockTransport`` for errors, so that
huggingface_hub's own error handling still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import httpx2
import pytest
import torch
from catalogs import catalog, tiny_entry
from hubserver import HubServer, commit_files, hub_server, tiny_artifacts  # noqa: F401  (fixtures)
from huggingface_hub import CommitInfo, HfApi, constants
from huggingface_hub.utils import set_client_factory
from huggingface_hub.utils._http import default_client_factory

import zoo
from zoo.artifact import extras, hub, store
from zoo.artifact.io import CONFIG, FILES, WEIGHTS, read_config, sha256_file
from zoo.errors import ArtifactError, HubError

MOONS = "hf-hub:acme/moons"
SECRET = "hf_zooTESTtokenNEVERprinted0123456789"


FAKE_ENDPOINT = "https://hub.zoo.invalid"  # never contacted: for tests that need no server


@pytest.fixture
def hf_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """huggingface_hub with a fresh, empty cache under ``tmp_path/hf``, no token, online."""
    monkeypatch.setenv("HF_ENDPOINT", FAKE_ENDPOINT)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN",
                "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))
    return tmp_path / "hf"


@pytest.fixture
def hub_env(hub_server: HubServer, hf_env: Path,  # noqa: F811
            monkeypatch: pytest.MonkeyPatch) -> HubServer:
    """The real client pointed at olah, with a fresh, empty Hugging Face cache and no token."""
    monkeypatch.setenv("HF_ENDPOINT", hub_server.url)
    return hub_server


@contextlib.contextmanager
def http_answers(handler):
    """Route every request huggingface_hub makes to ``handler(request) -> httpx2.Response``."""
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(handler)))
    try:
        yield
    finally:
        set_client_factory(default_client_factory)


@contextlib.contextmanager
def no_network():
    """Fail (and record) any request huggingface_hub makes: offline must make none."""
    seen: list[str] = []

    def refuse(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.method} {request.url}")
        raise httpx2.ConnectError("the network was used", request=request)

    with http_answers(refuse):
        yield seen


def log_prob_of(model, seed: int = 0) -> torch.Tensor:
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.log_prob(x)


def same_weights(path: Path, artifact: Path) -> bool:
    return (path / WEIGHTS).read_bytes() == (artifact / WEIGHTS).read_bytes()


# -- pulling hf-hub: names ------------------------------------------------------------------


def test_pull_main_into_the_huggingface_cache(hub_env: HubServer, tmp_path: Path):
    path = zoo.pull(MOONS)
    assert path.name == hub_env.commits["acme/moons"][-1]  # the snapshot is named by commit
    assert path.is_relative_to(tmp_path / "hf" / "hub")  # huggingface_hub's cache, no other
    assert path.parent.parent.name == "models--acme--moons"
    assert same_weights(path, hub_env.artifacts["B"])
    assert not (store.models_dir()).exists()  # nothing copied into $ZOO_HOME
    model = zoo.load(MOONS)
    assert torch.equal(log_prob_of(model), log_prob_of(zoo.load(hub_env.artifacts["B"])))


@pytest.mark.parametrize("revision", ["full", "short", "tag"])
def test_pull_by_commit_and_tag(hub_env: HubServer, revision: str):
    first = hub_env.commits["acme/moons"][0]
    rev = {"full": first, "short": first[:7], "tag": "v1"}[revision]
    path = zoo.pull(f"{MOONS}@{rev}")
    assert path.name == first
    assert same_weights(path, hub_env.artifacts["A"])
    info = zoo.info(f"{MOONS}@{rev}")
    assert info["pulled"] and info["source"] == {"kind": "hub", "repo": "acme/moons",
                                                 "revision": rev, "commit": first}


def test_revisions_pin_different_weights(hub_env: HubServer):
    first, latest = hub_env.commits["acme/moons"]
    old, new = zoo.load(f"{MOONS}@{first}"), zoo.load(f"{MOONS}@main")
    assert torch.equal(log_prob_of(old), log_prob_of(zoo.load(hub_env.artifacts["A"])))
    assert torch.equal(log_prob_of(new), log_prob_of(zoo.load(hub_env.artifacts["B"])))
    assert not torch.equal(log_prob_of(old), log_prob_of(new))
    assert zoo.pull(f"{MOONS}@{first}") != zoo.pull(f"{MOONS}@{latest}")


def test_offline_serves_the_cache_without_any_request(hub_env: HubServer,
                                                      monkeypatch: pytest.MonkeyPatch):
    path = zoo.pull(MOONS)
    monkeypatch.setenv("HF_ENDPOINT", hub_env.dead_url)
    with no_network() as seen:
        assert zoo.pull(MOONS, offline=True) == path
        assert hub.cached_path(MOONS) == path
        # A short hash resolves offline by a unique prefix among the cached commits.
        assert zoo.pull(f"{MOONS}@{path.name[:8]}", offline=True) == path
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # set after import: still honoured
        assert zoo.pull(MOONS) == path
        model = zoo.load(MOONS)
        assert zoo.info(MOONS)["source"]["commit"] == path.name
    assert seen == []
    assert torch.equal(log_prob_of(model), log_prob_of(zoo.load(hub_env.artifacts["B"])))


def test_offline_says_what_is_not_cached(hub_env: HubServer, monkeypatch: pytest.MonkeyPatch):
    with no_network() as seen:
        with pytest.raises(hub.HubUnavailableError) as err:
            zoo.pull(MOONS, offline=True)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(hub.HubUnavailableError, match="HF_HUB_OFFLINE is set"):
            zoo.pull(MOONS)
    assert seen == []
    message = str(err.value)
    assert "hf-hub:acme/moons@main is not in the Hugging Face cache" in message
    assert "offline (--offline)" in message and "\n" not in message
    assert zoo.info(MOONS)["pulled"] is False


def test_network_down_uses_the_cache_or_says_why(hub_env: HubServer,
                                                monkeypatch: pytest.MonkeyPatch):
    path = zoo.pull(MOONS)
    monkeypatch.setenv("HF_ENDPOINT", hub_env.dead_url)
    assert zoo.pull(MOONS) == path  # huggingface_hub falls back to the cached ref
    with pytest.raises(hub.HubUnavailableError) as err:
        zoo.pull("hf-hub:acme/corrupt")
    assert f"cannot reach the Hub at {hub_env.dead_url}" in str(err.value)
    assert "check your connection" in str(err.value) and "\n" not in str(err.value)


def test_corrupted_download_is_refused(hub_env: HubServer):
    expected = read_config(hub_env.artifacts["A"]).weights_sha256
    with pytest.raises(hub.HubIntegrityError) as err:
        zoo.pull("hf-hub:acme/corrupt")
    message = str(err.value)
    assert "is corrupted" in message and expected in message
    blob = next((hub_env.mirrors / "models/acme/corrupt/.git/lfs/objects").rglob("*/*/*"))
    assert sha256_file(blob) in message  # the actual hash of what was served
    with pytest.raises(HubError):
        zoo.load("hf-hub:acme/corrupt")


def test_a_spoiled_cache_file_is_refused_offline_and_downloaded_again_online(hub_env: HubServer):
    path = zoo.pull(MOONS)
    blob = (path / WEIGHTS).resolve()
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x00")
    with pytest.raises(hub.HubIntegrityError, match="--force"):
        zoo.pull(MOONS, offline=True)
    repaired = zoo.pull(MOONS)
    assert same_weights(repaired, hub_env.artifacts["B"])


def test_force_downloads_again(hub_env: HubServer):
    path = zoo.pull(MOONS)
    (path / WEIGHTS).resolve().unlink()  # lost blob: only a real download brings it back
    assert same_weights(zoo.pull(MOONS, force=True), hub_env.artifacts["B"])
    with pytest.raises(HubError, match="offline"):
        zoo.pull(MOONS, force=True, offline=True)


def test_a_repository_of_another_library_is_not_a_zoo_artifact(hub_env: HubServer):
    with pytest.raises(HubError, match=r"not a zoo artifact: it has no model\.safetensors"):
        zoo.pull("hf-hub:acme/notzoo")


def test_unknown_repository_on_the_server(hub_env: HubServer):
    with pytest.raises(HubError, match="Hub repository acme/nothing not found") as err:
        zoo.pull("hf-hub:acme/nothing")
    assert "hf auth login" in str(err.value)


def test_cli_pull_and_info(hub_env: HubServer, cli_runner):
    from zoo.cli.commands import cli

    result = cli_runner.invoke(cli, ["pull", MOONS, "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(hub_env.commits["acme/moons"][-1])
    result = cli_runner.invoke(cli, ["info", MOONS])
    assert result.exit_code == 0 and hub_env.commits["acme/moons"][-1] in result.stdout
    result = cli_runner.invoke(cli, ["pull", "hf-hub:acme/nothing"])
    assert result.exit_code != 0
    assert result.stderr.count("\n") == 1 and "not found" in result.stderr


# -- catalog entries with published weights -------------------------------------------------


def catalog_with_source(registry_file, *, revision: str, sha256: str,
                        repo: str = "acme/moons") -> None:
    registry_file(catalog(tiny_entry(
        steps=5, eval_every=5, recipe="val_fraction: 0.05",
        extra=f"    sources:\n      - {{repo: {repo}, revision: {revision}, sha256: {sha256}}}")))


def test_catalog_entry_comes_from_its_pinned_hub_source(hub_env: HubServer, registry_file):
    first = hub_env.commits["acme/moons"][0]
    catalog_with_source(registry_file, revision=first,
                        sha256=read_config(hub_env.artifacts["A"]).weights_sha256)
    path = zoo.pull("realnvp-tiny")
    assert path == store.artifact_dir("realnvp-tiny")
    for name in FILES:
        assert (path / name).read_bytes() == (hub_env.artifacts["A"] / name).read_bytes()
    # Linked from the Hugging Face cache, not a second copy.
    assert os.path.samefile(path / WEIGHTS, hub.cached_path(f"{MOONS}@{first}") / WEIGHTS)
    source = {"kind": "hub", "repo": "acme/moons", "revision": first, "commit": first}
    assert json.loads((path / hub.SOURCE_FILE).read_text()) == source
    assert zoo.info("realnvp-tiny")["source"] == source
    assert torch.equal(log_prob_of(zoo.load("realnvp-tiny")),
                       log_prob_of(zoo.load(hub_env.artifacts["A"])))


def test_catalog_sha256_mismatch_is_refused_and_nothing_stored(hub_env: HubServer,
                                                              registry_file):
    pinned = read_config(hub_env.artifacts["A"]).weights_sha256
    actual = read_config(hub_env.artifacts["B"]).weights_sha256
    catalog_with_source(registry_file, revision="main", sha256=pinned)  # main moved on to B
    with pytest.raises(hub.HubIntegrityError) as err:
        zoo.pull("realnvp-tiny")
    message = str(err.value)
    assert f"sha256 {actual}" in message and f"pins {pinned}" in message
    assert "nothing was stored" in message and "\n" not in message
    assert not store.artifact_dir("realnvp-tiny").exists()
    leftovers = [p.name for p in store.models_dir().iterdir()] if store.models_dir().exists() else []
    assert leftovers == []
    assert zoo.info("realnvp-tiny")["pulled"] is False


@pytest.mark.parametrize("how", ["network down", "offline"])
def test_catalog_entry_falls_back_to_its_recipe(hub_env: HubServer, registry_file,
                                                monkeypatch: pytest.MonkeyPatch, caplog, how):
    catalog_with_source(registry_file, revision=hub_env.commits["acme/moons"][0],
                        sha256=read_config(hub_env.artifacts["A"]).weights_sha256)
    monkeypatch.setenv("HF_ENDPOINT", hub_env.dead_url)
    with caplog.at_level("WARNING", logger="zoo.artifact.hub"):
        path = zoo.pull("realnvp-tiny", offline=how == "offline", progress=False)
    assert not (path / hub.SOURCE_FILE).exists()
    info = zoo.info("realnvp-tiny")
    assert info["source"]["kind"] == "recipe"
    assert not same_weights(path, hub_env.artifacts["A"])
    assert "building it from its recipe" in caplog.text


# -- pushing --------------------------------------------------------------------------------


class FakeHub:
    """Records what zoo asks of ``HfApi`` (and what the uploaded folder held)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: Exception | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.tokens: set[str] = set()
        self.endpoints: set[str] = set()
        self.uploaded: dict[str, bytes] = {}
        self.fail = fail
        for name in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self._recorder(name))

    def _recorder(self, name: str):
        fake = self

        def method(api: HfApi, *args, **kwargs):
            fake.calls.append((name, kwargs))
            fake.tokens.add(api.token)
            fake.endpoints.add(api.endpoint)
            if fake.fail is not None:
                raise fake.fail
            if name == "upload_folder":
                folder = Path(kwargs["folder_path"])
                fake.uploaded = {p.name: p.read_bytes() for p in folder.iterdir()}
                return CommitInfo(commit_url=f"{api.endpoint}/{kwargs['repo_id']}/commit/"
                                  + "c" * 40, commit_message=kwargs["commit_message"],
                                  commit_description="", oid="c" * 40,
                                  _endpoint=api.endpoint)
            return None

        return method

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def kwargs(self, name: str) -> dict:
        return next(kw for n, kw in self.calls if n == name)


def test_push_uploads_the_artifact_with_a_completed_card(hf_env, tiny_artifacts,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch):
    fake = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    artifact = tiny_artifacts["A"]
    cfg = read_config(artifact)
    result = hub.push(str(artifact), repo="acme/new", revision="dev", private=True,
                      message="first upload")
    assert fake.names() == ["create_repo", "create_branch", "upload_folder"]
    assert fake.kwargs("create_repo") == {"repo_id": "acme/new", "repo_type": "model",
                                          "private": True, "exist_ok": True}
    assert fake.kwargs("create_branch")["branch"] == "dev"
    upload = fake.kwargs("upload_folder")
    assert (upload["repo_id"], upload["revision"]) == ("acme/new", "dev")
    assert upload["commit_message"] == "first upload"
    assert fake.tokens == {SECRET} and fake.endpoints == {FAKE_ENDPOINT}
    assert sorted(fake.uploaded) == sorted(FILES)
    for name in (CONFIG, WEIGHTS):
        assert fake.uploaded[name] == (artifact / name).read_bytes()
    card = fake.uploaded["README.md"].decode()
    front = card.split("---")[1]
    for line in ("library_name: zoo", "license: mit", "- realnvp", "- moons", "- test_nll",
                 "- bits_per_dim"):
        assert line in front
    assert "test_n\n" not in front
    assert 'zoo.load("hf-hub:acme/new")' in card and cfg.weights_sha256 in card
    assert f"{cfg.metrics['test_nll']:.4f} ± {cfg.metrics['test_nll_stderr']:.4f}" in card
    assert result == hub.PushResult(repo="acme/new", commit="c" * 40, sha256=cfg.weights_sha256,
                                    commit_url=f"{FAKE_ENDPOINT}/acme/new/commit/" + "c" * 40)


def test_push_keeps_a_handwritten_card_and_completes_its_metadata(
        hf_env, tiny_artifacts, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # noqa: F811
    fake = FakeHub(monkeypatch)
    artifact = tmp_path / "mine"
    artifact.mkdir()
    for name in (CONFIG, WEIGHTS):
        (artifact / name).write_bytes((tiny_artifacts["A"] / name).read_bytes())
    (artifact / "README.md").write_text("---\ntags: [mine]\n---\n# My flow\n\nHand written.\n")
    hub.push(artifact, repo="acme/mine", token=SECRET)
    assert "create_branch" not in fake.names()
    assert fake.kwargs("upload_folder")["revision"] is None
    card = fake.uploaded["README.md"].decode()
    assert "# My flow\n\nHand written." in card
    front = card.split("---")[1]
    assert "library_name: zoo" in front and "- mine" in front and "- realnvp" in front


def test_cli_push_prints_url_and_sha_and_never_the_token(hf_env, tiny_artifacts, cli_runner,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch):
    from zoo.cli.commands import cli

    FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    artifact = tiny_artifacts["B"]
    result = cli_runner.invoke(cli, ["push", str(artifact), "--repo", "acme/new"])
    assert result.exit_code == 0, result.output
    assert f"{FAKE_ENDPOINT}/acme/new/commit/" in result.stdout
    assert read_config(artifact).weights_sha256 in result.stdout
    assert SECRET not in result.output


def test_push_without_a_token_says_how_to_log_in(hf_env, tiny_artifacts,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch):
    fake = FakeHub(monkeypatch)
    with pytest.raises(HubError) as err:
        hub.push(tiny_artifacts["A"], repo="acme/new")
    assert "hf auth login" in str(err.value) and "HF_TOKEN" in str(err.value)
    assert fake.calls == []


def refusal(status: int, echo: str) -> Exception:
    """The error of a Hub answer ``status`` whose message (mis)behaves by echoing ``echo``."""
    from huggingface_hub.utils import hf_raise_for_status

    request = httpx2.Request("POST", f"{FAKE_ENDPOINT}/api/repos/create")
    response = httpx2.Response(status, request=request,
                               headers={"X-Error-Message": f"no ({echo})"})
    try:
        hf_raise_for_status(response)
    except Exception as exc:
        return exc
    raise AssertionError(f"hf_raise_for_status accepted a {status}")


@pytest.mark.parametrize("status, expected", [
    (401, "the Hub refused your credentials (401)"),
    (403, "your token cannot write to acme/theirs (403)"),
])
def test_push_errors_are_one_line_and_hide_the_token(hf_env, tiny_artifacts, cli_runner,  # noqa: F811
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     status: int, expected: str):
    from zoo.cli.commands import cli

    FakeHub(monkeypatch, fail=refusal(status, SECRET))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with pytest.raises(HubError) as err:
        hub.push(tiny_artifacts["A"], repo="acme/theirs")
    assert expected in str(err.value) and "hf auth login" in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # not in tracebacks
    assert SECRET not in str(err.value) and "***" in str(err.value)
    result = cli_runner.invoke(cli, ["push", str(tiny_artifacts["A"]), "--repo", "acme/x"])
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert SECRET not in result.output


# -- pictures: pushed, served by the Hub, pulled ---------------------------------------------

EXTRAS = (extras.SAMPLES, extras.TRAINING, extras.HISTORY)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_pictures_go_up_with_push_and_come_back_from_the_hub(hub_env: HubServer,
                                                             pictured_artifact: Path,
                                                             registry_file,
                                                             monkeypatch: pytest.MonkeyPatch):
    fake = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    hub.push(pictured_artifact, repo="acme/pictured")
    assert sorted(fake.uploaded) == sorted([*FILES, *EXTRAS])
    for name in (CONFIG, WEIGHTS, *EXTRAS):
        assert fake.uploaded[name] == (pictured_artifact / name).read_bytes()
    card = fake.uploaded["README.md"].decode()
    assert "pip install genzoo" in card and 'zoo.load("hf-hub:acme/pictured")' in card
    assert set(LINK.findall(card)) == set(fake.uploaded)  # every file shown is uploaded

    # The local Hub serves what was uploaded (pictures as LFS files, as the Hub keeps them).
    repo = hub_env.mirrors / "models" / "acme" / "pictured"
    commit = commit_files(repo, fake.uploaded, "upload",
                          lfs=(WEIGHTS, extras.SAMPLES, extras.TRAINING))
    path = zoo.pull("hf-hub:acme/pictured")
    assert path.name == commit
    assert {p.name: p.read_bytes() for p in path.iterdir()} == fake.uploaded
    [result] = zoo.verify(["hf-hub:acme/pictured"])
    assert result.ok and result.warnings == ()

    # A catalog entry published there gets the pictures in its store folder too.
    catalog_with_source(registry_file, revision=commit, sha256=read_config(path).weights_sha256,
                        repo="acme/pictured")
    stored = zoo.pull("realnvp-tiny")
    for name in EXTRAS:
        assert os.path.samefile(stored / name, path / name)  # linked from the cache
    [result] = zoo.verify(["realnvp-tiny"])
    assert result.ok and result.warnings == ()
    assert zoo.info("realnvp-tiny")["source"]["repo"] == "acme/pictured"


def test_push_refuses_a_changed_picture_and_leaves_out_a_missing_one(
        hf_env, pictured_artifact: Path, monkeypatch: pytest.MonkeyPatch, caplog):
    fake = FakeHub(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    (pictured_artifact / extras.TRAINING).write_bytes(b"not the curve")
    with pytest.raises(ArtifactError, match="training.png is corrupted: sha256 .* not publishing"):
        hub.push(pictured_artifact, repo="acme/pictured")
    assert fake.calls == []
    (pictured_artifact / extras.TRAINING).unlink()
    hub.push(pictured_artifact, repo="acme/pictured")
    assert sorted(fake.uploaded) == sorted([*FILES, extras.SAMPLES, extras.HISTORY])
    card = fake.uploaded["README.md"].decode()
    assert extras.TRAINING not in card and set(LINK.findall(card)) == set(fake.uploaded)
    assert "training.png is missing" in caplog.text


# -- the errors users hit, as the Hub answers them -------------------------------------------


def answer(status: int, code: str | None = None):
    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"X-Error-Code": code} if code else {}
        return httpx2.Response(status, headers=headers, request=request, json={"error": "no"})

    return handler


def connection_refused(request: httpx2.Request) -> httpx2.Response:
    raise httpx2.ConnectError("connection refused", request=request)


@pytest.mark.parametrize("handler, name, expected", [
    (answer(404, "RepoNotFound"), MOONS, "Hub repository acme/moons not found, or it is private"),
    (answer(401), MOONS, "Hub repository acme/moons not found, or it is private"),
    (answer(404, "RevisionNotFound"), f"{MOONS}@nope", "revision 'nope' not found in acme/moons"),
    (answer(401, "GatedRepo"), MOONS, "acme/moons is gated: accept its conditions"),
    (answer(403), MOONS, "access to acme/moons is forbidden (403)"),
    (answer(503), MOONS, "failed (503) on hf-hub:acme/moons@main: try again later"),
    (connection_refused, MOONS, "cannot reach the Hub"),
], ids=["not-found", "unauthorised", "no-revision", "gated", "forbidden", "down", "offline"])
def test_hub_errors_are_one_line_with_what_to_do(hf_env, handler, name: str,
                                                  expected: str):
    with http_answers(handler), pytest.raises(HubError) as err:
        zoo.pull(name)
    message = str(err.value)
    assert expected in message and "\n" not in message
    if "login" in message or "private" in message:
        assert "hf auth login" in message


def test_requests_name_zoo_as_the_library(hf_env):
    agents: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        agents.append(request.headers.get("user-agent", ""))
        return answer(404, "RepoNotFound")(request)

    with http_answers(handler), pytest.raises(HubError):
        zoo.pull(MOONS)
    assert agents and all(f"zoo/{hub._version()}" in agent for agent in agents)
