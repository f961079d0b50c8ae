"""realnvp-moons keeps its mass on the data (issue 29): both directions of the reverse check.

A spline coupling maps its box ``[-spline_bound, spline_bound]`` onto itself, pinned at the
ends with unit slope, and is the identity outside it. Base mass within about one unit of
the box's edge therefore comes out near the edge in data space, however far that is from
the data: with raw moons and a box of 4 (4 base standard deviations), 0.1% of the samples
landed at x = +-3.9, hundreds of nats below the data, and the samples' -log p_true was
1.24 nats against a floor of 1.009.
"""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo import api
from zoo.infer.reverse import check_dataset
from zoo.training.loop import maximise_likelihood


def test_the_catalog_moons_box_lies_far_out_in_the_base_tails():
    config = zoo.get_family("realnvp").parse_config(api.get_entry("realnvp-moons").config)
    assert config.coupling == "spline"
    # The base's mass within one unit of the box's edge, over every coordinate: negligible.
    assert config.shape[0] * math.erfc((config.spline_bound - 1) / math.sqrt(2)) < 1e-5
    # ... and the data, standardized, fill the box's middle, not its edge.
    assert config.standardize


@pytest.mark.slow  # the catalog recipe: about 20 s on one thread
def test_the_realnvp_moons_recipe_passes_the_reverse_check(one_thread):
    entry = api.get_entry("realnvp-moons")
    torch.manual_seed(entry.recipe.seed)
    model = zoo.get_family("realnvp").build(entry.config)
    maximise_likelihood(model, api.get_dataset("moons"), entry.recipe, progress=False,
                        compile=False)
    check = check_dataset(model, api.get_dataset("moons"))
    assert check.forward <= 1.022
    assert check.reverse <= 1.05
