"""Which method finds the mechanism: site rankings of every method scored against a planted world (MIB's metrics,
adapted to MusicGen's sites).

Methods and their per (pair, site) scores, larger = more important:

- ``replace``, ``adjust``: the size (absolute value) of the interventions' mean effect over prompts;
- ``attribution``: the size of attribution patching's mean estimate of the replace intervention
  (``attribution.py``);
- ``decoderlens``, ``tunedlens``: layer-level; every site of layer ``l`` gets the lens' gain there, the recognition
  rate (among the category's concepts) of the cut after layer ``l`` minus that of the cut after ``l - 1`` (before
  layer 0: chance), averaged over the pair's two categories; a layer's three sites tie.

Sizes, not signs: a site that moves the pair's outcome strongly either way carries the concept, and the two
estimates disagree in sign where the teacher-forced estimate cannot see a path: through the codes a site helps
generate (the replace intervention regenerates them, teacher forcing holds them fixed). On ``toy`` L0.self_attn's
replace effect is +3.0 on average and its signed estimate -1.9 (signs differ between pairs); the signed Spearman
is reported beside the absolute one (``spearman_vs_replace_signed``).

Metrics: ``auroc`` per pair of the site scores against the planted entries for the pair's categories (a site is an
entry if it is one for the original's or the desired concept's category: ``planted.json``'s ``roles_by_category``),
averaged over pairs; ``spearman`` of attribution's site scores (mean over pairs) against replace's; ``forwards``
(``localization.py``). Faithfulness and isolation are in ``patching.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from ..concepts.concept_set import ConceptSet
from ..engine.sites import PAPER_COMPONENTS, Site

KEYS = ["original", "desired", "layer", "component"]
INTERVENTION_METHODS = ("replace", "adjust")
LENS_METHODS = ("decoderlens", "tunedlens")
METHODS = (*INTERVENTION_METHODS, *LENS_METHODS, "attribution")


def magnitude(scores: pd.DataFrame) -> pd.DataFrame:
    """The scores' absolute values."""
    return scores.assign(score=scores.score.abs())


def intervention_scores(interventions: pd.DataFrame, technique: str) -> pd.DataFrame:
    """Per (pair, site): the technique's mean effect over prompts (``score``, signed)."""
    rows = interventions[interventions.technique == technique]
    return rows.groupby(KEYS, as_index=False)["effect"].mean().rename(columns={"effect": "score"})


def attribution_scores(attribution: pd.DataFrame) -> pd.DataFrame:
    """Per (pair, site): attribution patching's mean estimate over prompts (``score``, signed)."""
    return attribution.groupby(KEYS, as_index=False)["attribution"].mean().rename(columns={"attribution": "score"})


def lens_gains(lens: pd.DataFrame, layers: int, chance: dict[str, float]) -> pd.DataFrame:
    """Per (category, layer): the recognition rate of the cut after the layer minus that of the cut before it
    (``chance[category]`` before layer 0), as ``gain``."""
    rates = lens.groupby(["category", "layer"])["recognized"].mean()
    rows = []
    for category in sorted(lens.category.unique()):
        before = chance[category]
        for layer in range(layers):
            rate = float(rates.get((category, layer), np.nan))
            rows.append((category, layer, rate - before))
            before = rate
    return pd.DataFrame(rows, columns=["category", "layer", "gain"])


def lens_scores(lens: pd.DataFrame, pairs: list[tuple[str, str]], sites: list[Site], concepts: ConceptSet,
                layers: int) -> pd.DataFrame:
    """Per (pair, site): the lens' gain at the site's layer, averaged over the pair's two categories."""
    chance = {c.category: 1 / len(concepts.members(c.category)) for c in concepts.concepts}
    gains = lens_gains(lens, layers, chance).set_index(["category", "layer"])["gain"]
    rows = [(o, d, s.layer, s.component,
             float(np.mean([gains[(concepts.get(c).category, s.layer)] for c in (o, d)])))
            for o, d in pairs for s in sites]
    return pd.DataFrame(rows, columns=[*KEYS, "score"])


def entry_labels(scores: pd.DataFrame, planted: dict, concepts: ConceptSet) -> pd.Series:
    """1 where a row's site is an entry for its pair's original or desired category (``roles_by_category``)."""
    roles = planted["roles_by_category"]
    return pd.Series([int(any(roles.get(concepts.get(c).category, {}).get(str(Site(int(layer), comp))) == "entry"
                              for c in (o, d)))
                      for o, d, layer, comp in zip(scores.original, scores.desired, scores.layer, scores.component)],
                     index=scores.index)


def pair_aurocs(scores: pd.DataFrame, labels: pd.Series) -> pd.Series:
    """Per pair: the AUROC of its site scores against its entry labels (pairs whose sites are all one label are
    skipped: no AUROC)."""
    out = {}
    for pair, rows in scores.assign(label=labels).groupby(["original", "desired"], sort=False):
        if rows.label.nunique() == 2:
            out[pair] = roc_auc_score(rows.label, rows.score)
    return pd.Series(out, dtype=float)


def site_means(scores: pd.DataFrame) -> pd.Series:
    """Per site (``L2.cross_attn``): the mean score over pairs."""
    means = scores.groupby(["layer", "component"])["score"].mean()
    return pd.Series(means.to_numpy(), index=[str(Site(int(lay), c)) for lay, c in means.index])


def site_spearman(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Spearman's rank correlation of two methods' site scores (each a mean over pairs) over their common sites."""
    x, y = site_means(a), site_means(b)
    common = [s for s in x.index if s in y.index]
    return float(spearmanr(x[common], y[common]).statistic)


def mean_and_se(values: "pd.Series | np.ndarray") -> tuple[float, float, float, int]:
    """(mean, mean - 1.96 SE, mean + 1.96 SE, n); the bounds are NaN for fewer than two values."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return np.nan, np.nan, np.nan, 0
    se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan
    return float(v.mean()), float(v.mean() - 1.96 * se), float(v.mean() + 1.96 * se), len(v)


def ranking_rows(scores: dict[str, pd.DataFrame], signed: dict[str, pd.DataFrame], planted: dict,
                 concepts: ConceptSet) -> list[dict]:
    """The AUROC rows of every method (``scores``: the rankings' scores) and the Spearman rows of attribution vs
    replace, over the rankings' scores and over the ``signed`` ones."""
    rows = []
    for method, table in scores.items():
        aurocs = pair_aurocs(table, entry_labels(table, planted, concepts))
        mean, lo, hi, n = mean_and_se(aurocs)
        rows.append(dict(method=method, metric="auroc", value=mean, lo=lo, hi=hi, n=n, unit="pairs"))
    sites = int(scores["replace"][["layer", "component"]].drop_duplicates().shape[0])
    for metric, chosen in (("spearman_vs_replace", scores), ("spearman_vs_replace_signed", signed)):
        rows.append(dict(method="attribution", metric=metric, value=site_spearman(chosen["attribution"],
                                                                                  chosen["replace"]),
                         lo=np.nan, hi=np.nan, n=sites, unit="sites"))
    return rows


def ranked_sites(scores: pd.DataFrame, original: str, desired: str) -> list[Site]:
    """A pair's sites, highest score first; ties (a lens' layer) in the decoder's order (layer, then self_attn,
    cross_attn, mlp)."""
    rows = scores[(scores.original == original) & (scores.desired == desired)]
    ranked = sorted(zip(rows.score, rows.layer, rows.component),
                    key=lambda r: (-r[0], int(r[1]), PAPER_COMPONENTS.index(r[2])))
    return [Site(int(layer), component) for _, layer, component in ranked]
