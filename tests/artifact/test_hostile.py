"""Hostile artifacts: a config.json or weights file written by a stranger gives a clear error,
allocates nothing it should not, and writes nothing to the store.

Each case starts from a real tiny artifact and spoils one thing. Where the spoiled file is
the weights, the config's ``weights_sha256`` is updated to match, as an attacker would, so
that the deeper checks (header, shapes, dtypes, tensor names, values) are the ones tested.
A model card (README.md) with odd YAML, on the other hand, must break nothing: zoo never
executes or needs it, and ``zoo push`` completes it or replaces its front matter.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import faultkit
import pytest
import torch
from catalogs import catalog, tiny_entry
from faultkit import tree
from hubserver import hub_server, tiny_artifacts  # noqa: F401  (fixtures, used if olah is there)

import zoo
from zoo import api
from zoo.artifact import io as artifacts
from zoo.artifact import store
from zoo.artifact.verify import check
from zoo.cli.commands import cli
from zoo.errors import ArtifactError, ConfigError, ZooError

CONFIG = {"shape": [2], "couplings": 2, "hidden": 8}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = zoo.get_family("realnvp").build(CONFIG)
    return zoo.save(model, tmp_path_factory.mktemp("good") / "artifact", name="tiny",
                    dataset="moons")


@pytest.fixture
def no_real_build(monkeypatch):
    """Fail the test if any model is built for real (the checks must come first)."""
    family = type(zoo.get_family("realnvp"))

    def refuse(self, config):
        raise AssertionError("a hostile artifact got a model allocated")

    monkeypatch.setattr(family, "build", refuse)


# -- config.json -----------------------------------------------------------------------------


def edit_config(**changes) -> Callable[[dict], None]:
    def apply(cfg: dict) -> None:
        for key, value in changes.items():
            if "." in key:
                outer, inner = key.split(".")
                cfg[outer][inner] = value
            else:
                cfg[key] = value
    return apply


CONFIG_CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "unknown top-level key": (edit_config(evil=1), "unknown key 'evil'"),
    "unknown model key": (edit_config(**{"config.evil": 1}), "unknown key 'evil'"),
    "family not a string": (edit_config(family=5), "family: expected a string"),
    "hidden as a string": (edit_config(**{"config.hidden": "8"}), "hidden: expected an integer"),
    "hidden as a float": (edit_config(**{"config.hidden": 8.5}), "hidden: expected an integer"),
    "hidden as true": (edit_config(**{"config.hidden": True}), "hidden: expected an integer"),
    "shape not a list": (edit_config(**{"config.shape": "2"}), "shape: expected a list"),
    "metrics not numbers": (edit_config(metrics={"x": "y"}), "metrics.x: expected a number"),
    "sha256 not hex": (edit_config(weights_sha256="z" * 64), "expected 64 hex digits"),
    "format from the future": (edit_config(format=99), "newer than this zoo reads"),
    "format as a string": (edit_config(format="1"), "format: expected an integer"),
    "hidden 10^9": (edit_config(**{"config.hidden": 10**9}), "hidden: must be at most"),
    "hidden 10^400": (edit_config(**{"config.hidden": 10**400}), "hidden: must be at most"),
    "couplings 10^6": (edit_config(**{"config.couplings": 10**6}), "couplings: must be at most"),
    "hidden -8": (edit_config(**{"config.hidden": -8}), "hidden: must be at least"),
    "width 10^9": (edit_config(**{"config.shape": [10**9]}), "shape: D must be between"),
    "a 1000-d shape": (edit_config(**{"config.shape": [2] * 1000}), "expected [D]"),
    "family not installed": (edit_config(family="glow"), "unknown family 'glow'"),
    "family with a path": (edit_config(family="../../etc/passwd"), "unknown family"),
    "config not a mapping": (edit_config(config=[1, 2]), "expected a mapping"),
}

RAW_CONFIG_CASES: dict[str, tuple[bytes, str]] = {
    "not JSON": (b"{", "not valid JSON"),
    "not UTF-8": (b'{"family": "\xff"}', "not valid JSON"),
    "a list": (b"[]", "expected a mapping"),
    "NaN metric": (b'{"family": "realnvp", "config": {}, "weights_sha256": "' + b"0" * 64
                   + b'", "metrics": {"x": NaN}}', "must be finite"),
    "nested 100000 deep": (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    "nested 40 deep": (b'{"source": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
                       "nested more than"),
    "a 5000-digit integer": (b'{"format": ' + b"9" * 5000 + b"}", "not valid JSON"),
    "2 MB": (b'{"description": "' + b"x" * (2 << 20) + b'"}', "larger than"),
}


def hostile_copy(good: Path, where: Path) -> Path:
    shutil.copytree(good, where)
    return where


def set_config(path: Path, mutate: Callable[[dict], None]) -> None:
    cfg = json.loads((path / "config.json").read_text())
    mutate(cfg)
    (path / "config.json").write_text(json.dumps(cfg))


def assert_refused(path: Path, expect: str, home: Path) -> str:
    """``zoo.load`` and the CLI refuse ``path`` with ``expect`` in the message; the store is
    untouched."""
    before = tree(home)
    with pytest.raises((ZooError, ValueError)) as info:
        zoo.load(str(path))
    message = str(info.value)
    assert expect in message, message
    assert "\n" not in message and len(message) < 1000, message
    assert check(path) != ()
    assert tree(home) == before and faultkit.written_artifacts(home) == []
    return message


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_hostile_config_json(good, tmp_path, isolated_home, no_real_build, case):
    mutate, expect = CONFIG_CASES[case]
    path = hostile_copy(good, tmp_path / "a")
    set_config(path, mutate)
    assert_refused(path, expect, isolated_home)


@pytest.mark.parametrize("case", list(RAW_CONFIG_CASES))
def test_hostile_config_bytes(good, tmp_path, isolated_home, no_real_build, case):
    data, expect = RAW_CONFIG_CASES[case]
    path = hostile_copy(good, tmp_path / "a")
    (path / "config.json").write_bytes(data)
    assert_refused(path, expect, isolated_home)


def test_config_json_that_is_a_fifo_does_not_hang(good, tmp_path, isolated_home):
    path = hostile_copy(good, tmp_path / "a")
    (path / "config.json").unlink()
    os.mkfifo(path / "config.json")
    assert_refused(path, "no artifact at", isolated_home)
    with pytest.raises(ArtifactError, match="missing or not a file"):
        artifacts.load(path)


def test_a_model_of_2e9_parameters_and_a_tiny_file_is_refused_before_allocation(
        good, tmp_path, isolated_home, no_real_build):
    """Within every bound of the config (about 8 GB of float32), but the weights file is a
    few kB: refused from the shapes alone, without building the model."""
    path = hostile_copy(good, tmp_path / "a")
    set_config(path, edit_config(**{"config.couplings": 29, "config.hidden": 8192}))
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert_refused(path, "is truncated", isolated_home)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 500, grown_mb


def absurd_fields() -> list[tuple[str, str, object]]:
    """For every installed family: each bounded integer field set to 10^9 (or past its
    bound), and a shape of 10^10 elements."""
    import dataclasses

    from zoo.plugin.registry import registry

    reg, cases = registry(), []
    for name in reg.names("families"):
        cls = reg.get("families", name).obj.Config
        for f in dataclasses.fields(cls):
            high = f.metadata.get("high")
            if high is None or high >= 10**9 or f.name == "shape":
                continue
            if f.type in (int, "int"):
                cases.append((name, f.name, 10**9))
            elif str(f.type).startswith(("tuple[int", "list[int")):  # a width per layer
                cases.append((name, f.name, [10**9]))
        cases.append((name, "shape", [1, 10**5, 10**5]))
    return cases


@pytest.mark.parametrize("family, field, value", absurd_fields())
def test_absurd_sizes_are_refused_before_allocation_in_every_family(
        good, tmp_path, isolated_home, monkeypatch, family, field, value):
    fam = zoo.get_family(family)

    def refuse(*args, **kwargs):
        raise AssertionError("a model was allocated for an absurd config")

    monkeypatch.setattr(type(fam), "build", refuse)
    monkeypatch.setattr(type(fam), "create", refuse)
    config = ({"shape": [2]} if fam.data_kind == "continuous"
              else {"shape": [1, 2, 2], "levels": 3})
    config[field] = value
    path = hostile_copy(good, tmp_path / "a")
    set_config(path, edit_config(family=family, config=config))
    with pytest.raises(ConfigError, match=field):
        artifacts.load(path)
    assert faultkit.written_artifacts(isolated_home) == []


# -- model.safetensors -----------------------------------------------------------------------


def read_safetensors(data: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def write_safetensors(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def weights_case(fn: Callable[[dict, bytes], bytes]) -> Callable[[bytes], bytes]:
    def apply(data: bytes) -> bytes:
        header, body = read_safetensors(data)
        return fn(header, body)
    return apply


# The tensors are picked by kind, not by name: a family may rename its buffers.
def _matrix(h: dict) -> str:
    """A float32 weight tensor whose shape reversed is another (a transposed shape is wrong)."""
    return next(k for k, v in sorted(h.items()) if k != "__metadata__" and v["dtype"] == "F32"
                and len(v["shape"]) >= 2 and v["shape"] != v["shape"][::-1]
                and "weight" in k)


def _bias(h: dict) -> str:
    return next(k for k, v in sorted(h.items()) if "bias" in k and v["dtype"] == "F32")


def _swap_shape(h, b):  # same bytes, transposed shape: a header that lies about the shape
    key = _matrix(h)
    h[key]["shape"] = h[key]["shape"][::-1]
    return write_safetensors(h, b)


def _grow_shape(h, b):  # a shape bigger than its bytes
    key = _matrix(h)
    h[key]["shape"] = [h[key]["shape"][0], h[key]["shape"][1] + 1]
    return write_safetensors(h, b)


def _f32_as_i32(h, b):  # same size, another dtype
    h[_matrix(h)]["dtype"] = "I32"
    return write_safetensors(h, b)


def _f32_as_f64(h, b):  # a dtype whose size the offsets cannot hold
    h[_matrix(h)]["dtype"] = "F64"
    return write_safetensors(h, b)


def _overlap(h, b):
    keys = [k for k in sorted(h) if k != "__metadata__"]
    h[keys[1]]["data_offsets"] = h[keys[0]]["data_offsets"]
    return write_safetensors(h, b)


def resaved(change: Callable[[dict], None]) -> Callable[[bytes], bytes]:
    """A well-formed safetensors file with other tensors than the model's."""
    from safetensors.torch import load, save

    def apply(data: bytes) -> bytes:
        tensors = load(data)
        change(tensors)
        return save(tensors)
    return apply


