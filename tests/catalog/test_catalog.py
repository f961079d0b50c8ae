import pytest

import zoo
from zoo.catalog import catalog
from zoo.errors import CatalogError, NotFoundError

GOOD = """
version: 1
entries:
  - name: realnvp-a
    family: realnvp
    dataset: moons
    config: {shape: [2], couplings: 2}
    recipe: {steps: 10}
"""


def test_builtin_catalog_is_valid():
    names = zoo.list_models()
    assert "realnvp-moons" in names
    entry = catalog().get("realnvp-moons")
    assert entry.family == "realnvp" and entry.dataset == "moons"
    assert entry.recipe.batch_size == 1024


def test_custom_registry(registry_file):
    registry_file(GOOD)
    assert zoo.list_models() == ["realnvp-a"]


@pytest.mark.parametrize(
    "change, message",
    [
        (("couplings: 2}", "couplings: 2, colour: red}"),
         "entry 'realnvp-a', field 'config': unknown key 'colour'"),
        (("    recipe: {steps: 10}\n", "    recipe: {steps: 10}\n    extra: 1\n"), "unknown key 'extra'"),
        (("    dataset: moons\n", ""), "realnvp-a'.dataset: required field is missing"),
        (("family: realnvp", "family: realnvq"), "did you mean 'realnvp'"),
        (("dataset: moons", "dataset: stars"), "field 'dataset': unknown dataset 'stars'"),
        (("recipe: {steps: 10}", "recipe: {steps: ten}"), "recipe.steps: expected an integer, got str"),
        (("recipe: {steps: 10}", "recipe: {steps: 0}"), "recipe.steps: must be at least 1"),
        (("couplings: 2}", "couplings: 2, hidden: 1000000000}"), "hidden: must be at most"),
        (("name: realnvp-a", "name: ../evil"), "invalid model name"),
        (("shape: [2]", "shape: [2, 2]"), "realnvp models vectors"),
    ],
)
def test_each_mistake_gives_its_message(registry_file, change, message):
    old, new = change
    assert old in GOOD
    registry_file(GOOD.replace(old, new))
    with pytest.raises(CatalogError) as info:
        zoo.list_models()
    assert message in str(info.value)


def test_duplicate_entry(registry_file):
    registry_file(GOOD + GOOD.split("entries:\n")[1])
    with pytest.raises(CatalogError, match="defined twice"):
        zoo.list_models()


@pytest.mark.parametrize("text, message", [
    ("entries: [", "not valid YAML"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("version: 2\nentries: []\n", "unsupported catalog version"),
    ("entries: {a: 1}\n", "'entries' must be a list"),
])
def test_malformed_files(registry_file, text, message):
    registry_file(text)
    with pytest.raises(CatalogError, match=message):
        zoo.list_models()


def test_unknown_name_suggests(registry_file):
    registry_file(GOOD)
    with pytest.raises(NotFoundError, match="did you mean 'realnvp-a'"):
        catalog().get("realnvp-b")
