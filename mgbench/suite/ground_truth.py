"""Ground truth: does the suite recover the mechanism planted in a world (its ``planted.json``, ``suite.planted``)?

Every check reads the world's own entry sites and layers per category; nothing assumes one entry or a layer.
docs/toy-world.md says why each holds on every world of the family (a fact of the method) or is an expectation:

- ``no_path_silent`` (fact): editing a site that no path joins to either concept's words changes nothing:
  every row's |effect| and |precision| below 1e-6 (the clips are bit-identical when the edit is right).
- per technique and category, over the category's own pairs (``guitar->piano``):
  ``entry_ranks_first`` (fact) the category's entry has the largest mean effect of all sites;
  ``sites_separate`` (fact) per-pair effects rank the entry above the no-path sites (AUROC >= 0.9);
  ``downstream_below_entry`` (expectation) and above every other site with a path (AUROC >= 0.9).
- per category, DecoderLens: ``lens_chance`` at every cut before the category's entry layer (the words cannot
  reach the cut model; two-sided binomial test of chance, p >= 0.01), ``lens_full`` above chance at the full model
  (one-sided, p < 0.01), ``lens_rises`` (the first cut above chance is the entry's or later); the tuned lens:
  ``tuned_chance`` before the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import roc_auc_score

from ..concepts.concept_set import ConceptSet
from ..engine.sites import PAPER_COMPONENTS
from ..experiments.experiment import Case, CaseKind, Tables, Verdict
from ..experiments.selection import Selection
from ..experiments.techniques import TECHNIQUES
from ..zoo.loading import planted_truth as model_planted_truth
from .planted import Planted, planted_truth, site_names

SILENT = 1e-6  # |effect| below this is "no change" (bit-identical clips give exactly 0)
MIN_AUROC = 0.9
ALPHA = 0.01  # binomial tests of recognition against chance
PATH_ROLES = ("downstream", "through_codes")

#: every check: what it expects, in words, and whether it is a fact of the method or an expectation
EXPECTED = {
    "no_path_silent": "no-path sites: every |effect| < 1e-6 (fact)",
    "entry_ranks_first": "the entry ranks first (fact)",
    "sites_separate": f"entry vs no-path sites: AUROC >= {MIN_AUROC} (fact)",
    "downstream_below_entry": f"entry vs sites downstream or through the codes: AUROC >= {MIN_AUROC} (expectation)",
    "lens_chance": "cut before the entry: at chance (fact)",
    "lens_full": "full model: above chance (needs prompt following)",
    "lens_rises": "first cut above chance: the entry layer or later (fact)",
    "tuned_chance": "tuned lens before the entry: at chance (fact)",
}


@dataclass(frozen=True, init=False)
class GroundTruth(Verdict):
    """A check's verdict (None: the rows present cannot decide; ``detail`` says what is missing) and its numbers."""

    metrics: dict[str, float] = field(default_factory=dict)

    def __init__(self, holds: "bool | None", metrics: dict[str, float], detail: str):
        object.__setattr__(self, "holds", holds)
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "detail", detail)
        object.__setattr__(self, "inconclusive", False)

    @property
    def label(self) -> str:
        return {True: "yes", False: "NO", None: "cannot judge"}[self.holds]


@dataclass(frozen=True)
class Check:
    """One check to judge: its name and where (technique, category, layer; None where it does not apply)."""

    name: str
    technique: "str | None" = None
    category: "str | None" = None
    layer: "int | None" = None

    @property
    def where(self) -> str:
        return " ".join(part for part in (self.technique, self.category,
                                          None if self.layer is None else f"L{self.layer}") if part) or "-"


# -- interventions ---------------------------------------------------------------------------------------------------
def own_pairs(table: pd.DataFrame, technique: str, category: str) -> pd.DataFrame:
    """The rows of ``technique`` whose pairs are both of ``category`` (``guitar->piano`` for instruments)."""
    return table[(table.technique == technique) & (table.pair_type == f"{category}->{category}")]


