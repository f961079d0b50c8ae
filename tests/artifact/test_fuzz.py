"""Fuzzing the readers of untrusted data with hypothesis: ``zoo.config.parse`` (every config
class: recipes, catalog entries, artifact configs, each installed family's config), the
catalog reader (``registry.yaml`` text) and the artifact config reader (``config.json``
bytes). Whatever comes in, the only possible outcomes are a valid object or zoo's own error
with a one-line message; a parsed object survives a round trip through ``to_dict``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import faultkit
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zoo import config as zconfig
from zoo.artifact.io import ArtifactConfig, read_config
from zoo.catalog import Entry, HubSource, load_catalog
from zoo.catalog.recipe import Recipe
from zoo.errors import ArtifactError, CatalogError, ConfigError, NotFoundError
from zoo.plugin.registry import registry

# ZOO_FUZZ_EXAMPLES raises the count for a deeper run; the normal run stays fast.
EXAMPLES = int(os.environ.get("ZOO_FUZZ_EXAMPLES", "60"))
FAST = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

#: Examples each reader really ran, counted as they run: the guarantees table reports these.
RAN: Counter[str] = Counter()

# JSON-like values, with the awkward ones: huge and negative integers, NaN and infinities,
# empty and odd strings, deep nesting.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "..", "/etc", "\x00", "adamw", "relu", "moons", "realnvp", "a" * 300]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def config_classes() -> dict[str, type]:
    classes = {"Recipe": Recipe, "Entry": Entry, "HubSource": HubSource,
               "ArtifactConfig": ArtifactConfig}
    reg = registry()
    for name in reg.names("families"):
        classes[f"{name}.Config"] = reg.get("families", name).obj.Config
    return classes


def near_valid(cls: type) -> st.SearchStrategy[dict]:
    """Mappings over ``cls``'s field names (and a stray key now and then) with any values:
    most fields are present, so validation gets past the first check."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    keys = st.sampled_from(names + ["evil"])
    return st.dictionaries(keys, values, max_size=len(names) + 1)


def assert_one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text and len(text) <= 1000, text


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.mark.parametrize("label", list(config_classes()))
def test_config_parse_never_fails_otherwise(label):
    cls = config_classes()[label]

    @FAST
    @given(raw=st.one_of(near_valid(cls), values))
    def run(raw):
        RAN[f"config {label}"] += 1
        try:
            obj = zconfig.parse(cls, raw, where="fuzz")
        except ConfigError as exc:
            assert_one_line(exc)
            return
        again = zconfig.parse(cls, json.loads(json.dumps(zconfig.to_dict(obj))), where="again")
        assert again == obj

    run()


REGISTRY_KEYS = ["name", "family", "dataset", "recipe", "config", "description", "metrics",
                 "sources", "provider", "evil"]
entries = st.dictionaries(st.sampled_from(REGISTRY_KEYS), values, max_size=6)
documents = st.one_of(
    values,
    st.fixed_dictionaries({"version": st.one_of(st.just(1), scalars),
                           "entries": st.one_of(st.lists(entries, max_size=3), values)}),
)
yaml_texts = st.one_of(
    documents.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=200),
    st.sampled_from([
        "version: 1\nentries: [{name: x, family: realnvp, dataset: moons, recipe: {}}]\n",
        "!!python/object/apply:os.system ['echo no']\n",
        "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
        "entries: " + "[" * 5000 + "]" * 5000 + "\n",
        "version: " + "9" * 5000 + "\n",
        "\xff\xfe",
    ]),
)


@FAST
@given(text=yaml_texts)
@example(text="entries:\n  - name: ../x\n    family: realnvp\n    dataset: moons\n    recipe: {}\n")
def test_catalog_reader_never_fails_otherwise(text):
    RAN["registry.yaml"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        try:
            catalog = load_catalog(path)
        except CatalogError as exc:
            assert_one_line(exc)
            return
        for entry in catalog:
            assert entry.name in catalog.names()


config_documents = st.one_of(
    values,
    st.fixed_dictionaries(
        {"family": st.one_of(st.just("realnvp"), scalars),
         "config": st.one_of(st.fixed_dictionaries({"shape": st.just([2])}), values),
         "weights_sha256": st.one_of(st.just("0" * 64), scalars)},
        optional={"format": values, "metrics": values, "recipe": values, "source": values,
                  "versions": values, "name": values, "evil": values}),
)
config_bytes = st.one_of(
    config_documents.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"[" * 100000, b'{"a": 1e999}', b'{"format": ' + b"9" * 5000 + b"}",
                     b"\xef\xbb\xbf{}", b"NaN", b'{"family": "realnvp", "family": 5}']),
)


