"""Bootstrap confidence intervals of means over prompts, and paired differences between two runs.

Every interval is ``scipy.stats.bootstrap``'s (BCa, resampling with a fixed seed), so the same numbers
come back on every call. The unit resampled is the prompt: rows that share a prompt share its random
numbers (common random numbers across sites, techniques and pairs) and so are not independent. Many groups
are computed at once (``mean_intervals``, ``paired_differences``, and ``with_intervals`` through them), each
equal to the last bit to its own scipy call.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
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
    mean, lo, hi = mean_intervals(np.asarray(values, dtype=float).reshape(1, -1), confidence, seed, resamples)[0]
    return float(mean), float(lo), float(hi)


def mean_intervals(values: np.ndarray, confidence: float = 0.95, seed: int = 0, resamples: int = 9999) -> np.ndarray:
    """``mean_interval`` of every row of a 2-d array at once: an array of ``(mean, lo, hi)`` rows.

    Equal to calling ``mean_interval`` row by row (NaNs ignored per row, so NaN-padded rows of unequal length
    work): ``scipy.stats.bootstrap`` draws its resample indices from the seed and the sample's length alone and
    applies the same indices to every row of a stack, so the rows with as many values share one draw, one
    gathered mean per resample (2-d, summed as for a single row) and one vectorized BCa call.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise ConfigError(f"mean_intervals takes a 2-d array (one sample per row); got {x.ndim} dimension(s)")
    if resamples < 1:
        raise ConfigError(f"resamples must be at least 1; got {resamples}")
    out = np.full((len(x), 3), np.nan)
    out[:, 0] = row_means(x)
    (packed,), counts = _packed([x], ~np.isnan(x))
    for n in np.unique(counts[counts > 1]):
        rows = np.flatnonzero(counts == n)
        out[rows, 1:] = _bootstrap_means(packed[rows, :n], confidence, seed, resamples)
    return out


def row_means(values: np.ndarray) -> np.ndarray:
    """Each row's mean with NaNs ignored (nan where a row has no value): ``np.mean`` of the row's values alone, to
    the last bit (as pandas' mean of them)."""
    x = np.asarray(values, dtype=float)
    (packed,), counts = _packed([x], ~np.isnan(x))
    out = np.full(len(x), np.nan)
    for n in np.unique(counts[counts > 0]):
        rows = np.flatnonzero(counts == n)
        out[rows] = _row_mean(packed[rows, :n])
    return out


def _packed(arrays: "list[np.ndarray]", keep: np.ndarray) -> "tuple[list[np.ndarray], np.ndarray]":
    """Each array's kept values moved to the front of their row, in order (the rest after them), and the kept count
    per row: a row's first ``count`` values are what dropping the others from it leaves."""
    order = np.argsort(~keep, axis=1, kind="stable")
    return [np.take_along_axis(x, order, axis=1) for x in arrays], keep.sum(axis=1)


