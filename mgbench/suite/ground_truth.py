"""Ground truth: does the suite recover the mechanism planted in a model (the toy world's ``planted.json``)?

Each check reads the tidy tables of one run and the planted truth (every site's role: ``entry``, the
only place the text enters; ``no_path``, a cross-attention that outputs exactly 0; ``downstream``;
``through_codes``) and returns a ``GroundTruth``: its numbers, and whether they match what was planted.

- ``no_path_silent``: editing a site with no causal path from the text changes nothing: every row's
  |effect| and |precision| below 1e-6 (the clips are bit-identical when the implementation is right).
- ``entry_ranks_first``: the entry site has the largest mean effect of all sites.
- ``sites_separate``: per (pair, site) mean effects rank the entry above the other sites (AUROC >= 0.9).
- ``lens_chance`` (a cut before the entry layer): the text cannot reach the cut model, so its clips are
  recognized at chance, one over the category's concepts (binomial test, p >= 0.01); and the full model
  (``lens_full``) recognizes above chance (p < 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from scipy.stats import binomtest, fisher_exact
from sklearn.metrics import roc_auc_score

from ..concepts.concept_set import ConceptSet
from ..engine.sites import PAPER_COMPONENTS, Site
from ..errors import ConfigError
from ..experiments.experiment import Case, CaseKind, Tables, Verdict
from ..experiments.selection import Selection
from ..experiments.techniques import TECHNIQUES
from ..zoo.loading import planted_truth as model_planted_truth

SILENT = 1e-6  # |effect| below this is "no change" (bit-identical clips give exactly 0)
MIN_AUROC = 0.9
ALPHA = 0.01  # binomial tests of recognition against chance
INTERVENTION_CHECKS = ("no_path_silent", "entry_ranks_first", "sites_separate")
LENS_CHECKS = ("lens_chance", "lens_full")
TUNED_LENS_CHECKS = ("tuned_chance", "tuned_reaches_final")


@dataclass(frozen=True, init=False)
class GroundTruth(Verdict):
    """A check's verdict (None: the rows present cannot decide, a narrow selection; ``detail`` says what is
    missing) and its numbers."""

    metrics: dict[str, float] = field(default_factory=dict)

    def __init__(self, holds: "bool | None", metrics: dict[str, float], detail: str):
        object.__setattr__(self, "holds", holds)
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "detail", detail)
        object.__setattr__(self, "inconclusive", False)

    @property
    def label(self) -> str:
        return {True: "yes", False: "NO", None: "cannot judge"}[self.holds]


def roles(planted: dict, table: pd.DataFrame) -> pd.Series:
    """The planted role of each row's site (``L2.cross_attn`` -> ``entry``)."""
    return pd.Series([planted["sites"].get(str(Site(int(layer), component)), "unknown")
                      for layer, component in zip(table["layer"], table["component"])], index=table.index)


def site_effects(table: pd.DataFrame, technique: str) -> pd.DataFrame:
    """Mean effect per (layer, component) over pairs and prompts, largest first, with its rank."""
    rows = table[table.technique == technique]
    means = rows.groupby(["layer", "component"], as_index=False)["effect"].mean()
    means = means.sort_values("effect", ascending=False, kind="stable").reset_index(drop=True)
    return means.assign(rank=range(1, len(means) + 1))


def no_path_silent(table: pd.DataFrame, planted: dict, technique: str) -> GroundTruth:
    rows = table[(table.technique == technique) & (roles(planted, table) == "no_path")]
    if rows.empty:
        return GroundTruth(None, {}, "no rows at sites without a path from the text")
    worst_effect, worst_precision = rows.effect.abs().max(), rows.precision.abs().max()
    holds = bool(worst_effect < SILENT and worst_precision < SILENT)
    return GroundTruth(holds, {"max_abs_effect": worst_effect, "max_abs_precision": worst_precision, "rows": len(rows)},
                       f"{len(rows)} rows at no-path sites: max |effect| {worst_effect:.2e}, "
                       f"max |precision| {worst_precision:.2e} (must be < {SILENT:g})")