@FAST
@given(data=config_bytes)
def test_artifact_config_reader_never_fails_otherwise(data):
    RAN["config.json"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_bytes(data)
        try:
            cfg = read_config(tmp)
        except (ArtifactError, NotFoundError) as exc:
            assert_one_line(exc)
            return
        assert isinstance(cfg, ArtifactConfig)


@settings(max_examples=max(40, EXAMPLES // 2), deadline=None)
@given(text=st.one_of(st.text(max_size=300),
                      documents.map(lambda d: "---\n" + yaml.safe_dump(d) + "---\nbody\n")))
def test_completing_any_model_card_gives_front_matter_the_hub_reads(text):
    from huggingface_hub import ModelCard

    from zoo.artifact.card import complete_card

    RAN["model card"] += 1
    cfg = ArtifactConfig(family="realnvp", config={"shape": [2]}, weights_sha256="0" * 64,
                         name="tiny", dataset="moons", metrics={"test_nll": 1.0})
    card = complete_card(text, cfg, repo="acme/moons")
    data = ModelCard(card).data.to_dict()  # strict: its front matter must parse
    assert "zoo" in data["tags"] and data.get("library_name")


FUZZERS = {"test_config_parse_never_fails_otherwise": "config",
           "test_catalog_reader_never_fails_otherwise": "registry.yaml",
           "test_artifact_config_reader_never_fails_otherwise": "config.json",
           "test_completing_any_model_card_gives_front_matter_the_hub_reads": "model card"}


def test_counts_for_the_guarantees_table(request):
    """The fuzzing row of docs/guarantees.md: the examples the tests above really ran (this
    test runs after them), and every reader among them."""
    selected = {item.originalname for item in request.session.items
                if item.module is request.module and item.originalname in FUZZERS}
    if not selected:
        pytest.skip("counts the examples of the fuzzing tests above: run it with them")
    readers = {FUZZERS[name] for name in selected} - {"config"}
    if "test_config_parse_never_fails_otherwise" in selected:
        readers |= {f"config {label}" for label in config_classes()}
    idle = sorted(readers - {name for name, count in RAN.items() if count})
    assert not idle, f"fuzzed readers that ran no example: {idle}"
    # Hypothesis may stop early when it has tried every input a strategy can make, but none
    # of these strategies is that small: each reader gets most of its budget.
    few = {name: RAN[name] for name in readers if RAN[name] < min(EXAMPLES, 40) // 2}
    assert not few, f"readers that ran far fewer examples than asked for: {few}"
    faultkit.record("fuzz", f"hypothesis: random and near-valid mappings for "
                    f"{sum(r.startswith('config ') for r in readers)} config classes, random "
                    "registry.yaml text, random "
                    "config.json bytes, random model cards", sum(RAN.values()),
                    "a valid object (round-trips through to_dict) or a one-line zoo error; "
                    "never another exception", "the readers write nothing")


@pytest.mark.parametrize("text", [
    "entries: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "entries: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n",
], ids=["100000 brackets", "50000 braces"])
def test_deeply_nested_registry_is_an_error_not_a_crash(tmp_path, text):
    """In a separate process: a parser that recursed in C (libyaml's loader) would not raise
    but kill the process (SIGSEGV), which would take a test run with it."""
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    result = faultkit.run_zoo(["list"], faultkit.zoo_env(tmp_path / "home", path), timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr[-500:])
    assert result.stderr.startswith("Error: registry.yaml is not valid YAML")
    assert len(result.stderr.strip().splitlines()) == 1
    if "{" in text:  # one row for both cases
        faultkit.record("fuzz", "registry.yaml nested 100000 brackets or 50000 braces deep "
                        "(`zoo list` in a real process)", 2,
                        "one-line CatalogError, exit 1 (libyaml would have crashed the "
                        "process)", "nothing written")
