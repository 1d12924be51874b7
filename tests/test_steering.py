"""Issue 16, part 1: steering strength (``adjust`` = h + alpha * (desired mean - original mean), ``--alphas``)."""

import numpy as np
import pandas as pd
import pytest
import torch

from mgbench.engine.hooks import ADD, REPLACE, RowEdit, edit_hooks
from mgbench.engine.sites import Site
from mgbench.errors import ConfigError
from mgbench.experiments.interventions import IDS, intervention_grid, row_ids, store_table
from mgbench.experiments.listening import sweep_label
from mgbench.experiments.selection import parse_alphas, parse_frames
from mgbench.experiments.techniques import TECHNIQUES
from mgbench.report.steering import smallest_alpha

SITES = [Site(2, "cross_attn"), Site(0, "mlp")]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 2.0, 4.0])
def test_adjust_adds_alpha_times_the_mean_difference(tiny, alpha):
    gen = np.random.default_rng(7)
    original, desired, h = gen.normal(size=64), gen.normal(size=64), gen.normal(size=(2, 3, 64))
    mode, vector = TECHNIQUES["adjust"](torch.tensor(original), torch.tensor(desired), alpha)
    out = torch.tensor(h)
    (module, hook), = edit_hooks(tiny.decoder_layers, [RowEdit(Site(0, "mlp"), mode, vector), None], guided=False)
    hook(module, None, out)
    assert mode == ADD
    expected = h[0] + alpha * (desired - original)  # in float64; the tiny model's float32 rounds the vector
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=0, atol=1e-6)
    assert torch.equal(out[1], torch.tensor(h[1]))  # the other prompt untouched


def test_alpha_one_is_the_papers_adjust_bit_for_bit_and_replace_has_no_strength():
    original, desired = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float32)
    assert torch.equal(TECHNIQUES["adjust"](original, original.clone() * 3, 1.0)[1], original * 3 - original)
    assert torch.equal(TECHNIQUES["adjust"](desired, -desired, 1.0)[1], -desired - desired)
    for alpha in (0.0, 2.0):
        assert TECHNIQUES["replace"](original, desired, alpha) == (REPLACE, desired)


def test_the_default_grid_keeps_its_ids_and_order():
    concepts, prompts = ["guitar", "piano", "jazz"], 2
    grid = intervention_grid(concepts, ["replace", "adjust"], SITES, prompts)
    pairs = [(o, d) for o in concepts for d in concepts if o != d]
    expected = pd.DataFrame([(t, o, d, s.layer, s.component, p) for t in ["replace", "adjust"] for o, d in pairs
                             for s in SITES for p in range(prompts)], columns=IDS)
    pd.testing.assert_frame_equal(grid, expected)
    assert row_ids(grid) == IDS and store_table(grid) == "interventions"
    assert sweep_label(next(grid.itertuples())) == ""


def test_alphas_are_one_more_dimension_of_the_additive_techniques_only():
    alphas = (0.0, 0.5, 2.0)
    grid = intervention_grid(["guitar", "piano"], ["replace", "adjust"], SITES, 2, alphas=alphas)
    assert list(grid.columns) == [*IDS[:-1], "alpha", "prompt_id"] == row_ids(grid)
    replace, adjust = grid[grid.technique == "replace"], grid[grid.technique == "adjust"]
    assert set(replace.alpha) == {1.0} and len(replace) == 2 * 2 * 2  # pairs x sites x prompts, once
    assert len(adjust) == 2 * 2 * 3 * 2 and sorted(set(adjust.alpha)) == list(alphas)
    assert not grid.duplicated(row_ids(grid)).any()
    assert store_table(grid) == "interventions-alpha"
    row = adjust[adjust.alpha == 0.5].iloc[0]
    assert sweep_label(row) == "-a0.5"
    windowed = intervention_grid(["guitar", "piano"], ["adjust"], SITES, 1, alphas=(2.0,), frames=(0, 50))
    assert list(windowed.columns) == [*IDS[:-1], "alpha", "frames", "prompt_id"]
    assert store_table(windowed) == "interventions-alpha-frames"
    assert sweep_label(windowed.iloc[0]) == "-a2-f0-50"


def test_alphas_and_frames_are_read_from_the_command_line():
    assert parse_alphas(None) is None and parse_alphas("4,0, 0.5,1,2,1") == (0.0, 0.5, 1.0, 2.0, 4.0)
    assert parse_frames(None) is None and parse_frames("0-50") == (0, 50) and parse_frames(" 3 - 4 ") == (3, 4)
    bad = {"x": "cannot read alphas 'x'", "1,,2": "cannot read alphas", "-1": "alpha '-1' is not allowed",
           "nan": "alpha 'nan' is not allowed", "inf": "alpha 'inf' is not allowed"}
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_alphas(text)
    bad = {"5-2": "frame window '5-2' holds no frame", "3-3": "holds no frame", "-3-5": "cannot read frames",
           "0:50": "cannot read frames", "a-b": "cannot read frames", "10": "cannot read frames"}
    for text, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_frames(text)


def test_smallest_alpha_is_the_first_grid_alpha_whose_mean_effect_reaches_the_target():
    # effects per (site, alpha), two prompts each: L2.cross_attn rises 0, 1, 3 (mean); L0.mlp stays below 1
    means = {("cross_attn", 2): [0.0, 1.0, 3.0], ("mlp", 0): [0.0, 0.2, 0.5]}
    rows = [("adjust", component, layer, alpha, prompt, effect + (0.5 if prompt else -0.5) * (alpha > 0))
            for (component, layer), effects in means.items() for alpha, effect in zip((0.0, 1.0, 2.0), effects)
            for prompt in (0, 1)]
    table = pd.DataFrame(rows, columns=["technique", "component", "layer", "alpha", "prompt_id", "effect"]
                         ).assign(precision=0.0)
    found = smallest_alpha(table, target=1.0).set_index(["component", "layer"])
    assert found.loc[("cross_attn", 2)].alpha == 1.0 and found.loc[("cross_attn", 2)].effect == 1.0
    assert not found.loc[("mlp", 0)].reached and np.isnan(found.loc[("mlp", 0)].alpha)
    assert smallest_alpha(table, target=2.5).set_index(["component", "layer"]).loc[("cross_attn", 2)].alpha == 2.0
