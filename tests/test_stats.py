"""mgbench.stats against independent computations: scipy directly, pandas by hand, simulation, statsmodels."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower

from mgbench.errors import ConfigError
from mgbench.stats.intervals import SMALL_SAMPLE_COVERAGE, mean_interval, paired_difference, with_intervals
from mgbench.stats.power import resolvable_difference
from mgbench.stats.verdicts import flag_changes, verdict


def direct_bootstrap(values, seed=0, resamples=9999, confidence=0.95):
    result = stats.bootstrap((np.asarray(values),), np.mean, n_resamples=resamples, confidence_level=confidence,
                             method="BCa", rng=np.random.default_rng(seed))
    return tuple(result.confidence_interval)


@pytest.mark.parametrize("seed, confidence", [(0, 0.95), (7, 0.9)])
def test_mean_interval_is_scipys_bootstrap(seed, confidence):
    x = np.random.default_rng(1).gamma(2.0, size=40)
    mean, lo, hi = mean_interval(x, confidence=confidence, seed=seed)
    assert mean == pytest.approx(x.mean(), rel=1e-12)
    assert (lo, hi) == direct_bootstrap(x, seed, confidence=confidence)
    assert lo < mean < hi


def test_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(400):
        _, lo, hi = mean_interval(rng.normal(2.0, 1.5, size=30), resamples=999)
        covered += lo <= 2.0 <= hi
    assert 0.90 <= covered / 400 <= 0.99


def test_mean_interval_degenerate_inputs():
    constant = np.full(8, 0.3)
    mean, lo, hi = mean_interval(constant)
    assert mean == lo == hi == np.mean(constant)
    mean, lo, hi = mean_interval([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in mean_interval([]))
    assert mean_interval([1.0, np.nan, 2.0, 4.0]) == mean_interval([1.0, 2.0, 4.0])


def profile_table(prompts=20, rows_per_prompt=3, seed=3):
    """Two sites; each prompt has its own level (shared by its rows), plus row noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for site, offset in (("mlp", 0.0), ("attn", 1.0)):
        for prompt in range(prompts):
            level = offset + rng.normal(0, 1.0)
            for pair in range(rows_per_prompt):
                rows.append({"site": site, "prompt_id": prompt, "pair": pair,
                             "effect": level + rng.normal(0, 0.2), "precision": rng.uniform()})
    return pd.DataFrame(rows)


def test_with_intervals_averages_within_each_prompt_then_resamples_prompts():
    table = profile_table()
    out = with_intervals(table, "site", ["effect", "precision"])
    assert list(out.columns) == ["site", "effect", "effect_lo", "effect_hi",
                                 "precision", "precision_lo", "precision_hi", "n"]
    assert list(out["site"]) == ["attn", "mlp"] and list(out["n"]) == [20, 20]
    per_prompt = table.groupby(["site", "prompt_id"])[["effect", "precision"]].mean()
    for _, row in out.iterrows():
        for metric in ("effect", "precision"):
            values = per_prompt.loc[row["site"], metric].to_numpy()
            assert row[metric] == pytest.approx(values.mean(), rel=1e-12)
            assert (row[f"{metric}_lo"], row[f"{metric}_hi"]) == direct_bootstrap(values)
        # resampling rows would treat a prompt's 3 dependent rows as independent: too narrow an interval
        rows_lo, rows_hi = direct_bootstrap(table.loc[table["site"] == row["site"], "effect"].to_numpy())
        assert row["effect_hi"] - row["effect_lo"] > 1.3 * (rows_hi - rows_lo)


def test_with_intervals_groups_by_several_columns_and_names_missing_ones():
    table = profile_table().assign(technique="mean_shift")
    out = with_intervals(table, ["technique", "site"], "effect", resamples=999)
    assert list(out.columns[:2]) == ["technique", "site"] and len(out) == 2
    with pytest.raises(ConfigError, match="no column.*ndcg"):
        with_intervals(table, "site", "ndcg")


def test_paired_difference_of_identical_arrays_is_exactly_zero():
    a = np.random.default_rng(4).normal(size=50)
    result = paired_difference(a, a.copy())
    assert (result.diff, result.lo, result.hi, result.p, result.n) == (0.0, 0.0, 0.0, 1.0, 50)


def test_paired_difference_detects_a_planted_shift():
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1.0, size=100)  # per-prompt levels, shared by both runs
    shift = 0.25
    a = base + shift + rng.normal(0, 0.3, size=100)
    b = base + rng.normal(0, 0.3, size=100)
    result = paired_difference(a, b)
    assert result.p < 0.01 and result.p == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert result.lo < shift < result.hi
    assert (result.lo, result.hi) == direct_bootstrap(a - b)


def test_paired_difference_edge_cases():
    assert paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]).p == 0.0  # a deterministic shift
    assert math.isnan(paired_difference([1.0], [0.0]).p)
    assert paired_difference([1.0, np.nan, 2.0, 5.0], [0.0, 1.0, 2.5, 1.0]).n == 3
    with pytest.raises(ConfigError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])


