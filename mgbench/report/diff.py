"""Nightly regression diff: which aggregate metrics changed significantly since a baseline run.

Each aggregate (a figure's point: a DecoderLens layer, a profile site, a pair type, the ceiling by pair
type) is compared as a *paired* difference over prompts: rows of the two runs are matched on their ids
(prompt_id included), each run's rows are averaged within prompt (as ``stats.with_intervals`` does), and
``stats.paired_difference`` gives the mean change, its bootstrap interval and a paired t-test p. The
p-values of all compared aggregates are then adjusted together (Benjamini-Hochberg,
``stats.flag_changes``): an aggregate is *changed* when its adjusted p is below ``ALPHA``, so among the
changed aggregates the expected share of false alarms is at most ``ALPHA``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..stats.intervals import paired_difference
from ..stats.verdicts import flag_changes
from .results import Results

#: the false discovery rate the diff controls
ALPHA = 0.05
#: each table's row ids (without ``model``): rows of two runs with equal ids are paired
IDS = {"decoderlens": ["concept", "layer", "prompt_id"],
       "interventions": ["technique", "original", "desired", "layer", "component", "prompt_id"],
       "ceiling": ["original", "desired", "prompt_id"]}
#: the columns of ``compare_results``
COLUMNS = ["model", "figure", "key", "metric", "before", "after", "delta", "lo", "hi", "p", "n", "p_adjusted",
           "changed"]


def _specs(table: str, rows: pd.DataFrame) -> "list[tuple[str, list[str], pd.Series, list[str], pd.Series]]":
    """The aggregates of ``table`` (as ``results.aggregates`` forms them, plus the ceiling's):
    (figure, group columns, key per row, metrics, row mask)."""
    everything = pd.Series(True, index=rows.index)
    if table == "decoderlens":
        return [("decoderlens", ["concept", "layer"], rows.concept + "-L" + rows.layer.astype(str), ["ndcg"],
                 everything)]
    if table == "interventions":
        return [("profile", ["technique", "component", "layer"],
                 rows.technique + "-L" + rows.layer.astype(str) + "." + rows.component, ["effect", "precision"],
                 everything),
                ("pair_type", ["technique", "pair_type"], rows.technique + "-" + rows.pair_type,
                 ["effect", "effect_original", "effect_desired"], rows.component == "mlp")]
    return [("ceiling", ["pair_type"], "ceiling-" + rows.pair_type, ["effect", "precision"], everything)]


def compare_results(current: Results, baseline: Results, alpha: float = ALPHA, resamples: int = 9999) -> pd.DataFrame:
    """Every aggregate of the two runs, with its paired change over prompts and whether it changed.

    One row per (model, figure, key, metric): ``before``/``after`` (means over the matched prompts of
    the per-prompt means), ``delta`` = after - before with its 95% bootstrap interval ``lo``/``hi``, the
    paired t-test ``p``, ``n`` matched prompts, the Benjamini-Hochberg ``p_adjusted`` and ``changed``
    (``p_adjusted < alpha``). An aggregate with rows on one side only has ``before`` or ``after`` nan,
    no p, and is never ``changed``. Sorted changed first, then by adjusted p. ``resamples``: the bootstrap's.
    """
    rows = []
    for table, ids in IDS.items():
        a, b = baseline.table(table), current.table(table)
        if a.empty and b.empty:
            continue
        keys = ["model", *ids]
        for side in (a, b):
            missing = [c for c in keys if not side.empty and c not in side.columns]
            if missing:
                raise ConfigError(f"the {table} table lacks the id column(s) {', '.join(missing)} that pair rows of "
                                  "two runs: it is from an older mgbench; rerun `mgbench run` to write it anew")
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
    """One run's rows of ``table`` in long form: ids, figure, key, metric and the value as column ``name``."""
    ids = ["model", *IDS[table], "pair_type"]
    if rows.empty:
        return pd.DataFrame(columns=[*ids, "figure", "key", "metric", name])
    rows = rows.reindex(columns=sorted(set(rows.columns) | {"pair_type"}))
    frames = []
    for figure, _, key, metrics, mask in _specs(table, rows):
        part = rows[mask].assign(figure=figure, key=key[mask])
        frames.append(part.melt(id_vars=[*ids, "figure", "key"], value_vars=metrics, var_name="metric",
                                value_name=name))
    return pd.concat(frames, ignore_index=True)


def diff_results(current: Results, baseline: Results, alpha: float = ALPHA, resamples: int = 9999) -> pd.DataFrame:
    """The aggregates that changed significantly (``compare_results``'s ``changed`` rows), then those with
    rows on one side only."""
    compared = compare_results(current, baseline, alpha, resamples)
    one_sided = compared.before.isna() ^ compared.after.isna()
    return pd.concat([compared[compared.changed], compared[one_sided]], ignore_index=True)
