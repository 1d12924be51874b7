"""The report's section for each experiment, keyed by the experiment's name: its figures (``figures.py``), what a
reader compares (the peak layer per concept or site, with its interval), and every number behind them as a tidy
table under ``aggregates/`` (CSV and parquet, ``_lo``/``_hi`` and ``n`` per metric). An experiment without a section
of its own is shown by its summary (``Experiment.summary``); adding one is an entry in ``MODEL_SECTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..experiments.claims import CROSS_SIZE_CLAIMS, MODEL_CLAIMS
from ..experiments.experiment import Experiment
from ..experiments.summaries import summarize_rows
from ..experiments.tables import plain_text
from ..paths import atomic_write_with
from ..zoo.architectures import REAL_SIZES
from . import figures
from .localization import localization_section
from .page import Block
from .planted import site_ranking
from .results import Results
from .steering import steering_blocks

#: one model's section of an experiment: (results, model, the paper's readings, report folder) -> blocks
Section = Callable[[Results, str, list[dict], Path], list[Block]]
#: rows of the sites ranked against the prompt-swap ceiling shown in the report (all of them in its CSV)
TOP_SITES = 5


def saved(table: pd.DataFrame, out: Path, name: str, what: str) -> Block:
    """``table`` (tidy, every column) as ``aggregates/<name>.csv`` and ``.parquet`` under the report folder ``out``;
    the block that links it."""
    flat = plain_text(table.reset_index() if table.index.name or isinstance(table.index, pd.MultiIndex) else table)
    for suffix, write in ((".csv", lambda t, p: t.to_csv(p, index=False)),
                          (".parquet", lambda t, p: t.to_parquet(p, index=False))):
        atomic_write_with(out / "aggregates" / f"{name}{suffix}", lambda tmp, w=write: w(flat, tmp))
    return ("link", f"{what}: ", f"aggregates/{name}.csv")


def _rules(rules: list[dict], kind: str) -> list[dict]:
    return [r for r in rules if r.get("experiment") == kind]


def peaks(table: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    """Per group of ``by`` in a per-layer aggregate: the layer where ``metric`` is highest, with its interval."""
    best = table.loc[table.groupby(by, observed=True)[metric].idxmax()]
    return best[[*by, "layer", metric, f"{metric}_lo", f"{metric}_hi", "n"]].rename(
        columns={"layer": f"peak layer ({metric})"}).set_index(by)


def _decoderlens(results: Results, model: str, rules: list[dict], out: Path) -> list[Block]:
    path, tuned = out / "figures" / f"fig2-decoderlens-{model}.png", results.of("tunedlens", model)
    table = figures.lens_figure(results.of("decoderlens", model), model, _rules(rules, "decoderlens"), path,
                                tuned if not tuned.empty else None).reset_index()
    heat = out / "figures" / f"fig2-heatmap-{model}.png"
    figures.heatmap_figure(table, [c for c in ("lens", "concept") if c in table], "ndcg",
                           f"DecoderLens NDCG by concept and layer ({model})", heat)
    best = peaks(table, [c for c in ("concept", "lens") if c in table], "ndcg").drop(columns="n")
    if "lens" in table:  # one row per concept: the cut's peak, then the tuned lens'
        best = best.unstack("lens")
        best.columns = [f"{column} ({lens})" for column, lens in best.columns]
    return [("h", 3, f"Figure 2: DecoderLens recognizability (NDCG), {model}"), ("img", path), ("img", heat),
            ("p", "Per concept: the layer where its NDCG peaks, with the 95% interval over prompts there."),
            ("table", best), saved(table, out, f"fig2-decoderlens-{model}", "NDCG per concept and layer")]


def _similarity(results: Results, model: str, rules: list[dict], out: Path) -> list[Block]:
    path = out / "figures" / f"fig3-similarity-{model}.png"
    table = figures.distance_figure(results.of("similarity", model), model, path)
    blocks: list[Block] = [("h", 3, f"Figure 3: self-similarity of layer outputs, {model}"), ("img", path)]
    if table.empty:  # (one layer: no distance to the others)
        return blocks
    column = table.columns[0]
    return blocks + [("p", f"{column}: from {table[column].min():.3g} ({table[column].idxmin()}) to "
                           f"{table[column].max():.3g} ({table[column].idxmax()})."),
                     saved(table, out, f"fig3-similarity-{model}", "per concept")]


def _interventions(results: Results, model: str, rules: list[dict], out: Path) -> list[Block]:
    mine, ceiling = results.of("interventions", model), results.of("ceiling", model)
    path = out / "figures" / f"fig4-interventions-{model}.png"
    table = figures.profile_figure(mine, model, _rules(rules, "profile"), path).reset_index()
    heat = out / "figures" / f"fig4-heatmap-{model}.png"
    figures.heatmap_figure(table, ["technique", "component"], "effect", f"Mean effect by site ({model})", heat)
    best = peaks(table, ["technique", "component"], "effect")
    blocks: list[Block] = [("h", 3, f"Figure 4 (7, 8): interventions by layer, {model}"), ("img", path),
                           ("img", heat), ("p", "Per technique and component: the layer of the largest mean effect, "
                                               "with its 95% interval over prompts."),
                           ("table", best), saved(table, out, f"fig4-interventions-{model}", "effect and precision "
                                                  "per technique, component and layer")]
    if not ceiling.empty:
        ranking = site_ranking(mine, ceiling)
        blocks += [("h", 3, f"Sites against the prompt-swap ceiling, {model}"),
                   ("p", f"The ceiling is the original prompt with the desired concept's word, same noise: mean effect "
                         f"{ceiling.effect.mean():.3f} over {len(ceiling)} rows. The {TOP_SITES} sites with the "
                         "largest mean effect, and that effect as a fraction of the ceiling."),
                   ("table", ranking.head(TOP_SITES)), saved(ranking, out, f"sites-vs-ceiling-{model}", "every site")]
    mlp_techniques = set(mine[mine.component == "mlp"].technique.unique())
    # Figures 6 and 9 in one section (a narrow selection may have no MLP rows: no empty figure)
    shown = [(t, n) for t, n in (("replace", 6), ("adjust", 9)) if t in mlp_techniques]
    images: list[Block] = []
    links: list[Block] = []
    for technique, number in shown:
        path = out / "figures" / f"fig{number}-pair-type-{technique}-{model}.png"
        table = figures.pair_type_figure(mine, model, technique, _rules(rules, "pair_type"), path)
        images.append(("img", path))
        links.append(saved(table, out, f"fig{number}-pair-type-{technique}-{model}", f"{technique} per pair type"))
    if shown:
        names = " and ".join(f"Figure {number} ({technique})" for technique, number in shown)
        blocks += [("h", 3, f"{names}: MLP by pair type, {model}"), *images, *links]
    swept = results.of("interventions:alpha", model)
    return blocks + (steering_blocks(swept, ceiling, model, out / "figures") if not swept.empty else [])


def _shown_with_others(results: Results, model: str, rules: list[dict], out: Path) -> list[Block]:
    return []  # the tuned lens is drawn in Figure 2, the ceiling beside the interventions


MODEL_SECTIONS: dict[str, Section] = {"decoderlens": _decoderlens, "similarity": _similarity,
                                      "interventions": _interventions, "tunedlens": _shown_with_others,
                                      "ceiling": _shown_with_others, "localization": localization_section}


def summary_section(experiment: Experiment, results: Results, model: str, out: Path) -> list[Block]:
    """An experiment without a section of its own: its summary tables (linked as CSV, the first rows shown)."""
    table = results.of(experiment.name, model)
    blocks: list[Block] = []
    for aggregate in experiment.summary:
        rows = summarize_rows(aggregate, table)
        if rows is not None:
            blocks += [("h", 3, f"{experiment.name}: {aggregate.name}, {model}"), ("table", rows.head(TOP_SITES)),
                       saved(rows, out, f"{aggregate.name}-{model}", f"all {len(rows)} rows")]
    return blocks


def across_models(results: Results, rules: list[dict], out: Path) -> list[Block]:
    """What compares the models: Figure 5 (MLP effect against precision)."""
    iv = results.table("interventions")
    if iv.empty or not (iv.component == "mlp").any():
        return []
    path = out / "figures" / "fig5-effect-vs-precision.png"
    table = figures.effect_precision_figure(iv, figures.paper_bie(_rules(rules, "profile")), path)
    return [("h", 2, "Figure 5: MLP effect vs precision"), ("img", path),
            saved(table, out, "fig5-effect-vs-precision", "the beginning, intermediate and end points")]


def claims(results: Results, random_models: list[str]) -> list[Block]:
    """The paper's claims judged on every model's interventions (and across the paper's sizes)."""
    iv = results.table("interventions")
    models = sorted(iv.model.unique()) if not iv.empty else []
    blocks: list[Block] = [("h", 2, "The paper's claims")]
    rows = []
    for claim, check in MODEL_CLAIMS.items():
        for model in models or ["-"]:
            rows.append(_claim_row(claim, model, check(results.of("interventions", model)) if models else None,
                                   check.__doc__))
    for claim, check in CROSS_SIZE_CLAIMS.items():
        sizes = [results.of("interventions", size) for size in REAL_SIZES if size in models]
        verdict = check(pd.concat(sizes)) if len(sizes) == len(REAL_SIZES) else None
        rows.append(_claim_row(claim, "all sizes", verdict, check.__doc__))
    blocks.append(("table", pd.DataFrame(rows).set_index("claim")))
    if {"toy", *random_models} & set(models):
        blocks.append(("p", "Models with random weights and the toy world (a planted mechanism of its own): "
                            "their verdicts exercise the checks, they say nothing about MusicGen."))
    return blocks


def _claim_row(claim: str, model: str, verdict, doc: "str | None") -> dict:
    return {"claim": claim, "model": model, "verdict": verdict.label if verdict else "not run",
            "numbers": verdict.detail if verdict else "", "statement": (doc or "").strip().splitlines()[0]}


def listing(table: pd.DataFrame, out: Path, name: str, what: str, shown: int = 20) -> list[Block]:
    """A long table: its first ``shown`` rows, a count, and all of it as a CSV."""
    head = [("p", f"The first {shown} of {len(table)} {what}.")] if len(table) > shown else []
    return [*head, ("table", table.head(shown)), saved(table, out, name, f"all {len(table)}")]

