"""Bootstrap confidence intervals of means over prompts, and paired differences between two runs.

Every interval is ``scipy.stats.bootstrap``'s (BCa, resampling with a fixed seed), so the same numbers
come back on every call. The unit resampled is the prompt: rows that share a prompt share its random
numbers (common random numbers across sites, techniques and pairs) and so are not independent.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError

#: The bootstrap's own weakness at few prompts: how often ``mean_interval``'s 95% interval held the true mean of
#: normal data, by prompts (2,000 samples each, 999 resamples; tests/test_stats.py checks it). Below
#: ``FEW_PROMPTS`` the intervals are too narrow and the report says so.
SMALL_SAMPLE_COVERAGE = {2: 0.48, 5: 0.83, 10: 0.89, 20: 0.92}
FEW_PROMPTS = 20


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95, seed: int = 0,
                  resamples: int = 9999) -> tuple[float, float, float]:
    """The mean of a 1-d array and its bootstrap interval: ``(mean, lo, hi)``.

    BCa interval; where BCa is degenerate (e.g. all values equal, so the jackknife has no spread) the
    percentile interval of the same resamples is used, so constant values give ``lo = hi = mean``.
    NaNs are ignored. One value has no spread to resample: ``(value, nan, nan)``; none: all nan.
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if x.size < 2:
        return (float(x[0]) if x.size else np.nan), np.nan, np.nan
    with warnings.catch_warnings():  # scipy warns, then returns nan, when BCa is degenerate
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=confidence,
                                 method="BCa", rng=np.random.default_rng(seed))
    if not np.all(np.isfinite(result.confidence_interval)):
        result = stats.bootstrap((x,), np.mean, n_resamples=0, confidence_level=confidence,
                                 method="percentile", bootstrap_result=result)
    lo, hi = result.confidence_interval
    return float(np.mean(x)), float(lo), float(hi)


def with_intervals(table: pd.DataFrame, by: str | Sequence[str], metrics: str | Sequence[str],
                   unit: str = "prompt_id", confidence: float = 0.95, seed: int = 0,
                   resamples: int = 9999) -> pd.DataFrame:
    """A tidy aggregate of ``table``: one row per group of ``by`` with each metric's mean over ``unit``.

    Columns: ``by``, then ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` per metric, and ``n`` (units in
    the group). The bootstrap resamples units (prompts), not rows: where a group holds several rows per
    prompt (a profile point averages every pair for each prompt), the rows are first averaged within
    each prompt, since rows of one prompt share its random numbers and are dependent; the interval is
    then that of the mean of the per-prompt means (equal to the row mean when every prompt has as many
    rows). NaNs are ignored, as in pandas' mean.
    """
    by = [by] if isinstance(by, str) else list(by)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [c for c in [*by, unit, *metrics] if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns))
        raise ConfigError(f"table has no column(s) {', '.join(missing)}; it has {have}")
    per_unit = table.groupby([*by, unit], sort=True, observed=True)[metrics].mean().reset_index()
    rows = []
    for key, group in per_unit.groupby(by, sort=True, observed=True):
        row = dict(zip(by, key))
        for metric in metrics:
            mean, lo, hi = mean_interval(group[metric].to_numpy(), confidence, seed, resamples)
            row.update({metric: mean, f"{metric}_lo": lo, f"{metric}_hi": hi})
        rows.append({**row, "n": len(group)})
    columns = [*by, *(f"{m}{s}" for m in metrics for s in ("", "_lo", "_hi")), "n"]
    return pd.DataFrame(rows, columns=columns)


class PairedDifference(NamedTuple):
    """The mean of ``a - b`` over paired units, its bootstrap interval, a p-value and the pairs' count."""

    diff: float
    lo: float
    hi: float
    p: float
    n: int


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95,
                      seed: int = 0, resamples: int = 9999) -> PairedDifference:
    """How much ``a`` exceeds ``b`` on the same units (prompts, seeds): ``mean(a - b)``, interval, p.

    The p-value is the paired t-test's (``scipy.stats.ttest_rel``, two-sided): it tests the same quantity
    the interval bounds (the mean difference; Wilcoxon's signed-rank test would test the differences'
    symmetry about 0, not their mean), it uses the spread that ``power.resolvable_difference`` plans with,
    and it can reach significance at a handful of prompts, where Wilcoxon's smallest p cannot (0.0625 at
    5). Pairs with a NaN are dropped. All differences zero: p = 1; all equal and non-zero (a
    deterministic shift): p = 0; fewer than 2 pairs: p = nan.
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ConfigError(f"paired values need equal lengths; got {a.size} and {b.size}")
    paired = ~(np.isnan(a) | np.isnan(b))
    a, b = a[paired], b[paired]
    d = a - b
    diff, lo, hi = mean_interval(d, confidence, seed, resamples)
    if d.size < 2:
        p = np.nan
    elif np.all(d == d[0]):
        p = 1.0 if d[0] == 0 else 0.0
    else:
        with warnings.catch_warnings():  # differences equal up to rounding: scipy warns of precision loss
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_rel(a, b).pvalue)
    return PairedDifference(diff, lo, hi, p, int(d.size))


def unpaired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95,
                        seed: int = 0, resamples: int = 9999) -> PairedDifference:
    """How much ``a``'s mean exceeds ``b``'s where the units differ (other prompts): ``mean(a) - mean(b)``.

    The interval is ``scipy.stats.bootstrap``'s over both samples resampled independently (BCa, percentile
    when degenerate), the p-value Welch's t-test's (two-sided). NaNs are dropped; ``n`` is the smaller
    sample's size. Fewer than 2 values on a side: interval and p nan. Both samples constant: p is 1 when
    the means are equal, else 0.
    """
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    diff = float(np.mean(a) - np.mean(b)) if a.size and b.size else np.nan
    n = int(min(a.size, b.size))
    if n < 2:
        return PairedDifference(diff, np.nan, np.nan, np.nan, n)

    def statistic(x, y, axis=-1):
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((a, b), statistic, n_resamples=resamples, confidence_level=confidence,
                                 method="BCa", rng=np.random.default_rng(seed))
        if not np.all(np.isfinite(result.confidence_interval)):
            result = stats.bootstrap((a, b), statistic, n_resamples=0, confidence_level=confidence,
                                     method="percentile", bootstrap_result=result)
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            p = 1.0 if diff == 0 else 0.0
        else:
            p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    lo, hi = result.confidence_interval
    return PairedDifference(diff, float(lo), float(hi), p, n)
