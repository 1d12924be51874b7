"""The paper's claims (readings.md, last section) as checks on interventions tables.

Each check takes the tidy interventions table of one model (or, for the cross-size claim, of
several) and returns a ``Verdict``: holds / fails, with the numbers it looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Verdict:
    holds: bool
    detail: str

    @property
    def label(self) -> str:
        return "holds" if self.holds else "fails"


def _by_layer(table: pd.DataFrame, component: str, technique: str, metric: str = "effect") -> pd.Series:
    rows = table[(table.component == component) & (table.technique == technique)]
    return rows.groupby("layer")[metric].mean()


def mlp_positive_attention_weaker(table: pd.DataFrame) -> Verdict:
    """MLP interventions have positive effect at every layer; attention ones are weaker (replace: negative)."""
    parts, holds = [], True
    for technique in sorted(set(table.technique)):
        mlp = _by_layer(table, "mlp", technique)
        attn = pd.concat([_by_layer(table, c, technique) for c in ("self_attn", "cross_attn")])
        ok = bool((mlp > 0).all() and attn.mean() < mlp.mean() and (technique != "replace" or attn.mean() < 0))
        holds &= ok
        parts.append(f"{technique}: MLP min {mlp.min():.2f}, mean {mlp.mean():.2f}; attention mean {attn.mean():.2f}")
    return Verdict(holds, "; ".join(parts))


def last_layer_best(table: pd.DataFrame) -> Verdict:
    """MLP: the last layer's effect beats the intermediate layers', which beats the first layer's."""
    parts, holds = [], True
    for technique in sorted(set(table.technique)):
        mlp = _by_layer(table, "mlp", technique)
        first, middle, last = mlp.iloc[0], mlp.iloc[1:-1].mean(), mlp.iloc[-1]
        holds &= bool(last > middle > first)
        parts.append(f"{technique}: first {first:.2f}, intermediate {middle:.2f}, last {last:.2f}")
    return Verdict(holds, "; ".join(parts))


def original_part_larger(table: pd.DataFrame) -> Verdict:
    """MLP: the effect on the original concept is much (here: at least twice) larger than on the desired one."""
    mlp = table[table.component == "mlp"]
    orig, des = mlp.effect_original.mean(), mlp.effect_desired.mean()
    return Verdict(bool(orig > 2 * abs(des)), f"original part {orig:.2f}, desired part {des:.2f}")


def instrument_beats_genre(table: pd.DataFrame) -> Verdict:
    """MLP: instrument->instrument beats genre->genre, and instrument prompts change more than genre prompts."""
    mlp = table[table.component == "mlp"]
    by_type = mlp.groupby("pair_type").effect.mean()
    by_original = mlp.assign(kind=mlp.pair_type.str.split("->").str[0]).groupby("kind").effect.mean()
    holds = bool(by_type.get("instrument->instrument", float("nan")) > by_type.get("genre->genre", float("nan"))
                 and by_original.get("instrument", float("nan")) > by_original.get("genre", float("nan")))
    return Verdict(holds, f"i->i {by_type.get('instrument->instrument', float('nan')):.2f}, "
                          f"g->g {by_type.get('genre->genre', float('nan')):.2f}; instrument prompts "
                          f"{by_original.get('instrument', float('nan')):.2f}, genre prompts "
                          f"{by_original.get('genre', float('nan')):.2f}")


def large_replace_best_precision(tables: pd.DataFrame) -> Verdict:
    """Across sizes (a table with a ``model`` column): MLP precision is best for large + replace."""
    mlp = tables[tables.component == "mlp"].groupby(["model", "technique"]).precision.mean()
    best = mlp.idxmax()
    return Verdict(best == ("large", "replace"), "best: " + "-".join(best) + "; " +
                   ", ".join(f"{m}-{t} {v:.2f}" for (m, t), v in mlp.items()))


#: claim name -> check on one model's interventions table
MODEL_CLAIMS: dict[str, Callable[[pd.DataFrame], Verdict]] = {
    "mlp-positive-attention-weaker": mlp_positive_attention_weaker,
    "last-layer-best": last_layer_best,
    "original-part-larger": original_part_larger,
    "instrument-beats-genre": instrument_beats_genre,
}
CROSS_SIZE_CLAIM = "large-replace-best-precision"
