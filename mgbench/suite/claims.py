"""The paper's claims (readings.md, last section) as checks on interventions tables.

Each check takes the tidy interventions table of one model (or, for the cross-size claim, of
several) and returns a ``Verdict``: holds / fails, with the numbers it looked at, or cannot judge,
with what is missing, when the rows present (a narrow selection) do not decide the claim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Verdict:
    holds: "bool | None"  # None: the rows present cannot decide the claim (``detail`` says what is missing)
    detail: str

    @property
    def label(self) -> str:
        return {True: "holds", False: "fails", None: "cannot judge"}[self.holds]


def _all(verdicts: list[Verdict]) -> Verdict:
    """Every part must hold: fails when one fails, cannot judge when one cannot be judged (and none fails)."""
    if not verdicts:
        return Verdict(None, "no intervention rows to judge")
    holds = [v.holds for v in verdicts]
    return Verdict(False if False in holds else None if None in holds else True, "; ".join(v.detail for v in verdicts))


def _by_layer(table: pd.DataFrame, component: str, technique: str, metric: str = "effect") -> pd.Series:
    rows = table[(table.component == component) & (table.technique == technique)]
    return rows.groupby("layer")[metric].mean()


def mlp_positive_attention_weaker(table: pd.DataFrame) -> Verdict:
    """MLP interventions have positive effect at every layer; attention ones are weaker (replace: negative)."""
    return _all([_mlp_vs_attention(table, technique) for technique in sorted(set(table.technique))])


def _mlp_vs_attention(table: pd.DataFrame, technique: str) -> Verdict:
    mlp = _by_layer(table, "mlp", technique)
    attn = pd.concat([_by_layer(table, c, technique) for c in ("self_attn", "cross_attn")])
    if mlp.empty or attn.empty:
        return Verdict(None, f"{technique}: needs MLP and attention rows to compare, has "
                             f"{'no MLP' if mlp.empty else 'no attention'} rows")
    ok = bool((mlp > 0).all() and attn.mean() < mlp.mean() and (technique != "replace" or attn.mean() < 0))
    return Verdict(ok, f"{technique}: MLP min {mlp.min():.2f}, mean {mlp.mean():.2f}; attention mean {attn.mean():.2f}")


def last_layer_best(table: pd.DataFrame) -> Verdict:
    """MLP: the last layer's effect beats the intermediate layers', which beats the first layer's."""
    return _all([_first_middle_last(table, technique) for technique in sorted(set(table.technique))])


def _first_middle_last(table: pd.DataFrame, technique: str) -> Verdict:
    mlp = _by_layer(table, "mlp", technique)
    if len(mlp) < 3:
        return Verdict(None, f"{technique}: not enough layers to judge (MLP rows at {len(mlp)} layers; needs a first, "
                             "an intermediate and a last one)")
    first, middle, last = mlp.iloc[0], mlp.iloc[1:-1].mean(), mlp.iloc[-1]
    return Verdict(bool(last > middle > first),
                   f"{technique}: first {first:.2f}, intermediate {middle:.2f}, last {last:.2f}")


def original_part_larger(table: pd.DataFrame) -> Verdict:
    """MLP: the effect on the original concept is much (here: at least twice) larger than on the desired one."""
    mlp = table[table.component == "mlp"]
    if mlp.empty:
        return Verdict(None, "no MLP rows to judge")
    orig, des = mlp.effect_original.mean(), mlp.effect_desired.mean()
    return Verdict(bool(orig > 2 * abs(des)), f"original part {orig:.2f}, desired part {des:.2f}")


def instrument_beats_genre(table: pd.DataFrame) -> Verdict:
    """MLP: instrument->instrument beats genre->genre, and instrument prompts change more than genre prompts."""
    mlp = table[table.component == "mlp"]
    by_type = mlp.groupby("pair_type").effect.mean()
    by_original = mlp.assign(kind=mlp.pair_type.str.split("->").str[0]).groupby("kind").effect.mean()
    missing = [k for k in ("instrument->instrument", "genre->genre") if k not in by_type] + [
        f"{k} prompts" for k in ("instrument", "genre") if k not in by_original]
    if missing:
        return Verdict(None, f"no MLP rows of {', '.join(dict.fromkeys(missing))} to judge")
    holds = bool(by_type["instrument->instrument"] > by_type["genre->genre"]
                 and by_original["instrument"] > by_original["genre"])
    return Verdict(holds, f"i->i {by_type['instrument->instrument']:.2f}, g->g {by_type['genre->genre']:.2f}; "
                          f"instrument prompts {by_original['instrument']:.2f}, "
                          f"genre prompts {by_original['genre']:.2f}")


def large_replace_best_precision(tables: pd.DataFrame) -> Verdict:
    """Across sizes (a table with a ``model`` column): MLP precision is best for large + replace."""
    mlp = tables[tables.component == "mlp"].groupby(["model", "technique"]).precision.mean()
    if ("large", "replace") not in mlp.index or len(mlp) < 2:
        return Verdict(None, "needs MLP rows of large + replace and of at least one other model or technique")
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