def regression_diffs(aggregates, shifted, prompts=30, seed=6):
    """One row per aggregate, comparing a new run with an old one on the same prompts."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(aggregates):
        old = rng.normal(0, 1.0, size=prompts)
        new = old + rng.normal(1.0 if i in shifted else 0.0, 1.0, size=prompts)
        rows.append({"aggregate": f"a{i}", **paired_difference(new, old, resamples=999)._asdict()})
    return pd.DataFrame(rows)


def test_flag_changes_flags_nothing_when_a_run_is_compared_with_itself():
    rng = np.random.default_rng(7)
    runs = [rng.normal(size=30) for _ in range(20)]
    diffs = pd.DataFrame([paired_difference(x, x.copy(), resamples=999)._asdict() for x in runs])
    out = flag_changes(diffs)
    assert not out["changed"].any() and (out["p_adjusted"] == 1.0).all()


def test_flag_changes_finds_planted_shifts_with_benjamini_hochberg():
    planted = {3, 50, 101, 150, 199}
    diffs = regression_diffs(205, planted)
    out = flag_changes(diffs)
    expected = stats.false_discovery_control(diffs["p"].to_numpy(), method="bh")
    assert np.allclose(out.sort_index()["p_adjusted"], expected, rtol=1e-12)
    assert set(out.loc[out["changed"], "aggregate"]) == {f"a{i}" for i in planted}
    assert out["changed"].head(5).all() and out["p_adjusted"].head(5).is_monotonic_increasing
    assert "p_adjusted" not in diffs.columns


def test_flag_changes_never_flags_a_missing_p_value():
    diffs = pd.DataFrame({"p": [1e-6, np.nan, 0.5]})
    out = flag_changes(diffs)
    assert list(out.index) == [0, 2, 1] and list(out["changed"]) == [True, False, False]
    assert out.loc[0, "p_adjusted"] == pytest.approx(2e-6) and math.isnan(out.loc[1, "p_adjusted"])
    with pytest.raises(ConfigError, match="no p-value column 'pvalue'"):
        flag_changes(diffs, p="pvalue")


@pytest.mark.parametrize("lo, hi, threshold, direction, expected", [
    (0.01, 1.0, 0.0, "greater", "holds"),
    (0.0, 1.0, 0.0, "greater", "inconclusive"),  # touching the threshold is not beyond it
    (-1.0, 0.0, 0.0, "greater", "inconclusive"),
    (-1.0, -0.01, 0.0, "greater", "fails"),
    (-1.0, -0.01, 0.0, "less", "holds"),
    (0.01, 1.0, 0.0, "less", "fails"),
    (0.4, 0.6, 0.5, "greater", "inconclusive"),
    (0.51, 0.6, 0.5, "greater", "holds"),
    (np.nan, np.nan, 0.0, "greater", "inconclusive"),
])
def test_verdict_at_the_boundaries(lo, hi, threshold, direction, expected):
    assert verdict(lo, hi, threshold, direction) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ConfigError, match="direction"):
        verdict(0.0, 1.0, direction="above")
    with pytest.raises(ConfigError, match="low end"):
        verdict(1.0, 0.0)


@pytest.mark.parametrize("sd, n, alpha, power", [(1.0, 100, 0.05, 0.8), (0.12, 30, 0.01, 0.9), (3.0, 7, 0.1, 0.5)])
def test_resolvable_difference_by_hand(sd, n, alpha, power):
    d = resolvable_difference(sd, n, alpha, power)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    assert d == pytest.approx(z * sd / math.sqrt(n), rel=1e-12)
    # the one-sided normal power at that difference is the power asked for
    assert stats.norm.cdf(d * math.sqrt(n) / sd - stats.norm.ppf(1 - alpha / 2)) == pytest.approx(power, rel=1e-9)


def test_resolvable_difference_textbook_value():
    assert resolvable_difference(1.0, 100) == pytest.approx((1.959964 + 0.841621) / 10, abs=1e-6)
    assert resolvable_difference(0.0, 10) == 0.0
    with pytest.raises(ConfigError, match="at least one prompt"):
        resolvable_difference(1.0, 0)


@pytest.mark.parametrize("n, alpha, power", [(30, 0.05, 0.8), (100, 0.01, 0.9)])
def test_resolvable_difference_matches_statsmodels(n, alpha, power):
    effect = NormalIndPower().solve_power(nobs1=n, alpha=alpha, power=power, ratio=0)
    assert resolvable_difference(0.5, n, alpha, power) == pytest.approx(0.5 * effect, rel=1e-3)


def test_the_documented_small_sample_coverage_is_what_simulation_gives():
    """The report quotes SMALL_SAMPLE_COVERAGE; 400 fresh normal samples per size must agree within 3 binomial sd."""
    rng = np.random.default_rng(11)
    for n, documented in SMALL_SAMPLE_COVERAGE.items():
        covered = np.mean([lo <= 0 <= hi for lo, hi in (mean_interval(rng.normal(0, 1, n), resamples=999, seed=s)[1:]
                                                        for s in range(400))])
        assert abs(covered - documented) < 3 * math.sqrt(documented * (1 - documented) / 400), (n, covered)
