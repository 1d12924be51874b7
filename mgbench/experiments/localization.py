"""Beyond the paper: which method finds the mechanism of a planted world (``mgbench run --experiments
localization``; not part of the default run).

It reads (computing what is missing, through the store) the interventions (replace and adjust at every site), the
prompt-swap ceiling, DecoderLens and the tuned lens for the selection's pairs, adds attribution patching
(``attribution.py``), and writes one tidy table, one row per method x metric (``rankings.py``: ``auroc``,
``spearman_vs_replace``; here: ``forwards``, ``positions``; ``patching.py``: ``faithfulness_auc``, the isolation
rows), and the faithfulness curves (``localization_curve``).

Cost, per method, over the world's run (the concept passes' baseline clips, which every method reuses, excluded):
``forwards`` counts decoder forwards, one per sequence and call: a generated clip is ``steps`` of them (one per frame;
transformers' ``generate`` would add one), a teacher-forced sequence 1 forward plus 2 for its backward;
``positions`` counts the decoder's row-positions (rows x positions per call; a guided clip has two rows), its work.
A DecoderLens cut counts as a full forward (it runs fewer layers), the tuned lens adds its training generations.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd

from ..concepts.concept_set import ConceptSet
from ..engine.sites import all_sites
from ..zoo.loading import planted_truth
from . import ceiling, decoderlens, interventions, tunedlens
from .attribution import attribution_forwards, attribution_rows
from .experiment import Case, CaseKind, Experiment, Tables, Verdict
from .pairs import selected_pairs
from .patching import curve_area, faithfulness_rows, isolation_rows
from .rankings import (
    INTERVENTION_METHODS,
    attribution_scores,
    intervention_scores,
    lens_scores,
    magnitude,
    mean_and_se,
    ranking_rows,
)
from .selection import Selection
from .session import Session

NAME = "localization"
COLUMNS = ("model", "method", "metric", "value", "lo", "hi", "n", "unit", "detail")
MIN_RATIO, MIN_AUROC = 10.0, 0.9
SILENT = 1e-6  # a mean ceiling effect below this is no effect
#: the methods whose ``entry_auroc`` is a bench case: those that score sites, not layers (a lens gives a layer's three
#: sites one score, so it cannot put the entry above its layer's other two)
SITE_METHODS = ("replace", "adjust", "attribution")
_CURVES: "weakref.WeakKeyDictionary[Session, pd.DataFrame]" = weakref.WeakKeyDictionary()


def faithfulness_pairs(pairs: list[tuple[str, str]], concepts: ConceptSet,
                       swap: pd.DataFrame) -> list[tuple[str, str]]:
    """The pairs the faithfulness curves patch: the first of each pair type (instrument->genre, ...) whose mean
    prompt-swap ceiling is not 0 (a prompt of the original may already name the desired concept: its swap changes
    nothing, and no fraction of it is defined)."""
    ceilings = swap.groupby(["original", "desired"])["effect"].mean()
    chosen: dict[tuple[str, str], tuple[str, str]] = {}
    for o, d in pairs:
        if abs(ceilings.get((o, d), 0.0)) > SILENT:
            chosen.setdefault((concepts.get(o).category, concepts.get(d).category), (o, d))
    return list(chosen.values())


def cost_rows(session: Session, pairs: list[tuple[str, str]], concepts: list[str]) -> list[dict]:
    """``forwards`` and ``positions`` per method (module docstring), from the loops' sizes."""
    steps, prompts, layers = session.runner.max_new_tokens, session.config.prompts, session.facts.num_layers
    rows_per_clip = 2 if session.runner.guided else 1
    sites = len(all_sites(layers))
    clips = {"replace": len(pairs) * sites * prompts, "adjust": len(pairs) * sites * prompts,
             "ceiling": len(pairs) * prompts, "decoderlens": len(concepts) * prompts * (layers - 1),
             "tunedlens": len(concepts) * (prompts * (layers - 1) + tunedlens.TRAINING.prompts_per_concept)}
    out = [(m, n * steps, n * steps * rows_per_clip) for m, n in clips.items()]
    sequences = attribution_forwards(len(concepts), len({o for o, _ in pairs}), prompts)[1]
    out.append(("attribution", sequences, sequences * steps))
    return [dict(method=m, metric=metric, value=float(v), lo=np.nan, hi=np.nan, n=len(pairs), unit=unit, detail="")
            for m, f, p in out for metric, v, unit in (("forwards", f, "decoder forwards"),
                                                      ("positions", p, "row-positions"))]


