"""The vectorized intervals and paired tests against the per-group scipy calls they replace (tests/reference_stats.py),
group by group: equal to the last bit, with NaNs, one-prompt groups, constant groups and unequal group sizes."""

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import reference_stats as reference

from mgbench.errors import ConfigError
from mgbench.stats import intervals
from mgbench.stats.intervals import mean_intervals, paired_difference, paired_differences, with_intervals


def awkward_rows(seed: int = 0) -> np.ndarray:
    """Rows of 12 slots: normal, skewed and tied values, NaN gaps, 0 to 12 values, constant rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for length in range(13):
        for kind in ("normal", "gamma", "ties", "constant"):
            row = np.full(12, np.nan)
            values = {"normal": rng.normal(size=length), "gamma": rng.gamma(0.5, size=length),
                      "ties": rng.integers(0, 3, size=length).astype(float), "constant": np.full(length, 0.3)}[kind]
            row[np.sort(rng.choice(12, size=length, replace=False))] = values  # gaps anywhere
            rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("seed, confidence, resamples", [(0, 0.95, 9999), (7, 0.9, 999)])
def test_mean_intervals_equal_scipy_row_by_row(seed, confidence, resamples):
    rows = awkward_rows()
    got = mean_intervals(rows, confidence, seed, resamples)
    expected = np.array([reference.mean_interval(row, confidence, seed, resamples) for row in rows])
    np.testing.assert_array_equal(got, expected)  # NaN where the reference has NaN, the same bits elsewhere
    lengths = (~np.isnan(rows)).sum(axis=1)
    assert np.isnan(got[lengths == 0]).all() and np.isnan(got[lengths == 1, 1:]).all()
    constant = np.arange(len(rows)) % 4 == 3
    assert (got[constant & (lengths > 1), 1] == got[constant & (lengths > 1), 2]).all()  # percentile fallback


@pytest.mark.parametrize("cores", [1, 4])
def test_mean_intervals_in_chunks_equal_one_call(monkeypatch, cores):
    """Blocks of rows on one thread or on several (one per core) give the numbers of one call, bit for bit, and the
    degenerate rows' scipy warnings stay silenced in every thread without changing the caller's filters."""
    rows = np.random.default_rng(1).normal(size=(20, 30))
    rows[::5] = 1.5  # constant rows: BCa is degenerate, scipy warns and the percentile interval is used
    whole = mean_intervals(rows, resamples=999)
    monkeypatch.setattr(intervals, "ROWS_PER_CALL", 3)
    monkeypatch.setattr(intervals.os, "sched_getaffinity", lambda pid: set(range(cores)))
    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = mean_intervals(rows, resamples=999)
    np.testing.assert_array_equal(got, whole)
    assert caught == [] and warnings.filters == filters
    assert (got[::5, 1] == got[::5, 2]).all()


def test_stacked_rows_need_the_row_wise_mean(monkeypatch):
    """numpy sums the rows of a 3-d stack in another order than a single row: with plain ``np.mean`` the stacked
    intervals drift from scipy's in the last bits, which the comparison above catches."""
    rows = np.random.default_rng(2).normal(size=(16, 50))
    expected = np.array([reference.mean_interval(row, resamples=999) for row in rows])
    monkeypatch.setattr(intervals, "_row_mean", lambda x, axis=-1: np.mean(x, axis=axis))
    got = mean_intervals(rows, resamples=999)
    assert not np.array_equal(got, expected)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_mean_intervals_reject_what_they_cannot_read():
    with pytest.raises(ConfigError, match="2-d array"):
        mean_intervals(np.zeros(3))
    with pytest.raises(ConfigError, match="resamples must be at least 1"):
        mean_intervals(np.zeros((1, 3)), resamples=0)


def profile_like_table(seed: int = 3) -> pd.DataFrame:
    """Sites with several rows per prompt, unequal prompt counts, NaN metrics and a constant site."""
    rng = np.random.default_rng(seed)
    rows = []
    for technique, layer, component in itertools.product(["replace", "adjust"], range(4), ["mlp", "self_attn"]):
        prompts = 1 + (layer * 7 + len(component)) % 9  # 1 to 9 prompts
        for prompt, _pair in itertools.product(range(prompts), range(3)):
            effect = 0.7 if layer == 2 and component == "mlp" else rng.normal(layer, 1.0)
            precision = np.nan if rng.uniform() < 0.15 else -rng.gamma(2.0)
            rows.append((technique, layer, component, prompt, effect, precision))
    return pd.DataFrame(rows, columns=["technique", "layer", "component", "prompt_id", "effect", "precision"])


@pytest.mark.parametrize("by", [["technique", "component", "layer"], "layer", ["component"]])
def test_with_intervals_equals_the_per_group_loop(by):
    table = profile_like_table()
    got = with_intervals(table, by, ["effect", "precision"], resamples=999)
    expected = reference.with_intervals(table, by, ["effect", "precision"], resamples=999)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_with_intervals_of_no_rows_has_the_columns():
    table = profile_like_table().iloc[:0]
    got = with_intervals(table, "layer", "effect")
    assert got.empty and list(got.columns) == ["layer", "effect", "effect_lo", "effect_hi", "n"]


def paired_rows(seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs with NaNs on either side, no or one pair, equal rows, a deterministic shift, and noise."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(40, 10))
    b = a + rng.normal(0.1, 0.5, size=a.shape)
    a[rng.uniform(size=a.shape) < 0.1] = np.nan
    b[rng.uniform(size=b.shape) < 0.1] = np.nan
    b[0] = a[0]  # identical: p = 1
    b[1] = a[1] - 0.25  # a deterministic shift: p = 0 (where no NaN breaks it)
    a[2, 1:] = np.nan  # one pair
    b[3] = np.nan  # no pair
    return a, b


def test_paired_differences_equal_the_per_row_tests():
    a, b = paired_rows()
    got = paired_differences(a, b, resamples=999)
    expected = pd.DataFrame([reference.paired_difference(x, y, resamples=999)._asdict() for x, y in zip(a, b)])
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.p[0] == 1.0 and got.p[1] == 0.0 and np.isnan(got.p[2]) and got.n[3] == 0 and np.isnan(got["diff"][3])
    with pytest.raises(ConfigError, match="one shape"):
        paired_differences(a, b[:, :3])


def test_paired_difference_is_its_one_row_case():
    a, b = paired_rows()
    for x, y in zip(a[:8], b[:8]):
        np.testing.assert_array_equal(paired_difference(x, y, resamples=999),
                                      reference.paired_difference(x, y, resamples=999))
