"""The report's section for each experiment, keyed by the experiment's name: its figures (``figures.py``) with the
numbers behind them. An experiment without a section of its own is shown by its summary (``Experiment.summary``);
adding one is an entry in ``MODEL_SECTIONS``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..experiments.claims import CROSS_SIZE_CLAIMS, MODEL_CLAIMS
from ..experiments.experiment import Experiment
from ..experiments.summaries import summarize_rows
from ..zoo.architectures import REAL_SIZES
from . import figures
from .page import Block
from .planted import site_ranking
from .results import SWEPT, Results
from .steering import steering_blocks

#: one model's section of an experiment: (results, model, the paper's readings, figure folder) -> blocks
Section = Callable[[Results, str, list[dict], Path], list[Block]]


def _of(results: Results, name: str, model: str) -> pd.DataFrame:
    table = results.table(name)
    return table[table.model == model] if not table.empty else table


def _rules(rules: list[dict], kind: str) -> list[dict]:
    return [r for r in rules if r.get("experiment") == kind]


def _decoderlens(results: Results, model: str, rules: list[dict], fig_dir: Path) -> list[Block]:
    path = fig_dir / f"fig2-decoderlens-{model}.png"
    tuned = _of(results, "tunedlens", model)
    table = figures.lens_figure(_of(results, "decoderlens", model), model, _rules(rules, "decoderlens"), path,
                                       tuned if not tuned.empty else None)
    return [("h", 3, "Figure 2: DecoderLens recognizability (NDCG)"), ("img", path), ("table", table)]


def _similarity(results: Results, model: str, rules: list[dict], fig_dir: Path) -> list[Block]:
    path = fig_dir / f"fig3-similarity-{model}.png"
    table = figures.distance_figure(_of(results, "similarity", model), model, path)
    return [("h", 3, "Figure 3: self-similarity of layer outputs"), ("img", path), ("table", table)]


def _interventions(results: Results, model: str, rules: list[dict], fig_dir: Path) -> list[Block]:
    mine, ceiling = _of(results, "interventions", model), _of(results, "ceiling", model)
    path = fig_dir / f"fig4-interventions-{model}.png"
    table = figures.profile_figure(mine, model, _rules(rules, "profile"), path)
    blocks: list[Block] = [("h", 3, "Figure 4 (7, 8): interventions by layer"), ("img", path), ("table", table)]
    if not ceiling.empty:
        blocks += [("h", 3, "Sites against the prompt-swap ceiling"),
                   ("p", f"The ceiling is the original prompt with the desired concept's word, same noise: "
                         f"mean effect {ceiling.effect.mean():.3f} over {len(ceiling)} rows. Ten sites with "
                         "the largest mean effect, and that effect as a fraction of the ceiling."),
                   ("table", site_ranking(mine, ceiling).head(10))]
    mlp_techniques = set(mine[mine.component == "mlp"].technique)
    for technique, number in (("replace", 6), ("adjust", 9)):
        if technique in mlp_techniques:  # (a narrow selection may have no MLP rows: no empty figure)
            path = fig_dir / f"fig{number}-pair-type-{technique}-{model}.png"
            table = figures.pair_type_figure(mine, model, technique, _rules(rules, "pair_type"), path)
            blocks += [("h", 3, f"Figure {number}: MLP {technique} by pair type"), ("img", path), ("table", table)]
    swept = _of(results, "interventions" + SWEPT, model)
    return blocks + (steering_blocks(swept, ceiling, model, fig_dir) if not swept.empty else [])


def _shown_with_others(results: Results, model: str, rules: list[dict], fig_dir: Path) -> list[Block]:
    return []  # the tuned lens is drawn in Figure 2, the ceiling beside the interventions


MODEL_SECTIONS: dict[str, Section] = {"decoderlens": _decoderlens, "similarity": _similarity,
                                      "interventions": _interventions, "tunedlens": _shown_with_others,
                                      "ceiling": _shown_with_others}


def summary_section(experiment: Experiment, results: Results, model: str) -> list[Block]:
    """An experiment without a section of its own: its summary tables."""
    table = _of(results, experiment.name, model)
    blocks: list[Block] = []
    for aggregate in experiment.summary:
        rows = summarize_rows(aggregate, table)
        if rows is not None:
            blocks += [("h", 3, f"{experiment.name}: {aggregate.name}"), ("table", rows)]
    return blocks


def across_models(results: Results, rules: list[dict], fig_dir: Path) -> list[Block]:
    """What compares the models: Figure 5 (MLP effect against precision)."""
    iv = results.table("interventions")
    if iv.empty or not (iv.component == "mlp").any():
        return []
    path = fig_dir / "fig5-effect-vs-precision.png"
    table = figures.effect_precision_figure(iv, figures.paper_bie(_rules(rules, "profile")), path)
    return [("h", 2, "Figure 5: MLP effect vs precision"), ("img", path), ("table", table)]


def claims(results: Results, random_models: list[str]) -> list[Block]:
    """The paper's claims judged on every model's interventions (and across the paper's sizes)."""
    iv = results.table("interventions")
    blocks: list[Block] = [("h", 2, "The paper's claims")]
    models = sorted(set(iv.model)) if not iv.empty else []
    rows = []
    for claim, check in MODEL_CLAIMS.items():
        for model in models or ["-"]:
            rows.append(_claim_row(claim, model, check(iv[iv.model == model]) if models else None, check.__doc__))
    for claim, check in CROSS_SIZE_CLAIMS.items():
        verdict = check(iv[iv.model.isin(REAL_SIZES)]) if set(REAL_SIZES) <= set(models) else None
        rows.append(_claim_row(claim, "all sizes", verdict, check.__doc__))
    blocks.append(("table", pd.DataFrame(rows).set_index("claim")))
    if {"toy", *random_models} & set(models):
        blocks.append(("p", "Models with random weights and the toy world (a planted mechanism of its own): "
                            "their verdicts exercise the checks, they say nothing about MusicGen."))
    return blocks


def _claim_row(claim: str, model: str, verdict, doc: "str | None") -> dict:
    return {"claim": claim, "model": model, "verdict": verdict.label if verdict else "not run",
            "numbers": verdict.detail if verdict else "", "statement": (doc or "").strip().splitlines()[0]}