def entry_ranks_first(table: pd.DataFrame, planted: dict, technique: str,
                      ceiling: "pd.DataFrame | None" = None) -> GroundTruth:
    effects = site_effects(table, technique)
    effects["role"] = roles(planted, effects)
    entry = effects[effects.role == "entry"]
    if entry.empty or len(effects) < 2:
        return GroundTruth(None, {}, "needs rows at the entry site and at other sites")
    rank, effect = int(entry["rank"].iloc[0]), float(entry.effect.iloc[0])
    runner_up = effects[effects.role != "entry"].iloc[0]
    metrics = {"rank": rank, "entry_effect": effect, "runner_up_effect": float(runner_up.effect)}
    detail = (f"entry L{entry.layer.iloc[0]}.cross_attn ranks {rank} of {len(effects)} (mean effect {effect:.3f}; "
              f"best other L{runner_up.layer}.{runner_up.component} {runner_up.effect:.3f})")
    if ceiling is not None and not ceiling.empty:
        metrics["entry_fraction_of_ceiling"] = effect / ceiling.effect.mean()
        detail += f"; {metrics['entry_fraction_of_ceiling']:.2f} of the prompt-swap ceiling"
    return GroundTruth(rank == 1, metrics, detail)


def sites_separate(table: pd.DataFrame, planted: dict, technique: str) -> GroundTruth:
    rows = table[table.technique == technique]
    per_pair = rows.groupby(["original", "desired", "layer", "component"], as_index=False)["effect"].mean()
    labels = roles(planted, per_pair) == "entry"
    if labels.all() or not labels.any():
        return GroundTruth(None, {}, "needs rows at the entry site and at other sites")
    auroc = float(roc_auc_score(labels, per_pair.effect))
    return GroundTruth(auroc >= MIN_AUROC, {"auroc": auroc, "pairs": int(labels.sum())},
                       f"AUROC {auroc:.3f} of the entry site against the others over {int(labels.sum())} pairs "
                       f"(expected >= {MIN_AUROC})")


def recognition(lens: pd.DataFrame, layer: int) -> dict[str, tuple[int, int, float]]:
    """Per category at ``layer``: (clips recognized, clips, chance = 1 / the category's concepts)."""
    rows = lens[lens.layer == layer]
    return {category: (int(group.recognized.sum()), len(group), float(group.recognized_chance.iloc[0]))
            for category, group in rows.groupby("category")}


def lens_check(lens: pd.DataFrame, layer: int, at_chance: bool) -> GroundTruth:
    """Recognition at ``layer`` at chance (``at_chance``) or above it, per category."""
    metrics, parts, holds = {}, [], True
    for category, (hits, n, chance) in recognition(lens, layer).items():
        if chance**n >= ALPHA:  # even n of n recognized would not be significant: too few clips to decide
            return GroundTruth(None, {}, f"L{layer}: {n} {category} clips cannot reject chance {chance:.2f} at "
                                         f"p < {ALPHA}; give more prompts or concepts")
        if at_chance:
            p = binomtest(hits, n, chance).pvalue
            holds &= p >= ALPHA
        else:
            p = binomtest(hits, n, chance, alternative="greater").pvalue
            holds &= p < ALPHA
        metrics |= {f"{category}_recognized": hits / n, f"{category}_chance": chance, f"{category}_p": p}
        parts.append(f"{category} {hits}/{n} recognized (chance {chance:.2f}, p {p:.3g})")
    if not parts:
        return GroundTruth(None, {}, f"no DecoderLens rows at layer {layer}")
    return GroundTruth(bool(holds), metrics, f"L{layer}: " + ", ".join(parts))


def reaches_final(lens: pd.DataFrame, layer: int, final: pd.DataFrame, final_layer: int) -> GroundTruth:
    """Recognition at ``layer`` of ``lens`` (a tuned lens' rows) above chance and not below the full model's
    (``final`` at ``final_layer``), per category: a one-sided binomial test against chance (p < ALPHA) and a
    one-sided Fisher exact test of fewer recognized than the full model (p >= ALPHA)."""
    above = lens_check(lens, layer, at_chance=False)
    if above.holds is None:
        return above
    full, metrics, parts, holds = recognition(final, final_layer), dict(above.metrics), [], bool(above.holds)
    for category, (hits, n, _) in recognition(lens, layer).items():
        if category not in full:
            return GroundTruth(None, {}, f"no full-model rows for {category}s at layer {final_layer}")
        final_hits, final_n, _ = full[category]
        p = fisher_exact([[hits, n - hits], [final_hits, final_n - final_hits]], alternative="less").pvalue
        holds &= p >= ALPHA
        metrics |= {f"{category}_final_recognized": final_hits / final_n, f"{category}_fewer_p": p}
        parts.append(f"{category} {hits}/{n} vs full model {final_hits}/{final_n} (fewer: p {p:.3g})")
    chance = above.detail.split(": ", 1)[1]
    return GroundTruth(bool(holds), metrics, f"L{layer}: " + ", ".join(parts) + f"; {chance}")


def first_layer_above_chance(lens: pd.DataFrame) -> "int | None":
    """The first cut whose clips are recognized above chance in every category (p < ALPHA), or None."""
    for layer in sorted(set(lens.layer)):
        if lens_check(lens, layer, at_chance=False).holds:
            return int(layer)
    return None