def run_localization(session: Session, grid: pd.DataFrame) -> pd.DataFrame:
    """The localization table of the grid's pairs (empty for a model without a planted truth); the lenses run on
    the pairs' concepts, isolation on every pair within a category."""
    planted = planted_truth(session.config.model)
    if planted is None:
        return pd.DataFrame(columns=COLUMNS)
    pairs = list(zip(grid.original, grid.desired))
    names = [c for c in session.concepts.names if c in {x for p in pairs for x in p}]
    sites, layers = all_sites(session.facts.num_layers), session.facts.num_layers
    picked = Selection(pairs=tuple(pairs), techniques=INTERVENTION_METHODS)
    iv = interventions.run_interventions(session, interventions.selection_grid(session, picked))
    swap = ceiling.run_ceiling(session, ceiling.ceiling_grid([], session.config.prompts, pairs))
    lens_grid = decoderlens.decoderlens_grid(names, list(range(layers)), session.config.prompts)
    lenses = {"decoderlens": decoderlens.run_decoderlens(session, lens_grid),
              "tunedlens": tunedlens.run_tunedlens(session, lens_grid)}
    signed = {t: intervention_scores(iv, t) for t in INTERVENTION_METHODS}
    signed["attribution"] = attribution_scores(attribution_rows(session, pairs, sites))
    scores = {m: magnitude(signed[m]) for m in INTERVENTION_METHODS}
    scores.update({m: lens_scores(t, pairs, sites, session.concepts, layers) for m, t in lenses.items()})
    scores["attribution"] = magnitude(signed["attribution"])
    curve = faithfulness_rows(session, scores, faithfulness_pairs(pairs, session.concepts, swap), swap)
    _CURVES[session] = curve.assign(model=session.config.model)
    rows = [{**r, "detail": ""} for r in ranking_rows(scores, signed, planted, session.concepts)] + cost_rows(
        session, pairs, names)
    for method, group in curve.groupby("method", sort=False):
        areas = [curve_area(g.fraction_sites, g.faithfulness) for _, g in group.groupby(["original", "desired"])]
        mean, lo, hi, n = mean_and_se(areas)
        rows.append(dict(method=method, metric="faithfulness_auc", value=mean, lo=lo, hi=hi, n=n, unit="pairs",
                         detail="k " + ",".join(map(str, sorted(group.k.unique()))) + ", / all sites patched"))
        ratio = [g.effect.mean() / g.ceiling.mean() for _, g in group.groupby("k")]
        rows.append(dict(method=method, metric="ceiling_fraction_auc",
                         value=curve_area(sorted(group.fraction_sites.unique()), ratio), lo=np.nan, hi=np.nan,
                         n=n, unit="pairs", detail="mean effect over pairs / mean ceiling over pairs"))
    rows += _isolation(isolation_rows(session, planted))
    table = pd.DataFrame(rows).assign(model=session.config.model)
    return table[list(COLUMNS)]


def _isolation(iso: pd.DataFrame) -> list[dict]:
    """The isolation rows as table rows: the measured category's recognition without and with the edit, and the
    difference (with - without)."""
    rows = []
    for (steered, site, measured), g in iso.groupby(["steered", "site", "measured"], sort=False):
        detail = f"steer {steered} at {site}, {measured} recognized"
        for r in g.itertuples():
            rows.append(dict(method="replace", metric=f"isolation_{r.edit}", value=r.value, lo=r.lo, hi=r.hi, n=r.n,
                             unit="clips", detail=detail))
        values = g.set_index("edit").value
        rows.append(dict(method="replace", metric="isolation_difference", value=values["with"] - values["without"],
                         lo=np.nan, hi=np.nan, n=int(g.n.sum()), unit="clips", detail=detail))
    return rows


def _outputs(session: Session, table: pd.DataFrame, out: Path, listen: int) -> tuple[dict[str, pd.DataFrame],
                                                                                   list[Path]]:
    """The faithfulness curves, a table of their own."""
    curve = _CURVES.get(session)
    return ({f"{NAME}_curve": curve} if curve is not None else {}), []


# -- bench cases -------------------------------------------------------------------------------------------------
def value(table: pd.DataFrame, method: str, metric: str) -> float:
    """One number of the table (NaN where absent)."""
    hit = table[(table.method == method) & (table.metric == metric)]
    return float(hit.value.iloc[0]) if len(hit) else np.nan


def _checks() -> list[str]:
    """What the bench holds a world to: attribution patching's cost and every site-level method's AUROC. How closely
    attribution's order of all sites follows replace's (Spearman, ``spearman_vs_replace``) is a number of the table,
    not a check: it is 0.94 on ``toy`` at 2 prompts, 0.89 at 4, 0.76 on ``toy-early`` (docs/toy-world.md)."""
    return ["attribution_cheaper", *(f"entry_auroc-{m}" for m in SITE_METHODS)]


def _cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    if planted_truth(size) is None:  # a planted world's cases only
        return []
    return [Case(NAME, size, check=c, parts=(NAME, c)) for c in _checks()]


def _wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
    return [(case.size, Selection((NAME,)))]


def _verdict(case: Case, tables: Tables) -> Verdict:
    t = tables(case.size)[NAME]
    if case.check == "attribution_cheaper":
        ratio = value(t, "replace", "forwards") / value(t, "attribution", "forwards")
        work = value(t, "replace", "positions") / value(t, "attribution", "positions")
        return Verdict(bool(ratio >= MIN_RATIO), f"replace takes {ratio:.0f}x attribution's decoder forwards (must be "
                                                 f">= {MIN_RATIO:g}); {work:.1f}x its row-positions")
    method = case.check.split("-", 1)[1]
    auroc = value(t, method, "auroc")
    return Verdict(bool(auroc >= MIN_AUROC), f"{method}: mean AUROC of the planted entries over pairs {auroc:.3f} "
                                             f"(must be >= {MIN_AUROC})")


EXPERIMENT = Experiment(
    name=NAME, ids=("original", "desired"), columns=COLUMNS,
    grid=lambda session, selection: pd.DataFrame(selected_pairs(session, selection), columns=["original", "desired"]),
    rows=run_localization, stored=False, pairs=True, default=False, requires=tunedlens.EXPERIMENT.requires,
    outputs=_outputs, cases=(CaseKind(NAME, _cases, _wants, verdict=_verdict),))
