"""Nightly regression diff: which aggregate metrics moved beyond their tolerance since a baseline run."""

from __future__ import annotations

import pandas as pd

from .results import Results, aggregates

#: How far an aggregate may move before the diff reports it (the scale of run-to-run noise we accept).
TOLERANCE = {"ndcg": 0.02, "effect": 0.1, "effect_original": 0.1, "effect_desired": 0.1, "precision": 0.02}


def diff_results(current: Results, baseline: Results, tolerance: "dict[str, float] | None" = None) -> pd.DataFrame:
    """Aggregates whose value moved by more than the metric's tolerance, or that exist on one side only."""
    tol = {**TOLERANCE, **(tolerance or {})}
    keys = ["model", "figure", "key", "metric"]
    merged = aggregates(baseline).merge(aggregates(current), on=keys, how="outer", suffixes=("_before", "_after"))
    merged["delta"] = merged.value_after - merged.value_before
    merged["tolerance"] = merged.metric.map(tol).fillna(0.0)
    moved = merged.delta.abs() > merged.tolerance
    one_sided = merged.value_before.isna() ^ merged.value_after.isna()
    return merged[moved | one_sided].rename(columns={"value_before": "before", "value_after": "after"}).reset_index(
        drop=True)[keys + ["before", "after", "delta", "tolerance"]]