def no_path_silent(table: pd.DataFrame, planted: Planted, technique: str) -> GroundTruth:
    rows = table[table.technique == technique]
    kinds = rows.pair_type.str.split("->")
    silent = [planted.roles(original).get(site) == planted.roles(desired).get(site) == "no_path"
              for original, desired, site in zip(kinds.str[0], kinds.str[1], site_names(rows))]
    rows = rows[pd.Series(silent, index=rows.index, dtype=bool)]
    if rows.empty:
        return GroundTruth(None, {}, "no rows at sites without a path from either concept's words")
    worst_effect, worst_precision = rows.effect.abs().max(), rows.precision.abs().max()
    holds = bool(worst_effect < SILENT and worst_precision < SILENT)
    sites = ", ".join(sorted(set(site_names(rows))))
    return GroundTruth(holds, {"max_abs_effect": worst_effect, "max_abs_precision": worst_precision, "rows": len(rows)},
                       f"{len(rows)} rows at no-path sites ({sites}): max |effect| {worst_effect:.2e}, "
                       f"max |precision| {worst_precision:.2e} (must be < {SILENT:g})")


def site_effects(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean effect per (layer, component) over ``rows``' pairs and prompts, largest first, with its rank."""
    means = rows.groupby(["layer", "component"], as_index=False)["effect"].mean()
    means = means.sort_values("effect", ascending=False, kind="stable").reset_index(drop=True)
    return means.assign(rank=range(1, len(means) + 1))


def entry_ranks_first(table: pd.DataFrame, planted: Planted, technique: str, category: str,
                      ceiling: "pd.DataFrame | None" = None) -> GroundTruth:
    effects = site_effects(own_pairs(table, technique, category))
    entry = effects[planted.role_of_rows(category, effects) == "entry"]
    if entry.empty or len(effects) == len(entry):
        return GroundTruth(None, {}, f"needs {category} pairs' rows at the entry ({planted.where(category)}) and at "
                                     "other sites")
    best, runner_up = entry.iloc[0], effects.drop(entry.index).iloc[0]
    metrics = {"rank": int(best["rank"]), "entry_effect": float(best.effect),
               "runner_up_effect": float(runner_up.effect)}
    detail = (f"{category} pairs: entry L{best.layer}.{best.component} ranks {int(best['rank'])} of {len(effects)} "
              f"(mean effect {best.effect:.3f}; best other L{runner_up.layer}.{runner_up.component} "
              f"{runner_up.effect:.3f})")
    if ceiling is not None and not ceiling.empty and "pair_type" in ceiling:
        own = ceiling[ceiling.pair_type == f"{category}->{category}"]
        if not own.empty:
            metrics["entry_fraction_of_ceiling"] = best.effect / own.effect.mean()
            detail += f"; {metrics['entry_fraction_of_ceiling']:.2f} of the prompt-swap ceiling"
    return GroundTruth(bool(best["rank"] == 1), metrics, detail)


def entry_auroc(table: pd.DataFrame, planted: Planted, technique: str, category: str,
                against: tuple[str, ...]) -> GroundTruth:
    """AUROC of the per-(pair, site) mean effects of ``category``'s entry sites against the sites of roles
    ``against``, over the category's own pairs."""
    rows = own_pairs(table, technique, category)
    per_pair = rows.groupby(["original", "desired", "layer", "component"], as_index=False)["effect"].mean()
    role = planted.role_of_rows(category, per_pair)
    per_pair = per_pair[(role == "entry") | role.isin(against)]
    labels = role[per_pair.index] == "entry"
    if labels.all() or not labels.any():
        return GroundTruth(None, {}, f"needs {category} pairs' rows at the entry ({planted.where(category)}) and at "
                                     f"{' or '.join(against)} sites")
    auroc = float(roc_auc_score(labels, per_pair.effect))
    names = sorted(set(site_names(per_pair[~labels])))
    others = ", ".join(names) if len(names) <= 3 else f"{len(names)} sites ({' or '.join(against)})"
    return GroundTruth(auroc >= MIN_AUROC, {"auroc": auroc, "pairs": int(labels.sum())},
                       f"{category} pairs: AUROC {auroc:.3f} of {planted.where(category)} against {others} over "
                       f"{int(labels.sum())} pair-site means (expected >= {MIN_AUROC})")


# -- lenses ------------------------------------------------------------------------------------------------------------
def recognition(lens: pd.DataFrame, layer: int) -> dict[str, tuple[int, int, float]]:
    """Per category at ``layer``: (clips recognized, clips, chance = 1 / the category's concepts)."""
    rows = lens[lens.layer == layer]
    return {category: (int(group.recognized.sum()), len(group), float(group.recognized_chance.iloc[0]))
            for category, group in rows.groupby("category")}


def lens_check(lens: pd.DataFrame, category: str, layer: int, at_chance: bool) -> GroundTruth:
    """``category``'s recognition at ``layer`` at chance (``at_chance``, two-sided) or above it (one-sided)."""
    counts = recognition(lens, layer).get(category)
    if counts is None:
        return GroundTruth(None, {}, f"no {category} lens rows at L{layer}")
    hits, n, chance = counts
    if chance**n >= ALPHA:  # even n of n recognized would not be significant: too few clips to decide
        return GroundTruth(None, {}, f"L{layer}: {n} {category} clips cannot reject chance {chance:.2f} at "
                                     f"p < {ALPHA}; give more prompts")
    p = binomtest(hits, n, chance, alternative="two-sided" if at_chance else "greater").pvalue
    holds = p >= ALPHA if at_chance else p < ALPHA
    return GroundTruth(bool(holds), {"recognized": hits / n, "chance": chance, "p": p, "clips": n},
                       f"L{layer}: {category} {hits}/{n} recognized (chance {chance:.2f}, p {p:.3g})")


def lens_rises(lens: pd.DataFrame, planted: Planted, category: str) -> GroundTruth:
    """The first cut whose ``category`` clips are recognized above chance is the entry layer or later."""
    entry = planted.entry_layer(category)
    checks = {int(layer): lens_check(lens, category, int(layer), at_chance=False) for layer in sorted(set(lens.layer))}
    if not checks or any(check.holds is None for check in checks.values()):
        return GroundTruth(None, {}, f"needs enough {category} lens rows at every cut")
    first = next((layer for layer, check in checks.items() if check.holds), None)
    return GroundTruth(first is not None and first >= entry, {"first_above_chance": -1 if first is None else first},
                       f"{category}: first cut above chance {'none' if first is None else f'L{first}'}, "
                       f"entry L{entry}")


# -- one check by name -----------------------------------------------------------------------------------------------
def judge(check: Check, tables: dict[str, pd.DataFrame], planted: Planted) -> GroundTruth:
    """One ground-truth check on a run's tables (``interventions``, ``ceiling``, ``decoderlens``, ``tunedlens``)."""
    name, technique, category = check.name, check.technique, check.category
    if name == "no_path_silent":
        return no_path_silent(tables["interventions"], planted, technique)
    if name == "entry_ranks_first":
        return entry_ranks_first(tables["interventions"], planted, technique, category, tables.get("ceiling"))
    if name == "sites_separate":
        return entry_auroc(tables["interventions"], planted, technique, category, ("no_path",))
    if name == "downstream_below_entry":
        return entry_auroc(tables["interventions"], planted, technique, category, PATH_ROLES)
    if name in ("lens_chance", "lens_full"):
        return lens_check(tables["decoderlens"], category, check.layer, at_chance=name == "lens_chance")
    if name == "lens_rises":
        return lens_rises(tables["decoderlens"], planted, category)
    if name == "tuned_chance":
        return lens_check(tables["tunedlens"], category, check.layer, at_chance=True)
    raise ValueError(f"unknown ground-truth check {name!r}; valid: {', '.join(EXPECTED)}")


def checks(planted: Planted, categories: list[str], techniques: list[str], lens_layers: list[int],
           tuned_layers: list[int]) -> list[Check]:
    """Every check a world's truth premises, for the techniques and lens cuts given: a check is listed only where
    its premise exists (no ``sites_separate`` for a category without no-path sites, no entry checks for a category
    whose words enter nowhere)."""
    found: list[Check] = []
    any_silent = any(planted.sites_with(category, "no_path") for category in categories)
    for technique in techniques:
        found += [Check("no_path_silent", technique)] if any_silent else []
        for category in (c for c in categories if planted.entries(c)):
            found.append(Check("entry_ranks_first", technique, category))
            found += [Check("sites_separate", technique, category)] if planted.sites_with(category, "no_path") else []
            if any(planted.sites_with(category, role) for role in PATH_ROLES):
                found.append(Check("downstream_below_entry", technique, category))
    for category in categories:
        entry = planted.entry_layer(category)
        before = [layer for layer in lens_layers if entry is None or layer < entry]
        found += [Check("lens_chance", category=category, layer=layer) for layer in before]
        if entry is not None and lens_layers:
            found += [Check("lens_full", category=category, layer=planted.last_layer),
                      Check("lens_rises", category=category)]
        found += [Check("tuned_chance", category=category, layer=layer) for layer in tuned_layers
                  if entry is None or layer < entry]
    return found


def categories_of(planted: Planted, concepts: ConceptSet) -> list[str]:
    """The world's categories, in the concept set's order (the set's own where the file has none)."""
    ordered = concepts.categories
    return [c for c in ordered if c in planted.categories] if planted.categories else ordered


# -- the report's "planted truth recovered?" -------------------------------------------------------------------------
def recovered(tables: dict[str, pd.DataFrame], planted: Planted) -> pd.DataFrame:
    """Every check a model's ``tables`` can be judged on, one row each: where, what is expected, whether it is
    recovered, the numbers."""
    iv = tables.get("interventions", pd.DataFrame())
    lens, tuned = tables.get("decoderlens", pd.DataFrame()), tables.get("tunedlens", pd.DataFrame())
    seen = [set(t.category) for t in (lens, tuned) if not t.empty and "category" in t]
    seen += [set(iv.pair_type.str.split("->").explode())] if not iv.empty else []
    present = set().union(*seen)
    categories = [c for c in planted.categories or sorted(present) if c in present]
    lens_ok = not lens.empty and "recognized" in lens
    listed = checks(planted, categories, sorted(set(iv.technique)) if not iv.empty else [],
                    sorted(set(lens.layer)) if lens_ok else [], sorted(set(tuned.layer)) if not tuned.empty else [])
    rows = [{"check": check.name, "where": check.where, "expected": EXPECTED[check.name],
             "recovered": (result := judge(check, tables, planted)).label, "numbers": result.detail}
            for check in listed]
    return pd.DataFrame(rows).set_index("check") if rows else pd.DataFrame({"check": ["no rows"]}).set_index("check")


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
    """The checks a world's truth premises, over every technique and every DecoderLens cut."""
    truth = model_planted_truth(size)
    if truth is None:
        return []
    planted = Planted(truth)
    listed = checks(planted, categories_of(planted, concepts), list(TECHNIQUES), list(range(layers)), [])
    return [Case("ground_truth", size, technique=c.technique, layer=c.layer, check=c.name, category=c.category,
                 parts=_id_parts(c)) for c in listed]


def _id_parts(check: Check) -> tuple[str, ...]:
    """``replace-genre-entry-ranks-first``, ``lens-instrument-chance-L0``: ``-k`` selects by technique, category,
    check and cut."""
    label = check.name.removeprefix("lens_").replace("_", "-")
    head = ("lens",) if check.name.startswith("lens_") else (check.technique,)
    return tuple(part for part in (*head, check.category, label, None if check.layer is None else f"L{check.layer}")
                 if part)


def _wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
    """The rows a check reads: an intervention check its technique's rows over the pairs within each category (the
    only pairs the checks judge; ``toy``'s other cases ask for every pair), and the ceiling of those pairs."""
    if case.technique is not None:
        pairs = tuple((o.name, d.name) for category in concepts.categories for o in concepts.members(category)
                      for d in concepts.members(category) if o != d)
        return [(case.size, Selection(("interventions",), pairs=pairs, techniques=(case.technique,),
                                      components=PAPER_COMPONENTS)),
                (case.size, Selection(("ceiling",), pairs=pairs))]
    return [(case.size, Selection(("decoderlens",), layers=None if case.layer is None else (case.layer,)))]


def _verdict(case: Case, tables: Tables) -> GroundTruth:
    check = Check(case.check, case.technique, case.category, case.layer)
    return judge(check, tables(case.size), planted_truth(case.size))


GROUND_TRUTH = CaseKind("ground_truth", _cases, _wants, verdict=_verdict)
