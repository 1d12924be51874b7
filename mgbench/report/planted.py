"""The report's opening for models with a planted mechanism: "planted truth recovered?", with the numbers.

One table of the ground-truth checks (``suite.ground_truth``) per technique and for DecoderLens, then
the site ranking (mean effect, and as a fraction of the prompt-swap ceiling) next to each site's
planted role, and DecoderLens recognition per layer against chance.
"""

from __future__ import annotations

import pandas as pd

from ..engine.sites import Site
from ..suite.ground_truth import INTERVENTION_CHECKS, first_layer_above_chance, recognition, roles, run_check
from .results import Results

Block = tuple
EXPECTED = {"no_path_silent": "no-path sites: every |effect| < 1e-6", "entry_ranks_first": "entry site ranks first",
            "sites_separate": "AUROC of the entry site vs the others >= 0.9",
            "lens_chance": "cuts before the entry: recognized at chance", "lens_full": "full model: above chance",
            "tuned_chance": "tuned lens before the entry: recognized at chance",
            "tuned_reaches_final": "tuned lens at the entry: above chance, not below the full model"}


def planted_blocks(results: Results) -> list[Block]:
    """The "planted truth recovered?" section for every run whose model ships a planted truth."""
    blocks: list[Block] = []
    for model, info in results.runs.items():
        planted = info.get("planted")
        if not planted:
            continue
        tables = {name: _mine(results.table(name), model)
                  for name in ("interventions", "ceiling", "decoderlens", "tunedlens")}
        blocks += [("h", 2, f"Planted truth recovered? ({model})"),
                   ("p", f"Planted: {planted['statement']}. Each row is a check the suite must pass on this model "
                         "(docs/toy-world.md says why each holds).")]
        blocks.append(("table", _checks(tables, planted)))
        if not tables["interventions"].empty:
            blocks += [("h", 3, "Site ranking by mean effect (all pairs and prompts)"),
                       ("table", site_ranking(tables["interventions"], tables["ceiling"], planted))]
        if not tables["decoderlens"].empty:
            blocks += [("h", 3, "DecoderLens: concepts recognized among their category, per cut"),
                       ("table", lens_table(tables["decoderlens"], planted))]
        if not tables["tunedlens"].empty:
            blocks += [("h", 3, "Tuned lens: concepts recognized among their category, per cut and translator"),
                       ("table", lens_table(tables["tunedlens"], planted))]
    return blocks


def _mine(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table.model == model] if not table.empty else table


def _checks(tables: dict[str, pd.DataFrame], planted: dict) -> pd.DataFrame:
    rows = []
    iv, lens = tables["interventions"], tables["decoderlens"]
    for technique in sorted(set(iv.technique)) if not iv.empty else []:
        for check in INTERVENTION_CHECKS:
            rows.append(_row(check, technique, run_check(check, tables, planted, technique)))
    if not lens.empty and "recognized" in lens:
        last = max(Site.parse(site).layer for site in planted["sites"])  # the full model's layer
        for layer in sorted(set(lens.layer)):
            check = "lens_chance" if layer < planted["entry_layer"] else "lens_full"
            if check == "lens_chance" or layer == last:
                rows.append(_row(check, f"L{layer}", run_check(check, tables, planted, layer=layer)))
        first = first_layer_above_chance(lens)
        rows.append({"check": "lens rises at", "where": "-", "expected": f"L{planted['entry_layer']} or later",
                     "recovered": "cannot judge" if first is None else "yes" if first >= planted["entry_layer"]
                     else "NO", "numbers": f"first cut above chance: {'none' if first is None else f'L{first}'}"})
    tuned = tables.get("tunedlens", pd.DataFrame())
    if not tuned.empty and not lens.empty:
        for layer in sorted(set(tuned.layer) & set(range(planted["entry_layer"] + 1))):
            check = "tuned_chance" if layer < planted["entry_layer"] else "tuned_reaches_final"
            rows.append(_row(check, f"L{layer}", run_check(check, tables, planted, layer=layer)))
    return pd.DataFrame(rows).set_index("check") if rows else pd.DataFrame({"check": ["no rows"]}).set_index("check")


def _row(check: str, where: str, result) -> dict:
    return {"check": check, "where": where, "expected": EXPECTED[check], "recovered": result.label,
            "numbers": result.detail}


def site_ranking(iv: pd.DataFrame, ceiling: pd.DataFrame, planted: "dict | None" = None) -> pd.DataFrame:
    """Mean effect per site and technique, its fraction of the mean prompt-swap ceiling (when there are ceiling
    rows), and each site's planted role (when ``planted`` is given); largest first."""
    table = iv.pivot_table(index=["layer", "component"], columns="technique", values="effect", aggfunc="mean")
    table.columns = [f"effect {t}" for t in table.columns]
    table = table.reset_index()
    if planted is not None:
        table.insert(2, "planted role", roles(planted, table))
    if not ceiling.empty:
        for column in [c for c in table.columns if c.startswith("effect ")]:
            table[column.replace("effect", "of ceiling")] = table[column] / ceiling.effect.mean()
    first = [c for c in table.columns if c.startswith("effect ")][0]
    return table.sort_values(first, ascending=False).set_index(["layer", "component"])


def lens_table(lens: pd.DataFrame, planted: dict) -> pd.DataFrame:
    """Per cut: recognized fraction and chance per category, mean NDCG, and whether the text can reach the cut."""
    rows = []
    for layer in sorted(set(lens.layer)):
        row = {"layer": layer, "text reaches the cut": "yes" if layer >= planted["entry_layer"] else "no",
               "mean ndcg": lens[lens.layer == layer].ndcg.mean()}
        if "ndcg_chance" in lens:
            row["random-ranking ndcg"] = lens[lens.layer == layer].ndcg_chance.mean()
        for category, (hits, n, chance) in recognition(lens, layer).items():
            row[f"{category} recognized"] = hits / n
            row[f"{category} chance"] = chance
        rows.append(row)
    return pd.DataFrame(rows).set_index("layer")
