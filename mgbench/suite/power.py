"""The power of the ground-truth checks: how often a correct world passes each one at a number of prompts.

- The lens checks count clips, so their power is exact: ``lens_full`` passes when a one-sided binomial test
  rejects chance, i.e. when at least ``k`` of ``n`` clips are recognized; a world that follows prompts at rate
  ``r`` passes with probability P(Binomial(n, r) >= k). ``lens_chance`` of a correct world fails only by the
  test's own false-alarm rate (at most ``ALPHA``; exact here).
- The intervention checks are judged on a run's own rows, resampled: ``prompts`` prompt ids drawn with
  replacement, the check judged on those rows, ``draws`` times (a bootstrap; the concepts' means stay those of
  the full run). Each estimate carries its Clopper-Pearson 95% interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binom, binomtest

from .ground_truth import ALPHA, Check, judge
from .planted import Planted

INTERVENTION_CHECKS = ("no_path_silent", "entry_ranks_first", "sites_separate", "downstream_below_entry")


def critical_hits(n: int, chance: float, alpha: float = ALPHA) -> "int | None":
    """The fewest of ``n`` clips recognized that reject ``chance`` (one-sided binomial p < ``alpha``); None when
    even ``n`` of ``n`` do not."""
    return next((k for k in range(n + 1) if binom.sf(k - 1, n, chance) < alpha), None)


def lens_full_power(n: int, chance: float, rate: float, alpha: float = ALPHA) -> float:
    """P(``lens_full`` passes) for ``n`` clips recognized independently at ``rate``."""
    k = critical_hits(n, chance, alpha)
    return 0.0 if k is None else float(binom.sf(k - 1, n, rate))


def lens_chance_power(n: int, chance: float, alpha: float = ALPHA) -> float:
    """P(``lens_chance`` passes) for ``n`` clips of a cut the words cannot reach (recognized at ``chance``)."""
    return float(sum(binom.pmf(k, n, chance) for k in range(n + 1) if binomtest(k, n, chance).pvalue >= alpha))


def lens_power(counts: dict[str, tuple[int, float]], prompts: list[int], rates: list[float]) -> pd.DataFrame:
    """The lens checks' power per category (``counts``: concepts in it and chance), number of prompts and
    recognition rate: one row each."""
    rows = []
    for category, (concepts, chance) in counts.items():
        for p in prompts:
            n = concepts * p
            rows.append({"check": "lens_chance", "where": category, "prompts": p, "clips": n, "rate": chance,
                         "power": lens_chance_power(n, chance)})
            rows += [{"check": "lens_full", "where": category, "prompts": p, "clips": n, "rate": rate,
                      "power": lens_full_power(n, chance, rate)} for rate in rates]
    return pd.DataFrame(rows)


def resampled(table: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """``table``'s rows of the prompt ids ``ids`` (repeats kept, renumbered so each draw is its own prompt)."""
    parts = [table[table.prompt_id == i].assign(prompt_id=k) for k, i in enumerate(ids)]
    return pd.concat(parts, ignore_index=True)


def intervention_power(tables: dict[str, pd.DataFrame], planted: Planted, checks: list[Check], prompts: list[int],
                       draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """Each intervention check's pass rate over ``draws`` bootstrap resamples of ``prompts`` prompts, with its
    Clopper-Pearson 95% interval: one row per check and number of prompts."""
    rng = np.random.default_rng(seed)
    iv, ceiling = tables["interventions"], tables.get("ceiling", pd.DataFrame())
    ids = np.array(sorted(set(iv.prompt_id)))
    rows = []
    for p in prompts:
        passed = dict.fromkeys(checks, 0)
        for _ in range(draws):
            drawn = rng.choice(ids, size=p, replace=True)
            sample = {"interventions": resampled(iv, drawn),
                      "ceiling": resampled(ceiling, drawn) if not ceiling.empty else ceiling}
            for check in checks:
                passed[check] += bool(judge(check, sample, planted).holds)
        for check, k in passed.items():
            interval = binomtest(k, draws).proportion_ci(0.95, method="exact")
            rows.append({"check": check.name, "where": check.where, "prompts": p, "draws": draws,
                         "power": k / draws, "power_lo": interval.low, "power_hi": interval.high})
    return pd.DataFrame(rows)
