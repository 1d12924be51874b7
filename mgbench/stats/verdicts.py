"""From intervals and p-values to words: a claim's verdict, and which aggregates changed between runs."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError

Verdict = Literal["holds", "fails", "inconclusive"]


def verdict(lo: float, hi: float, threshold: float = 0.0, direction: str = "greater") -> Verdict:
    """Whether a claim "the quantity is ``direction`` than ``threshold``" holds, given its interval.

    ``holds`` when ``[lo, hi]`` lies strictly on the claimed side of the threshold, ``fails`` when it
    lies strictly on the other side, ``inconclusive`` when it touches or spans the threshold (or is nan).
    ``direction`` is ``"greater"`` or ``"less"``.
    """
    if direction not in ("greater", "less"):
        raise ConfigError(f"unknown direction {direction!r}; valid: greater, less")
    if lo > hi:
        raise ConfigError(f"interval [{lo}, {hi}] has its low end above its high end")
    above, below = lo > threshold, hi < threshold  # both False for nan
    if above or below:
        return "holds" if above == (direction == "greater") else "fails"
    return "inconclusive"


def flag_changes(diffs: pd.DataFrame, alpha: float = 0.05, p: str = "p") -> pd.DataFrame:
    """``diffs`` (one row per aggregate, with a paired p-value in column ``p``) with changes flagged.

    Adds ``p_adjusted`` (Benjamini-Hochberg, ``scipy.stats.false_discovery_control``, over the rows with
    a p-value) and ``changed`` (``p_adjusted < alpha``: the false discovery rate among the flagged rows
    is at most ``alpha``). Rows without a p-value (nan) are never flagged. Sorted changed first, then by
    adjusted p; the input is not modified.
    """
    if p not in diffs.columns:
        raise ConfigError(f"diffs has no p-value column {p!r}; it has {', '.join(map(str, diffs.columns))}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie between 0 and 1; got {alpha}")
    out = diffs.copy()
    ps = out[p].to_numpy(dtype=float)
    known = ~np.isnan(ps)
    adjusted = np.full(ps.shape, np.nan)
    if known.any():
        adjusted[known] = stats.false_discovery_control(ps[known], method="bh")
    out["p_adjusted"] = adjusted
    out["changed"] = adjusted < alpha  # nan compares False
    return out.sort_values(["changed", "p_adjusted"], ascending=[False, True], kind="stable", na_position="last")