def _extra(t):
    t["evil"] = torch.zeros(1)


def _missing(t):
    del t[sorted(t)[-1]]


def _renamed(t):
    key = sorted(t)[0]
    t[key + "_"] = t.pop(key)


def _delete(h, b):  # its bytes stay: the offsets no longer tile the data
    del h[sorted(k for k in h if k != "__metadata__")[0]]
    return write_safetensors(h, b)


def _poison(value: float):
    def apply(h, b):
        start, _ = h[_bias(h)]["data_offsets"]
        body = bytearray(b)
        body[start:start + 4] = struct.pack("<f", value)
        return write_safetensors(h, bytes(body))
    return apply


WEIGHTS_CASES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "header lies about a shape": (weights_case(_swap_shape), "the model needs torch.float32"),
    "shape larger than its bytes": (weights_case(_grow_shape), "not a valid safetensors file"),
    "header lies about a dtype": (weights_case(_f32_as_i32), "is torch.int32"),
    "dtype larger than its bytes": (weights_case(_f32_as_f64), "not a valid safetensors file"),
    "overlapping offsets": (weights_case(_overlap), "not a valid safetensors file"),
    "an extra tensor": (resaved(_extra), "unexpected tensors 'evil'"),
    "a missing tensor": (resaved(_missing), "missing tensors"),
    "a renamed tensor": (resaved(_renamed), "missing tensors"),
    "a tensor deleted from the header": (weights_case(_delete), "not a valid safetensors"),
    "a NaN weight": (weights_case(_poison(float("nan"))), "holds NaN or infinite values"),
    "an infinite weight": (weights_case(_poison(float("-inf"))), "holds NaN or infinite values"),
    "truncated to half": (lambda d: d[: len(d) // 2], "not a valid safetensors file"),
    "truncated to a tenth": (lambda d: d[: len(d) // 10], "is truncated"),
    "header length 2^60": (lambda d: struct.pack("<Q", 2**60) + d[8:], "not a valid safetensors"),
    "header not JSON": (lambda d: d[:8] + b"\xff" * (len(d) - 8), "not a valid safetensors"),
    "empty": (lambda d: b"", "is truncated"),
}


@pytest.mark.parametrize("case", list(WEIGHTS_CASES))
def test_hostile_weights(good, tmp_path, isolated_home, no_real_build, case):
    spoil, expect = WEIGHTS_CASES[case]
    path = hostile_copy(good, tmp_path / "a")
    weights = path / "model.safetensors"
    weights.write_bytes(spoil(weights.read_bytes()))
    set_config(path, edit_config(weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest()))
    message = assert_refused(path, expect, isolated_home)
    assert str(weights) in message


@pytest.mark.parametrize("what", ["directory", "fifo", "device", "missing"])
def test_weights_that_are_not_a_regular_file(good, tmp_path, isolated_home, no_real_build, what):
    path = hostile_copy(good, tmp_path / "a")
    weights = path / "model.safetensors"
    weights.unlink()
    if what == "directory":
        weights.mkdir()
    elif what == "fifo":
        os.mkfifo(weights)
    elif what == "device":
        weights.symlink_to("/dev/zero")
    assert_refused(path, "no artifact at", isolated_home)
    # /dev/zero is also outside the artifact: refused as a link out of it (zoo.artifact.safe_files)
    with pytest.raises(ArtifactError, match="missing or not a file|outside the artifact"):
        artifacts.load(path)


def test_weights_far_larger_than_the_model_are_not_read(good, tmp_path, isolated_home,
                                                        monkeypatch, no_real_build):
    monkeypatch.setattr(artifacts, "MAX_HEADER_BYTES", 1000)  # instead of writing 100 MB
    path = hostile_copy(good, tmp_path / "a")
    with open(path / "model.safetensors", "ab") as f:
        f.write(b"\0" * 5000)
    assert_refused(path, "far more than", isolated_home)


def test_cli_refuses_hostile_artifacts_in_one_line(good, tmp_path, isolated_home, cli_runner):
    path = hostile_copy(good, tmp_path / "a")
    set_config(path, edit_config(**{"config.hidden": 10**9}))
    for args in (["sample", str(path), "-o", str(tmp_path / "s.pt")], ["eval", str(path)],
                 ["verify", str(path)], ["pull", str(path)]):
        result = cli_runner.invoke(cli, args)
        if args[0] == "pull":  # a path is returned as it is; loading it is what checks
            continue
        assert result.exit_code != 0, args
        assert "Traceback" not in result.output and "hidden" in result.output, result.output
    assert not (tmp_path / "s.pt").exists()
    assert faultkit.written_artifacts(isolated_home) == []


# -- what reaches the store ---------------------------------------------------------------


@pytest.mark.parametrize("case, expect", [("hidden 10^9", "hidden: must be at most"),
                                          ("family not installed", "is a 'glow' model"),
                                          ("unknown model key", "unknown key 'evil'"),
                                          ("sha256 not hex", "64 hex digits")])
def test_a_source_delivering_hostile_files_stores_nothing(good, tiny_catalog, isolated_home,
                                                         monkeypatch, case, expect):
    """Whatever fills the staging folder (a download, a plugin's recipe) is checked before it
    gets the entry's name: a hostile artifact never reaches the store."""
    mutate, _ = CONFIG_CASES[case]

    def deliver(entry, directory, **kwargs):
        for name in store.FILES:
            shutil.copyfile(good / name, directory / name)
        set_config(directory, mutate)

    monkeypatch.setattr(api, "fetch_or_build", deliver)
    with pytest.raises((ZooError, ValueError), match=expect):
        api.pull("realnvp-tiny")
    assert faultkit.written_artifacts(isolated_home) == []


@pytest.mark.parametrize("change, expect", [
    ({"family": "made"}, "is a 'made' model"),
    ({"config.hidden": 16}, "'hidden': 16"),
])
def test_a_source_delivering_another_model_stores_nothing(good, tiny_catalog, isolated_home,
                                                          monkeypatch, change, expect):
    def deliver(entry, directory, **kwargs):
        for name in store.FILES:
            shutil.copyfile(good / name, directory / name)
        set_config(directory, edit_config(**change))

    monkeypatch.setattr(api, "fetch_or_build", deliver)
    with pytest.raises(ZooError, match=expect):
        api.pull("realnvp-tiny")
    assert faultkit.written_artifacts(isolated_home) == []


# -- model cards ---------------------------------------------------------------------------

ODD_CARDS = {
    "python tag": '---\n!!python/object/apply:os.system ["touch {pwned}"]\n---\nhi\n',
    "unterminated front matter": "---\nlicense: mit\nno end\n",
    "YAML syntax error": "---\n[1, 2\n---\ntext\n",
    "a list, not a mapping": "---\n- a\n- b\n---\ntext\n",
    "odd types": "---\ntags: 5\nlibrary_name: [a, b]\nlicense: {x: 1}\n---\ntext\n",
    "billion laughs": "---\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
              for p, c in zip("abcdefgh", "bcdefghi")) + "---\ntext\n",
    "NUL bytes": "---\n\x00\x01\n---\nbody\n",
    "empty": "",
    "1 MB of dashes": "---\n" * (1 << 18),
}


@pytest.mark.parametrize("case", list(ODD_CARDS))
def test_odd_model_cards_break_nothing(good, tmp_path, isolated_home, cli_runner, case):
    from zoo.artifact.card import complete_card

    pwned = tmp_path / "pwned"
    path = hostile_copy(good, tmp_path / "a")
    (path / "README.md").write_text(ODD_CARDS[case].replace("{pwned}", str(pwned)))
    model = zoo.load(str(path))
    assert torch.isfinite(model.log_prob(torch.zeros(2, 2))).all()
    assert check(path) == ()
    assert cli_runner.invoke(cli, ["info", str(path)]).exit_code == 0
    card = complete_card((path / "README.md").read_text(), artifacts.read_config(path),
                         repo="acme/moons")
    assert "library_name: zoo" in card and len(card) < 3 << 20
    assert not pwned.exists()
    assert faultkit.written_artifacts(isolated_home) == []


@pytest.fixture(scope="module", autouse=True)
def guarantee_rows():
    """Rows of docs/guarantees.md for the cases of this module, written once its tests have
    run (a fixture, not a test: it asserts nothing; ``benchmarks/guarantees.py`` prints the
    table only from a run in which every test passed)."""
    yield
    faultkit.record("hostile", "config.json: unknown keys, wrong types, absurd sizes (hidden "
                    "10^9 and 10^400, couplings 10^6, D 10^9), family not installed, newer "
                    "format, bad sha256", len(CONFIG_CASES),
                    "one-line ConfigError/ArtifactError/NotFoundError naming the field; no "
                    "model built", "nothing written (store tree unchanged)")
    faultkit.record("hostile", "config.json bytes: not JSON, not UTF-8, NaN, nesting 100000 "
                    "deep, 5000-digit integer, 2 MB, a FIFO", len(RAW_CONFIG_CASES) + 1,
                    "one-line ArtifactError, no hang", "nothing written")
    faultkit.record("hostile", "every bounded integer field of every installed family set "
                    "to 10^9, and shapes of 10^10 elements", len(absurd_fields()),
                    "ConfigError naming the field; neither build nor create called",
                    "nothing written")
    faultkit.record("hostile", "a config of 2e9 parameters (8 GB, within bounds) with a 2 kB "
                    "weights file", 1, "refused as truncated from the shapes alone (built on "
                    "the meta device); < 500 MB memory growth", "nothing written")
    faultkit.record("hostile", "model.safetensors: header lying about shapes/dtypes/offsets, "
                    "extra or missing tensors, NaN/inf weights, truncated, empty, huge header "
                    "length, oversized, not a regular file (dir, FIFO, /dev/zero)",
                    len(WEIGHTS_CASES) + 4 + 1,
                    "one-line ArtifactError naming the file and tensor", "nothing written")
    faultkit.record("hostile", "a source (download or recipe) delivering a hostile or "
                    "different model for a catalog entry", 6,
                    "refused before publishing", "no final name, no staging leftovers")
    faultkit.record("hostile", "README.md with odd YAML (python tag, syntax errors, not a "
                    "mapping, odd types, billion laughs, NUL, empty, 1 MB)", len(ODD_CARDS),
                    "load, info, verify work; `zoo push` keeps the text and writes valid "
                    "front matter; no YAML executed", "nothing written")


# -- through a real Hub server -------------------------------------------------------------


@pytest.fixture
def evil_hub(request, tmp_path, monkeypatch):
    """The local Hub server (olah) with a repository ``evil/hidden`` holding an artifact
    whose config asks for a hidden width of 10^9 (weights and sha256 consistent)."""
    try:
        server = request.getfixturevalue("hub_server")
    except pytest.skip.Exception:
        pytest.skip("olah is not installed")
    from hubserver import artifact_files, commit_files
    from huggingface_hub import constants

    files = artifact_files(server.artifacts["A"])
    cfg = json.loads(files["config.json"])
    cfg["config"]["hidden"] = 10**9
    files["config.json"] = json.dumps(cfg).encode()
    repo = server.mirrors / "models" / "evil" / "hidden"
    if not repo.exists():
        commit_files(repo, files, "hostile config")
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return server


def test_a_hostile_hub_repository_is_refused_and_stores_nothing(evil_hub, registry_file,
                                                                 isolated_home, no_real_build):
    with pytest.raises(ConfigError, match="hidden: must be at most"):
        zoo.load("hf-hub:evil/hidden")
    sha = json.loads((evil_hub.artifacts["A"] / "config.json").read_text())["weights_sha256"]
    registry_file(catalog(tiny_entry(
        extra=f"    sources: [{{repo: evil/hidden, revision: main, sha256: {sha}}}]")))
    with pytest.raises(ZooError, match="hidden: must be at most|hidden.: 1000000000"):
        api.pull("realnvp-tiny")
    assert faultkit.written_artifacts(isolated_home) == []
    faultkit.record("hostile", "a Hub repository (local server) whose config.json asks for "
                    "hidden width 10^9, by `hf-hub:` name and as a catalog source", 2,
                    "load refused (ConfigError); the catalog pull refused before publishing",
                    "nothing written to the store")
