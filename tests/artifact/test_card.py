"""The model card (zoo.artifact.card): the pictures it shows, the files it lists, its metrics table
and how it says to load the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zoo.artifact import extras
from zoo.artifact import io as artifacts
from zoo.artifact.card import metrics_table, model_card, split_of

LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.fixture
def built(pictured_artifact) -> Path:
    return pictured_artifact


def files_table(card: str) -> list[str]:
    section = card.split("## Files\n", 1)[1]
    return re.findall(r"^\| \[`([^`]+)`\]", section, flags=re.MULTILINE)


def test_the_card_lists_every_file_it_references_and_each_exists(built: Path):
    card = (built / artifacts.CARD).read_text()
    referenced = set(LINK.findall(card))
    listed = files_table(card)
    assert {extras.SAMPLES, extras.TRAINING, extras.HISTORY} <= referenced
    assert referenced <= set(listed)
    assert sorted(listed) == sorted(p.name for p in built.iterdir())
    for name in listed:
        assert (built / name).is_file()
    cfg = artifacts.read_config(built)
    for name, digest in cfg.files.items():
        assert f"| [`{name}`]({name}) |" in card and f"`{digest}`" in card
    assert f"![realnvp-tiny: samples drawn by the model, over its density]({extras.SAMPLES})" \
        in card
    assert card.index(extras.SAMPLES) < card.index("## Metrics")  # the picture comes first
    assert f"]({extras.TRAINING})" in card.split("## Training\n", 1)[1]


def test_a_card_shows_only_the_pictures_that_are_there(built: Path):
    cfg = artifacts.read_config(built)
    card = model_card(cfg, files=[extras.HISTORY])
    assert set(LINK.findall(card)) - {f for f in files_table(card)} == set()
    assert extras.SAMPLES not in card and extras.TRAINING not in card
    assert extras.HISTORY in files_table(card)


def test_the_metrics_table_names_the_split_of_every_value(built: Path):
    cfg = artifacts.read_config(built)
    table = metrics_table(cfg).splitlines()
    assert table[0] == "| metric | test split | validation split (held out of training) |"
    nll = next(line for line in table if line.startswith("| NLL (nats per example) |"))
    test_cell, val_cell = [c.strip() for c in nll.strip("|").split("|")[1:]]
    assert test_cell == f"{cfg.metrics['test_nll']:.4f} ± {cfg.metrics['test_nll_stderr']:.4f}"
    assert val_cell == f"{cfg.metrics['val_nll']:.4f}"
    assert f"| bits per dimension | {cfg.metrics['bits_per_dim']:.4f} |  |" in table
    assert f"| examples | {int(cfg.metrics['test_n'])} |  |" in table


def test_metric_keys_map_to_splits():
    assert split_of("test_nll") == ("test", "nll")
    assert split_of("val_nll") == ("val", "nll")
    assert split_of("train_bits_per_dim") == ("train", "bits_per_dim")
    assert split_of("bits_per_dim") == ("test", "bits_per_dim")
    assert split_of("fid") == ("", "fid")


def test_use_section_before_and_after_publishing(built: Path):
    cfg = artifacts.read_config(built)
    local = model_card(cfg)
    published = model_card(cfg, repo="acme/tiny")
    for card in (local, published):
        use = card.split("## Use\n", 1)[1].split("## Files\n", 1)[0]
        assert "pip install genzoo" in use
    assert 'zoo.load("realnvp-tiny")' in local
    assert 'zoo.load("hf-hub:acme/tiny")' in published and 'zoo.load("realnvp-tiny")' not in published


def test_a_rebuilt_card_shows_only_the_pictures_that_are_there(pictured_artifact: Path,
                                                              registry_file, caplog):
    import shutil

    import zoo
    from conftest import TINY_MOONS
    from zoo.artifact import store

    registry_file(TINY_MOONS)
    stored = store.artifact_dir("realnvp-tiny")
    shutil.copytree(pictured_artifact, stored)
    (stored / artifacts.CARD).unlink()
    (stored / extras.SAMPLES).unlink()
    assert zoo.pull("realnvp-tiny") == stored
    card = (stored / artifacts.CARD).read_text()
    assert "was missing; rebuilt it" in caplog.text
    assert extras.SAMPLES not in card and f"]({extras.TRAINING})" in card
    for target in LINK.findall(card):
        assert (stored / target).is_file()
