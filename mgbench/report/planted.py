"""The report's opening for models with a planted mechanism: "planted truth recovered?", with the numbers.

One table of the ground-truth checks (``suite.ground_truth``) per technique and for DecoderLens, then
the site ranking (mean effect, and as a fraction of the prompt-swap ceiling) next to each site's
planted role, and DecoderLens recognition per layer against chance.
"""

from __future__ import annotations

import pandas as pd

from ..experiments import catalog
from ..suite.ground_truth import evidence, recognition, recovered
from ..suite.planted import Planted, site_names
from .results import Results

Block = tuple
def planted_blocks(results: Results) -> list[Block]:
    """The "planted truth recovered?" section for every run whose model ships a planted truth."""
    blocks: list[Block] = []
    for model, info in results.runs.items():
        if not info.get("planted"):
            continue
        planted = Planted(info["planted"])
        tables = {e.name: _mine(results.table(e.name), model) for e in catalog.EXPERIMENTS}
        blocks += [("h", 2, f"Planted truth recovered? ({model})"),
                   ("p", f"Planted: {planted.statement}. Each row is a check the suite must pass on this model "
                         "(docs/toy-world.md says why each holds).")]
        blocks.append(("table", recovered(tables, planted)))
        sites, lenses = evidence(tables)
        if sites is not None:
            blocks += [("h", 3, "Site ranking by mean effect (all pairs and prompts)"),
                       ("table", site_ranking(*sites, planted))]
        for title, lens in lenses.items():
            blocks += [("h", 3, f"{title}: concepts recognized among their category, per cut"),
                       ("table", lens_table(lens, planted))]
    return blocks


def _mine(table: pd.DataFrame, model: str) -> pd.DataFrame:
    return table[table.model == model] if not table.empty else table


def site_ranking(iv: pd.DataFrame, ceiling: pd.DataFrame, planted: "Planted | None" = None) -> pd.DataFrame:
    """Mean effect per site and technique, its fraction of the mean prompt-swap ceiling (when there are ceiling
    rows), and each site's planted role (when ``planted`` is given); largest first."""
    table = iv.pivot_table(index=["layer", "component"], columns="technique", values="effect", aggfunc="mean")
    table.columns = [f"effect {t}" for t in table.columns]
    table = table.reset_index()
    if planted is not None:
        categories = planted.categories or sorted(set(iv.pair_type.str.split("->").explode()))
        table.insert(2, "planted role", [planted.role_label(site, categories) for site in site_names(table)])
    if not ceiling.empty:
        for column in [c for c in table.columns if c.startswith("effect ")]:
            table[column.replace("effect", "of ceiling")] = table[column] / ceiling.effect.mean()
    first = [c for c in table.columns if c.startswith("effect ")][0]
    return table.sort_values(first, ascending=False).set_index(["layer", "component"])


def lens_table(lens: pd.DataFrame, planted: Planted) -> pd.DataFrame:
    """Per cut: mean NDCG, and per category the recognized fraction, chance and whether its words reach the cut."""
    rows = []
    for layer in sorted(set(lens.layer)):
        row = {"layer": layer, "mean ndcg": lens[lens.layer == layer].ndcg.mean()}
        if "ndcg_chance" in lens:
            row["random-ranking ndcg"] = lens[lens.layer == layer].ndcg_chance.mean()
        for category, (hits, n, chance) in recognition(lens, layer).items():
            entry = planted.entry_layer(category)
            row[f"{category} words reach the cut"] = "yes" if entry is not None and layer >= entry else "no"
            row[f"{category} recognized"] = hits / n
            row[f"{category} chance"] = chance
        rows.append(row)
    return pd.DataFrame(rows).set_index("layer")
