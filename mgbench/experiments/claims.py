"""The paper's claims (readings.md, last section) as checks on interventions tables.

Each check takes the tidy interventions table of one model (or, for the cross-size claim, of
several) and returns a ``Verdict``. A claim is one or more comparisons, each a test over prompts:
rows are averaged within prompt (``prompt_id``, the unit ``stats.with_intervals`` resamples), and
where both sides are measured on the same prompts (MLP against attention, the last layer against the
intermediate ones, the original part against the desired one, one model or technique against another)
the comparison is ``stats.paired_difference`` of the per-prompt values; where the prompts differ
(instrument prompts against genre prompts) it is ``stats.unpaired_difference`` over (concept, prompt)
units. Each comparison's verdict comes from its 95% interval (``stats.verdict``): holds when the interval
lies on the claimed side of the threshold, fails when on the other side, inconclusive when it touches or
spans it. The detail gives each comparison's effect size, interval, p and prompts. "cannot judge" is left
for a claim whose rows are missing (a narrow selection).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..stats.intervals import PairedDifference, paired_difference, unpaired_difference
from ..stats.verdicts import verdict as interval_verdict
from .experiment import Verdict


def _all(verdicts: list[Verdict]) -> Verdict:
    """Every part must hold: fails when one fails, else cannot judge when one cannot be judged, else
    inconclusive when one is inconclusive."""
    if not verdicts:
        return Verdict(None, "no intervention rows to judge")
    holds = [v.holds for v in verdicts]
    detail = "; ".join(v.detail for v in verdicts)
    if False in holds:
        return Verdict(False, detail)
    if any(v.holds is None and not v.inconclusive for v in verdicts):
        return Verdict(None, detail)
    if None in holds:
        return Verdict(None, detail, inconclusive=True)
    return Verdict(True, detail)


def _judged(name: str, d: PairedDifference, threshold: float = 0.0, direction: str = "greater") -> Verdict:
    """One comparison's verdict from its interval, with the numbers."""
    word = interval_verdict(d.lo, d.hi, threshold, direction) if not np.isnan(d.lo) else "inconclusive"
    holds = {"holds": True, "fails": False, "inconclusive": None}[word]
    return Verdict(holds, f"{name} {d.diff:+.2f} [{d.lo:.2f}, {d.hi:.2f}], p {d.p:.2g}, n {d.n}",
                   inconclusive=holds is None)


def _per_prompt(rows: pd.DataFrame, metric: str = "effect") -> pd.Series:
    """The metric averaged within prompt: one value per ``prompt_id``."""
    return rows.groupby("prompt_id")[metric].mean()


def _paired(a: pd.Series, b: "pd.Series | float") -> PairedDifference:
    """``a - b`` over the prompts both have (``b`` a number: against that constant)."""
    if not isinstance(b, pd.Series):
        return paired_difference(a.to_numpy(), np.full(len(a), float(b)))
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return paired_difference(both.a.to_numpy(), both.b.to_numpy())


def _rows(table: pd.DataFrame, component: str, technique: str) -> pd.DataFrame:
    return table[(table.component == component) & (table.technique == technique)]


def mlp_positive_attention_weaker(table: pd.DataFrame) -> Verdict:
    """MLP interventions have positive effect at every layer; attention ones are weaker (replace: negative)."""
    return _all([_mlp_vs_attention(table, technique) for technique in sorted(set(table.technique))])


def _mlp_vs_attention(table: pd.DataFrame, technique: str) -> Verdict:
    mlp = _rows(table, "mlp", technique)
    attn = table[table.component.isin(["self_attn", "cross_attn"]) & (table.technique == technique)]
    if mlp.empty or attn.empty:
        return Verdict(None, f"{technique}: needs MLP and attention rows to compare, has "
                             f"{'no MLP' if mlp.empty else 'no attention'} rows")
    layers = {layer: _judged(f"L{layer}", _paired(_per_prompt(rows), 0.0)) for layer, rows in mlp.groupby("layer")}
    weakest = min(layers, key=lambda layer: (layers[layer].holds is not False, layers[layer].holds is not None,
                                             _per_prompt(mlp[mlp.layer == layer]).mean()))
    positive = _all(list(layers.values()))
    parts = [Verdict(positive.holds, f"MLP > 0 at every layer (weakest {layers[weakest].detail})",
                     positive.inconclusive),
             _judged("MLP - attention", _paired(_per_prompt(mlp), _per_prompt(attn)))]
    if technique == "replace":
        parts.append(_judged("attention", _paired(_per_prompt(attn), 0.0), direction="less"))
    verdict = _all(parts)
    return Verdict(verdict.holds, f"{technique}: {verdict.detail}", verdict.inconclusive)


