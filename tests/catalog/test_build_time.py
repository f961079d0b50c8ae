"""Build time known before a build starts (zoo.catalog.build_time, zoo.api.estimate): the catalog's
recorded time is shown by ``zoo list``, ``zoo info`` and the model card; ``zoo pull`` prints
an estimate before it trains and refuses one past the hour without ``--yes``.

The refusals train nothing: ``build_artifact`` is replaced by a function that fails the
test if it is called.
"""

from __future__ import annotations

import json

import pytest

from zoo import api
from zoo.artifact import store
from zoo.catalog.build_time import BuildTime, duration
from zoo.cli.commands import cli

ENTRY = """
  - name: {name}
    family: realnvp
    dataset: moons
    description: a tiny flow for tests
    config: {{shape: [2], couplings: 2, hidden: 8}}
    recipe: {{steps: {steps}, batch_size: {batch}, eval_every: 10, val_fraction: 0.05}}
"""


def catalog(registry_file, *, build_time: str | None = None, steps: int = 3, batch: int = 64,
            name: str = "flow-tiny") -> None:
    text = "version: 1\nentries:\n" + ENTRY.format(name=name, steps=steps, batch=batch)
    if build_time:
        text += f"    build_time: {build_time}\n"
    registry_file(text)


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the refused build trained")

    monkeypatch.setattr(api, "build_artifact", refuse)


def nothing_stored() -> bool:
    models = store.models_dir()
    return not models.exists() or not [p for p in models.iterdir() if not p.name.startswith(".lock")]


def test_a_recorded_time_past_the_hour_needs_yes(registry_file, cli_runner, no_training):
    catalog(registry_file, build_time="{cpu_s: 7200}")
    result = cli_runner.invoke(cli, ["pull", "flow-tiny"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "about 2.0 h" in lines[0] and "--yes" in lines[0]
    assert "GPU" in lines[0] and "published weights" in lines[0]
    assert nothing_stored()


def test_a_timed_estimate_past_the_hour_needs_yes(registry_file, cli_runner, no_training):
    """No recorded time: the first steps are timed (ten million steps of 4096 examples
    cannot fit in an hour on any machine), and the build is refused untrained."""
    catalog(registry_file, steps=10_000_000, batch=4096)
    result = cli_runner.invoke(cli, ["pull", "flow-tiny"])
    assert result.exit_code == 1, result.output
    assert "timed on this CPU" in result.output and "--yes" in result.output
    assert nothing_stored()


def test_yes_builds_and_the_card_shows_the_times(registry_file, cli_runner):
    catalog(registry_file, build_time="{cpu_s: 7200, gpu_s: 50, gpu: H100, note: measured}")
    result = cli_runner.invoke(cli, ["pull", "flow-tiny", "--yes"])
    assert result.exit_code == 0, result.output
    assert "flow-tiny: building it here takes about 2.0 h (recorded on 2 CPU cores" in result.output
    card = (store.artifact_dir("flow-tiny") / "README.md").read_text()
    assert "Built from its recipe in" in card
    assert "the catalog records ~2.0 h on 2 CPU cores, ~50 s on an H100." in card
    again = cli_runner.invoke(cli, ["pull", "flow-tiny"])  # stored: nothing to estimate
    assert again.exit_code == 0 and "building it here" not in again.output


def test_list_and_info_show_the_recorded_time(registry_file, cli_runner):
    catalog(registry_file, build_time="{cpu_s: 660, gpu_s: 40, gpu: H100, note: load 1.2}")
    listing = cli_runner.invoke(cli, ["list"]).output
    assert "build" in listing.splitlines()[0] and "~11 min" in listing
    rows = json.loads(cli_runner.invoke(cli, ["list", "--json"]).output)
    assert rows[0]["build_time"] == {"cpu_s": 660.0, "gpu_s": 40.0, "gpu": "H100", "note": "load 1.2"}
    shown = cli_runner.invoke(cli, ["info", "flow-tiny"]).output
    assert "~11 min on 2 CPU cores, ~40 s on an H100 (load 1.2)" in shown


def test_a_gpu_time_needs_its_card(registry_file, cli_runner):
    catalog(registry_file, build_time="{gpu_s: 40}")
    result = cli_runner.invoke(cli, ["list"])
    assert result.exit_code == 1 and "gpu_s needs gpu" in result.output


@pytest.mark.parametrize("seconds, text", [(0.2, "~1 s"), (40, "~40 s"), (660, "~11 min"),
                                           (7200, "~2.0 h"), (40 * 3600, "~40 h"),
                                           (9 * 86400, "~9 days")])
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


def test_summary_names_both_devices():
    assert BuildTime(cpu_s=90).summary() == "~2 min on 2 CPU cores"
    assert BuildTime(gpu_s=30, gpu="A100").summary() == "~30 s on an A100"
