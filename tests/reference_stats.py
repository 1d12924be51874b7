"""The statistics as mgbench computed them before they were vectorized (one ``scipy.stats`` call per group, the
diff by melting and outer-merging both runs' rows): the reference that tests compare the vectorized code with,
group by group, and that ``bench/scale_check.py`` times."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from mgbench.stats.intervals import PairedDifference
from mgbench.stats.verdicts import flag_changes


def mean_interval(values, confidence: float = 0.95, seed: int = 0, resamples: int = 9999) -> tuple[float, float, float]:
    """One ``scipy.stats.bootstrap`` (BCa, the percentile interval of the same resamples where BCa is degenerate)."""
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if x.size < 2:
        return (float(x[0]) if x.size else np.nan), np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=confidence,
                                 method="BCa", rng=np.random.default_rng(seed))
    if not np.all(np.isfinite(result.confidence_interval)):
        result = stats.bootstrap((x,), np.mean, n_resamples=0, confidence_level=confidence,
                                 method="percentile", bootstrap_result=result)
    lo, hi = result.confidence_interval
    return float(np.mean(x)), float(lo), float(hi)


def with_intervals(table: pd.DataFrame, by, metrics, unit: str = "prompt_id", confidence: float = 0.95, seed: int = 0,
                   resamples: int = 9999) -> pd.DataFrame:
    """Per group of ``by``: each metric's per-unit means and ``mean_interval`` of them, group after group."""
    by = [by] if isinstance(by, str) else list(by)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
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


def paired_difference(a, b, confidence: float = 0.95, seed: int = 0, resamples: int = 9999) -> PairedDifference:
    """``mean_interval`` of the paired differences and one ``scipy.stats.ttest_rel``."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    paired = ~(np.isnan(a) | np.isnan(b))
    a, b = a[paired], b[paired]
    d = a - b
    diff, lo, hi = mean_interval(d, confidence, seed, resamples)
    if d.size < 2:
        p = np.nan
    elif np.all(d == d[0]):
        p = 1.0 if d[0] == 0 else 0.0
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p = float(stats.ttest_rel(a, b).pvalue)
    return PairedDifference(diff, lo, hi, p, int(d.size))


IDS = {"decoderlens": ["concept", "layer", "prompt_id"],
       "interventions": ["technique", "original", "desired", "layer", "component", "prompt_id"],
       "ceiling": ["original", "desired", "prompt_id"]}
COLUMNS = ["model", "figure", "key", "metric", "before", "after", "delta", "lo", "hi", "p", "n", "p_adjusted",
           "changed"]


def compare_results(current, baseline, alpha: float = 0.05, resamples: int = 9999) -> pd.DataFrame:
    """Both runs' rows in long form, outer-merged on their ids, then ``paired_difference`` per aggregate."""
    rows = []
    for table, ids in IDS.items():
        a, b = baseline.table(table), current.table(table)
        if a.empty and b.empty:
            continue
        keys = ["model", *ids]
        merged = _side(a, table, "before").merge(_side(b, table, "after"), on=[*keys, "pair_type", "figure", "key",
                                                                           "metric"], how="outer")
        for (model, figure, key, metric), group in merged.groupby(["model", "figure", "key", "metric"], sort=True):
            per_prompt = group.groupby("prompt_id")[["before", "after"]].mean()
            both = per_prompt.dropna()
            if both.empty:
                rows.append({"model": model, "figure": figure, "key": key, "metric": metric,
                             "before": per_prompt.before.mean(), "after": per_prompt.after.mean(),
                             "delta": np.nan, "lo": np.nan, "hi": np.nan, "p": np.nan, "n": 0})
                continue
            d = paired_difference(both.after.to_numpy(), both.before.to_numpy(), resamples=resamples)
            rows.append({"model": model, "figure": figure, "key": key, "metric": metric,
                         "before": both.before.mean(), "after": both.after.mean(), "delta": d.diff, "lo": d.lo,
                         "hi": d.hi, "p": d.p, "n": d.n})
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return flag_changes(pd.DataFrame(rows), alpha=alpha).reset_index(drop=True)[COLUMNS]


def _side(rows: pd.DataFrame, table: str, name: str) -> pd.DataFrame:
    ids = ["model", *IDS[table], "pair_type"]
    if rows.empty:
        return pd.DataFrame(columns=[*ids, "figure", "key", "metric", name])
    rows = rows.reindex(columns=sorted(set(rows.columns) | {"pair_type"}))
    rows = rows.astype({c: "str" for c in rows.columns if isinstance(rows[c].dtype, pd.CategoricalDtype)})  # as text
    everything = pd.Series(True, index=rows.index)
    if table == "decoderlens":
        specs = [("decoderlens", rows.concept + "-L" + rows.layer.astype(str), ["ndcg"], everything)]
    elif table == "interventions":
        specs = [("profile", rows.technique + "-L" + rows.layer.astype(str) + "." + rows.component,
                  ["effect", "precision"], everything),
                 ("pair_type", rows.technique + "-" + rows.pair_type, ["effect", "effect_original", "effect_desired"],
                  rows.component == "mlp")]
    else:
        specs = [("ceiling", "ceiling-" + rows.pair_type, ["effect", "precision"], everything)]
    frames = []
    for figure, key, metrics, mask in specs:
        part = rows[mask].assign(figure=figure, key=key[mask])
        frames.append(part.melt(id_vars=[*ids, "figure", "key"], value_vars=metrics, var_name="metric",
                                value_name=name))
    return pd.concat(frames, ignore_index=True)