def _row_mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.mean`` along ``axis``, summed as for a 2-d array whatever the other dimensions: numpy sums the rows of a
    3-d array in another order than those of a 2-d one, and a stacked sample must sum exactly as it does alone."""
    x = np.moveaxis(x, axis, -1)
    return np.mean(x.reshape(-1, x.shape[-1]), axis=-1).reshape(x.shape[:-1])


#: rows of one vectorized BCa call (its resampled means take rows x resamples floats)
ROWS_PER_CALL = 256


def _bootstrap_means(sample: np.ndarray, confidence: float, seed: int, resamples: int) -> np.ndarray:
    """(lo, hi) per row of ``sample`` (rows of equal length): ``scipy.stats.bootstrap``'s BCa interval of the mean
    with ``rng=default_rng(seed)``, the percentile interval of the same resamples where BCa is degenerate.

    Blocks of ``ROWS_PER_CALL`` rows run on a thread per available core (numpy's gathers and sums release the GIL);
    each block's numbers are its own, so the result does not depend on the number of threads."""
    n = sample.shape[1]
    indices = np.random.default_rng(seed).integers(0, n, (resamples, n))  # scipy's draw (``_bootstrap_resample``)
    blocks = [sample[start:start + ROWS_PER_CALL] for start in range(0, len(sample), ROWS_PER_CALL)]
    with warnings.catch_warnings(), ThreadPoolExecutor(max(1, min(len(blocks), _cores()))) as pool:
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # scipy warns, then returns nan, when BCa is
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate (set here: the filters are the process's)
        found = list(pool.map(lambda rows: _block_intervals(rows, indices, confidence), blocks))
    return np.concatenate(found) if found else np.empty((0, 2))


def _cores() -> int:
    """The cores this process may run on (all of the machine's where the system does not say: macOS, Windows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _block_intervals(rows: np.ndarray, indices: np.ndarray, confidence: float) -> np.ndarray:
    """``_bootstrap_means`` of a few rows, given scipy's resample ``indices``: one vectorized BCa call."""
    means = SimpleNamespace(bootstrap_distribution=np.stack([_row_mean(np.take(row, indices)) for row in rows]))
    bca = np.stack(stats.bootstrap((rows,), _row_mean, n_resamples=0, confidence_level=confidence,
                                   method="BCa", bootstrap_result=means, axis=-1).confidence_interval, -1)
    bad = ~np.isfinite(bca).all(axis=1)
    if bad.any():
        bca[bad] = np.stack(stats.bootstrap((rows[bad],), _row_mean, n_resamples=0, confidence_level=confidence,
                                            method="percentile", axis=-1, bootstrap_result=SimpleNamespace(
                                                bootstrap_distribution=means.bootstrap_distribution[bad])
                                            ).confidence_interval, -1)
    return bca


def with_intervals(table: pd.DataFrame, by: str | Sequence[str], metrics: str | Sequence[str],
                   unit: str = "prompt_id", confidence: float = 0.95, seed: int = 0,
                   resamples: int = 9999) -> pd.DataFrame:
    """A tidy aggregate of ``table``: one row per group of ``by`` with each metric's mean over ``unit``.

    Columns: ``by``, then ``<metric>``, ``<metric>_lo``, ``<metric>_hi`` per metric, and ``n`` (units in
    the group). The bootstrap resamples units (prompts), not rows: where a group holds several rows per
    prompt (a profile point averages every pair for each prompt), the rows are first averaged within
    each prompt, since rows of one prompt share its random numbers and are dependent; the interval is
    then that of the mean of the per-prompt means (equal to the row mean when every prompt has as many
    rows). NaNs are ignored, as in pandas' mean. All groups' intervals are computed together
    (``mean_intervals``), each equal to ``mean_interval`` of its per-prompt means in ``unit`` order.
    """
    by = [by] if isinstance(by, str) else list(by)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    missing = [c for c in [*by, unit, *metrics] if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns))
        raise ConfigError(f"table has no column(s) {', '.join(missing)}; it has {have}")
    columns = [*by, *(f"{m}{s}" for m in metrics for s in ("", "_lo", "_hi")), "n"]
    per_unit = table.groupby([*by, unit], sort=True, observed=True)[metrics].mean().reset_index()
    groups = per_unit.groupby(by, sort=True, observed=True)
    sizes = groups.size()
    if sizes.empty:
        return pd.DataFrame(columns=columns)
    group, position = groups.ngroup().to_numpy(), groups.cumcount().to_numpy()
    values = np.full((len(metrics), len(sizes), int(sizes.max())), np.nan)  # per metric and group: its per-prompt
    values[:, group, position] = per_unit[metrics].to_numpy(dtype=float).T  # means in unit order, NaN-padded
    found = mean_intervals(values.reshape(-1, values.shape[-1]), confidence, seed, resamples)
    out = sizes.index.to_frame(index=False)
    for metric, block in zip(metrics, found.reshape(len(metrics), len(sizes), 3)):
        out[[metric, f"{metric}_lo", f"{metric}_hi"]] = block
    out["n"] = sizes.to_numpy()
    return out[columns]


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
    diff, lo, hi, p, n = paired_differences(a[None], b[None], confidence, seed, resamples).iloc[0]
    return PairedDifference(float(diff), float(lo), float(hi), float(p), int(n))


def paired_differences(a: np.ndarray, b: np.ndarray, confidence: float = 0.95, seed: int = 0,
                       resamples: int = 9999) -> pd.DataFrame:
    """``paired_difference`` of each row of ``a`` with the same row of ``b`` (2-d arrays of one shape; NaN where a
    unit is missing), all rows at once: one row per pair of rows with the ``PairedDifference`` columns.

    The intervals are ``mean_intervals``'; the t-tests of the rows with as many pairs run as one vectorized
    ``scipy.stats.ttest_rel``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ConfigError(f"paired_differences takes two 2-d arrays of one shape; got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    found = mean_intervals(np.where(keep, a - b, np.nan), confidence, seed, resamples)
    (a, b), counts = _packed([a, b], keep)
    p = np.full(len(a), np.nan)
    for n in np.unique(counts[counts > 1]):
        rows = np.flatnonzero(counts == n)
        x, y = a[rows, :n], b[rows, :n]
        d = x - y
        with warnings.catch_warnings():  # differences equal up to rounding: scipy warns of precision loss
            warnings.simplefilter("ignore", RuntimeWarning)
            p[rows] = stats.ttest_rel(x, y, axis=-1).pvalue
        constant = (d == d[:, :1]).all(axis=1)
        p[rows[constant]] = np.where(d[constant, 0] == 0, 1.0, 0.0)
    return pd.DataFrame({"diff": found[:, 0], "lo": found[:, 1], "hi": found[:, 2], "p": p, "n": counts})


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
