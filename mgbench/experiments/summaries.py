"""Aggregates over prompts, each with its 95% bootstrap interval: a case's metrics and the experiments' summaries."""

from __future__ import annotations

import math

import pandas as pd

from ..stats.intervals import with_intervals
from .experiment import Aggregate

#: suffixes of a metric's 95% bootstrap interval bounds over prompts
INTERVAL_SUFFIXES = ("_lo", "_hi")


def over_prompts(rows: pd.DataFrame, metrics: list[str]) -> dict[str, float]:
    """Each metric's mean over prompts with ``_lo``/``_hi`` bounds (``stats.with_intervals``: prompts resampled
    with a fixed seed, rows of one prompt averaged first); all NaN when there are no rows."""
    names = [f"{m}{s}" for m in metrics for s in ("", *INTERVAL_SUFFIXES)]
    if rows.empty:
        return {n: math.nan for n in names}
    table = with_intervals(rows.assign(case=0), "case", metrics)  # one group: the case's rows
    return {n: float(table[n].iloc[0]) for n in names}


def summarize_rows(aggregate: Aggregate, table: pd.DataFrame) -> "pd.DataFrame | None":
    """``aggregate`` of ``table``: one row per group, indexed by its keys, with ``<metric>``, ``<metric>_lo``,
    ``<metric>_hi`` and ``n`` (prompts); None when it has no rows (a narrow selection may have no MLP rows)."""
    rows = aggregate.rows(table)
    if rows.empty:
        return None
    keys = aggregate.keys(rows)
    return with_intervals(rows, keys, list(aggregate.metrics)).set_index(keys)