def last_layer_best(table: pd.DataFrame) -> Verdict:
    """MLP: the last layer's effect beats the intermediate layers', which beats the first layer's."""
    return _all([_first_middle_last(table, technique) for technique in sorted(set(table.technique))])


def _first_middle_last(table: pd.DataFrame, technique: str) -> Verdict:
    mlp = _rows(table, "mlp", technique)
    layers = sorted(set(mlp.layer))
    if len(layers) < 3:
        return Verdict(None, f"{technique}: not enough layers to judge (MLP rows at {len(layers)} layers; needs a "
                             "first, an intermediate and a last one)")
    first = _per_prompt(mlp[mlp.layer == layers[0]])
    middle = _per_prompt(mlp[mlp.layer.isin(layers[1:-1])])
    last = _per_prompt(mlp[mlp.layer == layers[-1]])
    verdict = _all([_judged("last - intermediate", _paired(last, middle)),
                    _judged("intermediate - first", _paired(middle, first))])
    return Verdict(verdict.holds, f"{technique}: first {first.mean():.2f}, intermediate {middle.mean():.2f}, "
                                  f"last {last.mean():.2f}; {verdict.detail}", verdict.inconclusive)


def original_part_larger(table: pd.DataFrame) -> Verdict:
    """MLP: the effect on the original concept is much (here: at least twice) larger than on the desired one."""
    mlp = table[table.component == "mlp"]
    if mlp.empty:
        return Verdict(None, "no MLP rows to judge")
    orig, des = _per_prompt(mlp, "effect_original"), _per_prompt(mlp, "effect_desired")
    verdict = _judged("original - 2 |desired|", _paired(orig, 2 * des.abs()))
    return Verdict(verdict.holds, f"original part {orig.mean():.2f}, desired part {des.mean():.2f}; "
                                  f"{verdict.detail}", verdict.inconclusive)


def instrument_beats_genre(table: pd.DataFrame) -> Verdict:
    """MLP: instrument->instrument beats genre->genre, and instrument prompts change more than genre prompts."""
    mlp = table[table.component == "mlp"]
    mlp = mlp.assign(kind=mlp.pair_type.str.split("->").str[0])
    by_type = {k: mlp[mlp.pair_type == k] for k in ("instrument->instrument", "genre->genre")}
    by_original = {k: mlp[mlp.kind == k] for k in ("instrument", "genre")}
    missing = [k for k, rows in by_type.items() if rows.empty] + [
        f"{k} prompts" for k, rows in by_original.items() if rows.empty]
    if missing:
        return Verdict(None, f"no MLP rows of {', '.join(dict.fromkeys(missing))} to judge")

    def units(rows: pd.DataFrame) -> np.ndarray:  # other concepts' prompts: one unit per (concept, prompt)
        return rows.groupby(["original", "prompt_id"]).effect.mean().to_numpy()

    return _all([_judged("i->i - g->g", unpaired_difference(units(by_type["instrument->instrument"]),
                                                            units(by_type["genre->genre"]))),
                 _judged("instrument - genre prompts", unpaired_difference(units(by_original["instrument"]),
                                                                           units(by_original["genre"])))])


def large_replace_best_precision(tables: pd.DataFrame) -> Verdict:
    """Across sizes (a table with a ``model`` column): MLP precision is best for large + replace."""
    mlp = tables[tables.component == "mlp"]
    groups = {key: _per_prompt(rows, "precision") for key, rows in mlp.groupby(["model", "technique"])}
    if ("large", "replace") not in groups or len(groups) < 2:
        return Verdict(None, "needs MLP rows of large + replace and of at least one other model or technique")
    top = max(groups, key=lambda key: groups[key].mean())
    verdict = _all([_judged(f"large-replace - {m}-{t}", _paired(groups[("large", "replace")], other))
                    for (m, t), other in groups.items() if (m, t) != ("large", "replace")])
    return Verdict(verdict.holds, "best: " + "-".join(top) + "; " + ", ".join(
        f"{m}-{t} {v.mean():.2f}" for (m, t), v in groups.items()) + "; " + verdict.detail, verdict.inconclusive)


#: claim name -> check on one model's interventions table
MODEL_CLAIMS: dict[str, Callable[[pd.DataFrame], Verdict]] = {
    "mlp-positive-attention-weaker": mlp_positive_attention_weaker,
    "last-layer-best": last_layer_best,
    "original-part-larger": original_part_larger,
    "instrument-beats-genre": instrument_beats_genre,
}
#: claim name -> check on the interventions of several models (a ``model`` column); its case runs with large's
CROSS_SIZE_CLAIMS: dict[str, Callable[[pd.DataFrame], Verdict]] = {
    "replace-best-precision": large_replace_best_precision}