def planted_truth(model: str) -> dict:
    """The planted truth of a model that has one (a one-line error otherwise)."""
    planted = model_planted_truth(model)
    if planted is None:
        raise ConfigError(f"model {model} has no planted mechanism (planted.json beside its weights); "
                          "ground-truth checks need the toy world (--model toy) or a folder built by mgbench toy build")
    return planted


def run_check(check: str, tables: dict[str, pd.DataFrame], planted: dict, technique: "str | None" = None,
              layer: "int | None" = None) -> GroundTruth:
    """One ground-truth check on a run's tables (``interventions``, ``ceiling``, ``decoderlens``, ``tunedlens``)."""
    if check == "no_path_silent":
        return no_path_silent(tables["interventions"], planted, technique)
    if check == "entry_ranks_first":
        return entry_ranks_first(tables["interventions"], planted, technique, tables.get("ceiling"))
    if check == "sites_separate":
        return sites_separate(tables["interventions"], planted, technique)
    if check in LENS_CHECKS:
        return lens_check(tables["decoderlens"], layer, at_chance=check == "lens_chance")
    if check == "tuned_chance":
        return lens_check(tables["tunedlens"], layer, at_chance=True)
    if check == "tuned_reaches_final":
        last = max(Site.parse(site).layer for site in planted["sites"])
        return reaches_final(tables["tunedlens"], layer, tables["decoderlens"], last)
    valid = INTERVENTION_CHECKS + LENS_CHECKS + TUNED_LENS_CHECKS
    raise ValueError(f"unknown ground-truth check {check!r}; valid: {', '.join(valid)}")


#: what each check expects, in words
EXPECTED = {"no_path_silent": "no-path sites: every |effect| < 1e-6", "entry_ranks_first": "entry site ranks first",
            "sites_separate": "AUROC of the entry site vs the others >= 0.9",
            "lens_chance": "cuts before the entry: recognized at chance", "lens_full": "full model: above chance",
            "tuned_chance": "tuned lens before the entry: recognized at chance",
            "tuned_reaches_final": "tuned lens at the entry: above chance, not below the full model"}


def recovered(tables: dict[str, pd.DataFrame], planted: dict) -> pd.DataFrame:
    """Every check a model's ``tables`` can be judged on, one row each: where, what is expected, whether it is
    recovered, the numbers (the report's \"planted truth recovered?\")."""
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


def evidence(tables: dict[str, pd.DataFrame]) -> tuple["tuple[pd.DataFrame, pd.DataFrame] | None",
                                                    dict[str, pd.DataFrame]]:
    """What the report shows under the checks: the interventions and the ceiling (for the site ranking; None
    without interventions), and the lens tables by title."""
    iv = tables.get("interventions", pd.DataFrame())
    lenses = {"DecoderLens": tables.get("decoderlens"), "Tuned lens": tables.get("tunedlens")}
    return ((iv, tables.get("ceiling", pd.DataFrame())) if not iv.empty else None,
            {title: lens for title, lens in lenses.items() if lens is not None and not lens.empty})


# -- bench cases (``pytest bench/ -k toy``) ------------------------------------------------------------------------
def _cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    """The checks of a model with a planted truth: each intervention check per technique, DecoderLens at chance at
    every cut before the entry and above chance at the full model."""
    planted = model_planted_truth(size)
    if planted is None:
        return []
    entry = planted["entry_layer"]
    label = lambda check: check.removeprefix("lens_").replace("_", "-")  # noqa: E731
    return ([Case("ground_truth", size, technique=t, check=c, parts=(t, label(c)))
             for t in TECHNIQUES for c in INTERVENTION_CHECKS]
            + [Case("ground_truth", size, check="lens_chance", layer=i, parts=("lens", label("lens_chance"), f"L{i}"))
               for i in range(entry)]
            + [Case("ground_truth", size, check="lens_full", layer=layers - 1,
                    parts=("lens", label("lens_full"), f"L{layers - 1}"))])


def _wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
    if case.technique is not None:
        return [(case.size, Selection(("interventions",), techniques=(case.technique,), components=PAPER_COMPONENTS)),
                (case.size, Selection(("ceiling",)))]
    return [(case.size, Selection(("decoderlens",), layers=(case.layer,)))]


def _verdict(case: Case, tables: Tables) -> GroundTruth:
    return run_check(case.check, tables(case.size), planted_truth(case.size), case.technique, case.layer)


GROUND_TRUTH = CaseKind("ground_truth", _cases, _wants, verdict=_verdict)
