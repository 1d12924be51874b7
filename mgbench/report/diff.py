"""Nightly regression diff: which aggregate metrics changed significantly since a baseline run.

Each aggregate (every experiment's summary that names its groups, ``Aggregate.key``: a figure's point, such as a
DecoderLens layer, a profile site, a pair type, the ceiling by pair type) is compared as a *paired* difference
over prompts: each run's rows are first averaged within prompt for every aggregate (as ``stats.with_intervals``
does), so memory follows the number of aggregates, not of rows; the two runs' per-prompt values are then paired on
prompt_id (a row of one run counts where the other run has rows of that aggregate and prompt too), and
``stats.paired_differences`` gives every aggregate's mean change, its bootstrap interval and a paired t-test p at
once. The p-values of all compared aggregates are then adjusted together (Benjamini-Hochberg,
``stats.flag_changes``): an aggregate is *changed* when its adjusted p is below ``ALPHA``, so among the changed
aggregates the expected share of false alarms is at most ``ALPHA``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..experiments import catalog
from ..experiments.experiment import Experiment
from ..stats.intervals import paired_differences, row_means
from ..stats.verdicts import flag_changes
from .results import Results

#: the false discovery rate the diff controls
ALPHA = 0.05
#: the columns of ``compare_results``
COLUMNS = ["model", "figure", "key", "metric", "before", "after", "delta", "lo", "hi", "p", "n", "p_adjusted",
           "changed"]


#: what identifies an aggregate
AGGREGATE = ["model", "figure", "key", "metric"]


def compare_results(current: Results, baseline: Results, alpha: float = ALPHA, resamples: int = 9999) -> pd.DataFrame:
    """Every aggregate of the two runs, with its paired change over prompts and whether it changed.

    One row per (model, figure, key, metric): ``before``/``after`` (means over the matched prompts of
    the per-prompt means), ``delta`` = after - before with its 95% bootstrap interval ``lo``/``hi``, the
    paired t-test ``p``, ``n`` matched prompts, the Benjamini-Hochberg ``p_adjusted`` and ``changed``
    (``p_adjusted < alpha``). An aggregate with rows on one side only has ``before`` or ``after`` nan,
    no p, and is never ``changed``. Sorted changed first, then by adjusted p. ``resamples``: the bootstrap's.
    """
    frames = []
    for experiment in catalog.EXPERIMENTS:
        if not any(aggregate.key is not None for aggregate in experiment.summary):
            continue
        a, b = baseline.table(experiment.name), current.table(experiment.name)
        if a.empty and b.empty:
            continue
        for side in (a, b):
            missing = [c for c in ["model", *experiment.ids] if not side.empty and c not in side.columns]
            if missing:
                raise ConfigError(f"the {experiment.name} table lacks the id column(s) {', '.join(missing)} that pair "
                                  "rows of two runs: it is from an older mgbench; rerun `mgbench run` to write it anew")
        merged = _per_prompt(a, experiment, "before").merge(_per_prompt(b, experiment, "after"),
                                                            on=[*AGGREGATE, "prompt_id"], how="outer")
        frames.append(_paired(merged, resamples))
    rows = [f for f in frames if not f.empty]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return flag_changes(pd.concat(rows, ignore_index=True), alpha=alpha).reset_index(drop=True)[COLUMNS]


def _per_prompt(rows: pd.DataFrame, experiment: Experiment, name: str) -> pd.DataFrame:
    """One run's aggregates of ``experiment``'s table (its summaries that name their groups) averaged within prompt,
    in long form: ``AGGREGATE``, prompt_id and the value as column ``name``.

    Rows are grouped on integer codes of their key columns, and only their metrics are gathered: memory follows the
    rows by a few bytes each, whatever the strings. Each prompt's mean sums its rows in id order (the order an outer
    merge of two runs' rows on their ids gives them), so it equals that of both runs' merged rows to the last bit: a
    BCa interval of few prompts can jump at a last-bit change."""
    frames = [pd.DataFrame({c: pd.Series(dtype=float if c == name else object)
                            for c in [*AGGREGATE, "prompt_id", name]})]
    if rows.empty:
        return frames[0]
    if "pair_type" not in rows.columns:  # (without it, no pair type aggregate)
        rows = rows.assign(pair_type=np.nan)
    ids = ["model", *experiment.ids]
    aggregates = [a for a in experiment.summary if a.key is not None]
    coded = {c: _codes(rows[c]) for c in dict.fromkeys([*ids, *(c for a in aggregates for c in a.by)])}
    order = np.lexsort([coded[c][0] for c in reversed(ids)])
    for aggregate in aggregates:
        figure, by = aggregate.name, list(aggregate.by)
        metrics = [m for m in aggregate.metrics if m in rows.columns]  # (an older table may lack a metric)
        keys = ["model", *by, "prompt_id"]
        take = order if aggregate.where is None else order[aggregate.where(rows).to_numpy()[order]]
        take = take[np.logical_and.reduce([coded[c][0][take] >= 0 for c in keys])]  # (no NaN keys, as groupby)
        if not take.size:
            continue
        part = pd.DataFrame({**{c: coded[c][0][take] for c in keys},
                             **{m: rows[m].to_numpy(dtype=float)[take] for m in metrics}})
        means = part.groupby(keys, sort=False)[metrics].mean().reset_index()
        means = means.assign(**{c: coded[c][1].take(means[c]) for c in keys})
        means = means.assign(figure=figure, key=aggregate.names(means))
        frames.append(means.melt(id_vars=["model", "figure", "key", "prompt_id"], value_vars=metrics,
                                 var_name="metric", value_name=name))
    return pd.concat(frames[1:] or frames, ignore_index=True)


def _codes(column: pd.Series) -> "tuple[np.ndarray, pd.Index]":
    """Integer codes of ``column`` in the sort order of its values (-1 for NaN), and the values they stand for."""
    codes, uniques = pd.factorize(column, sort=True)
    return codes.astype(np.min_scalar_type(-len(uniques) - 1)), uniques  # signed: -1 stays -1


def _paired(merged: pd.DataFrame, resamples: int) -> pd.DataFrame:
    """Every aggregate of ``merged`` (per-prompt ``before`` and ``after``, NaN where a run lacks the prompt): one
    row per aggregate, in ``AGGREGATE`` order, with its paired difference over the prompts both runs have."""
    if merged.empty:
        return pd.DataFrame(columns=[*AGGREGATE, "before", "after", "delta", "lo", "hi", "p", "n"])
    merged = merged.sort_values([*AGGREGATE, "prompt_id"], kind="stable")
    groups = merged.groupby(AGGREGATE, sort=True)
    sizes = groups.size()
    group, position = groups.ngroup().to_numpy(), groups.cumcount().to_numpy()
    before, after = (np.full((len(sizes), int(sizes.max())), np.nan) for _ in range(2))
    before[group, position], after[group, position] = merged.before.to_numpy(float), merged.after.to_numpy(float)
    found = paired_differences(after, before, resamples=resamples)
    both = ~(np.isnan(before) | np.isnan(after))
    matched = found.n.to_numpy() > 0  # means over the matched prompts; over each side's own where none match
    out = sizes.index.to_frame(index=False)
    out["before"], out["after"] = (np.where(matched, row_means(np.where(both, side, np.nan)), row_means(side))
                                   for side in (before, after))
    out["delta"], out["lo"], out["hi"], out["p"], out["n"] = found["diff"], found.lo, found.hi, found.p, found.n
    return out


def diff_results(current: Results, baseline: Results, alpha: float = ALPHA, resamples: int = 9999) -> pd.DataFrame:
    """The aggregates that changed significantly (``compare_results``'s ``changed`` rows), then those with
    rows on one side only."""
    compared = compare_results(current, baseline, alpha, resamples)
    one_sided = compared.before.isna() ^ compared.after.isna()
    return pd.concat([compared[compared.changed], compared[one_sided]], ignore_index=True)
