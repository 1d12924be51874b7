"""The power of the ground-truth checks: the lens checks' exact binomial power against a simulation of the tests
themselves (scipy's binomtest on simulated clips), and the bootstrap of the intervention checks on tables whose
pass rate is known by construction."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from mgbench.suite.ground_truth import ALPHA, Check
from mgbench.suite.planted import Planted
from mgbench.suite.power import critical_hits, intervention_power, lens_chance_power, lens_full_power

ROLES = {"L0.cross_attn": "no_path", "L1.cross_attn": "entry", "L0.mlp": "through_codes", "L1.mlp": "downstream"}
PLANTED = Planted({"entry_layer": 1, "statement": "synthetic", "sites": ROLES, "entry_layers": {"instrument": 1},
                   "roles_by_category": {"instrument": ROLES}})


@pytest.mark.parametrize(("n", "chance", "rate"), [(8, 0.25, 0.8), (16, 0.25, 0.8), (12, 1 / 6, 0.7), (24, 1 / 6, 0.9)])
def test_lens_power_matches_a_simulation_of_the_tests(n, chance, rate):
    rng = np.random.default_rng(0)
    hits = rng.binomial(n, rate, size=4000)
    simulated_full = np.mean([binomtest(k, n, chance, alternative="greater").pvalue < ALPHA for k in hits])
    assert lens_full_power(n, chance, rate) == pytest.approx(simulated_full, abs=0.02)
    at_chance = rng.binomial(n, chance, size=4000)
    simulated_chance = np.mean([binomtest(k, n, chance).pvalue >= ALPHA for k in at_chance])
    assert lens_chance_power(n, chance) == pytest.approx(simulated_chance, abs=0.02)


def test_the_critical_count_is_the_first_that_rejects_chance():
    k = critical_hits(8, 0.25)
    assert binomtest(k, 8, 0.25, alternative="greater").pvalue < ALPHA
    assert binomtest(k - 1, 8, 0.25, alternative="greater").pvalue >= ALPHA
    assert critical_hits(2, 1 / 6) is None and lens_full_power(2, 1 / 6, 1.0) == 0.0  # 2 of 2 cannot reject 1/6


def _table(entry_by_prompt: dict[int, float]) -> pd.DataFrame:
    """Two instrument pairs; the entry's effect per prompt as given, the MLPs 1.0, the no-path site 0."""
    rows = [("replace", o, d, "instrument->instrument", int(site[1]), site.split(".")[1], prompt,
             entry_by_prompt[prompt] if site == "L1.cross_attn" else 0.0 if site == "L0.cross_attn" else 1.0, 0.0)
            for o, d in (("guitar", "piano"), ("piano", "guitar")) for site in ROLES for prompt in entry_by_prompt]
    return pd.DataFrame(rows, columns=["technique", "original", "desired", "pair_type", "layer", "component",
                                       "prompt_id", "effect", "precision"])


def test_the_bootstrap_pass_rate_is_the_share_of_resamples_that_pass():
    """Prompt 0 puts the entry first (effect 5), prompt 1 below the MLPs (0.5): with one prompt drawn the check
    passes half the time; with two, whenever prompt 0 is drawn at least once and the mean stays above 1 (3 of 4)."""
    table = {"interventions": _table({0: 5.0, 1: 0.5})}
    check = Check("entry_ranks_first", "replace", "instrument")
    power = intervention_power(table, PLANTED, [check], [1, 2], draws=400).set_index("prompts")
    for prompts, expected in ((1, 0.5), (2, 0.75)):
        row = power.loc[prompts]
        assert binomtest(round(row.power * row.draws), row.draws, expected).pvalue > 1e-3, row  # (a fixed seed)
        assert row.power_lo < row.power < row.power_hi
    always = intervention_power({"interventions": _table({0: 5.0, 1: 4.0})}, PLANTED, [check], [1], draws=50)
    assert always.power.iloc[0] == 1.0
