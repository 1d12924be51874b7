"""Bench cases: one parametrized test each, with an id that carries size, concepts, site and technique.

A case knows which rows it needs (so a ``-k`` selection computes only those) and how to turn the
computed tables into its metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..concepts.concept_set import ConceptSet, pair_type
from ..engine.sites import PAPER_COMPONENTS, all_sites
from ..experiments.interventions import TECHNIQUES
from ..stats.intervals import with_intervals
from ..zoo.architectures import NUM_LAYERS, REAL_SIZES
from .claims import CROSS_SIZE_CLAIM, MODEL_CLAIMS
from .ground_truth import INTERVENTION_CHECKS, planted_truth

PAIR_TYPES = ("instrument->instrument", "genre->genre", "instrument->genre", "genre->instrument")
EXPERIMENTS = ("decoderlens", "similarity", "intervention", "profile", "pair_type", "claim", "ground_truth")
#: sizes with a planted mechanism (ground-truth cases); their other cases record numbers without expected ranges
PLANTED_SIZES = ("toy",)
#: suffixes of a metric's 95% bootstrap interval bounds over prompts
INTERVAL_SUFFIXES = ("_lo", "_hi")


@dataclass(frozen=True)
class Case:
    experiment: str
    size: str
    concept: "str | None" = None
    technique: "str | None" = None
    original: "str | None" = None
    desired: "str | None" = None
    layer: "int | None" = None
    component: "str | None" = None
    pair_type: "str | None" = None
    claim: "str | None" = None
    check: "str | None" = None  # a ground-truth check (suite.ground_truth)

    @property
    def id(self) -> str:
        """The test id. Pairs are written ``guitar-to-piano``: pytest's ``-k`` grammar has no ``>``."""
        site, pair = f"L{self.layer}.{self.component}", f"{self.original}-to-{self.desired}"
        parts = {"decoderlens": (self.concept, f"L{self.layer}"), "similarity": (self.concept,),
                 "intervention": (self.technique, pair, site), "profile": (self.technique, site),
                 "pair_type": (self.technique, str(self.pair_type).replace("->", "-to-")),
                 "claim": (self.claim,),
                 "ground_truth": (self.technique or "lens", str(self.check).removeprefix("lens_").replace("_", "-"))
                 + ((f"L{self.layer}",) if self.layer is not None else ())}[self.experiment]
        return "-".join((self.size, *map(str, parts)))

    def __str__(self) -> str:
        return self.id


def enumerate_cases(experiment: str, size: str, concepts: ConceptSet) -> list[Case]:
    """Every case of ``experiment`` for a model size."""
    names, layers = concepts.names, NUM_LAYERS[size]
    sites = all_sites(layers)
    if experiment == "decoderlens":
        return [Case(experiment, size, concept=c, layer=i) for c in names for i in range(layers)]
    if experiment == "similarity":
        return [Case(experiment, size, concept=c) for c in names]
    if experiment == "intervention":
        return [Case(experiment, size, technique=t, original=o, desired=d, layer=s.layer, component=s.component)
                for t in TECHNIQUES for o in names for d in names if o != d for s in sites]
    if experiment == "profile":
        return [Case(experiment, size, technique=t, layer=s.layer, component=s.component)
                for t in TECHNIQUES for s in sites]
    if experiment == "pair_type":
        return [Case(experiment, size, technique=t, pair_type=p) for t in TECHNIQUES for p in PAIR_TYPES]
    if experiment == "ground_truth":
        if size not in PLANTED_SIZES:
            return []
        entry = planted_truth(size)["entry_layer"]
        return ([Case(experiment, size, technique=t, check=c) for t in TECHNIQUES for c in INTERVENTION_CHECKS]
                + [Case(experiment, size, check="lens_chance", layer=i) for i in range(entry)]
                + [Case(experiment, size, check="lens_full", layer=layers - 1)])
    if experiment == "claim":  # the paper's claims are about the paper's models, not random tiny or toy ones
        if size in ("tiny", *PLANTED_SIZES):
            return []
        claims = list(MODEL_CLAIMS) + ([CROSS_SIZE_CLAIM] if size == "large" else [])
        return [Case(experiment, size, claim=c) for c in claims]
    raise ValueError(f"unknown bench experiment {experiment!r}; valid: {', '.join(EXPERIMENTS)}")


@dataclass
class Needs:
    """The rows one model size must compute for a set of cases."""

    decoderlens: set = field(default_factory=set)  # {(concept, layer)}
    similarity: set = field(default_factory=set)  # {concept}
    interventions: set = field(default_factory=set)  # {(technique, original, desired, layer, component)}
    ceiling: set = field(default_factory=set)  # {(original, desired)}


def add_needs(needs: dict[str, Needs], case: Case, concepts: ConceptSet) -> None:
    """Record in ``needs`` (by size) what ``case`` reads."""
    own = needs.setdefault(case.size, Needs())
    names = concepts.names
    pairs = [(o, d) for o in names for d in names if o != d]
    if case.experiment == "decoderlens":
        own.decoderlens.add((case.concept, case.layer))
    elif case.experiment == "similarity":
        own.similarity.add(case.concept)
    elif case.experiment == "intervention":
        own.interventions.add((case.technique, case.original, case.desired, case.layer, case.component))
    elif case.experiment == "profile":
        own.interventions.update((case.technique, o, d, case.layer, case.component) for o, d in pairs)
    elif case.experiment == "pair_type":
        wanted = [(o, d) for o, d in pairs if pair_type(concepts.get(o), concepts.get(d)) == case.pair_type]
        own.interventions.update((case.technique, o, d, layer, "mlp") for o, d in wanted
                                 for layer in range(NUM_LAYERS[case.size]))
    elif case.experiment == "ground_truth" and case.technique is not None:
        own.interventions.update((case.technique, o, d, s.layer, s.component) for o, d in pairs
                                 for s in all_sites(NUM_LAYERS[case.size], PAPER_COMPONENTS))
        own.ceiling.update(pairs)
    elif case.experiment == "ground_truth":
        own.decoderlens.update((c, case.layer) for c in names)
    elif case.experiment == "claim":
        sizes = REAL_SIZES if case.claim == CROSS_SIZE_CLAIM else (case.size,)
        for size in sizes:
            needs.setdefault(size, Needs()).interventions.update(
                (t, o, d, s.layer, s.component) for t in TECHNIQUES for o, d in pairs
                for s in all_sites(NUM_LAYERS[size], PAPER_COMPONENTS))


def case_metrics(case: Case, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The case's metrics from its size's tables (``tables[size][name]``-style dict for one size).

    Every metric over prompts comes with its 95% bootstrap interval, ``<metric>_lo`` and ``<metric>_hi``
    (``stats.with_intervals``: prompts resampled with a fixed seed, rows of one prompt averaged first).
    Similarity has none: its table holds distances already averaged over prompts.
    """
    if case.experiment == "decoderlens":
        t = tables["decoderlens"]
        return _over_prompts(t[(t.concept == case.concept) & (t.layer == case.layer)], ["ndcg"])
    if case.experiment == "similarity":
        t = tables["similarity"]
        m = t[t.concept == case.concept].pivot(index="layer_i", columns="layer_j", values="distance").to_numpy()
        before = m[:-1, :-1]  # zero diagonal: average the off-diagonal distances
        last, others = m[-1, :-1].mean(), before.sum() / (len(before) * (len(before) - 1))
        return {"last_layer_distance": last, "mean_distance_before_last": others,
                "last_layer_ratio": last / others}
    t = tables["interventions"]
    if case.experiment == "intervention":
        rows = t[(t.technique == case.technique) & (t.original == case.original) & (t.desired == case.desired)
                 & (t.layer == case.layer) & (t.component == case.component)]
        return _over_prompts(rows, ["effect", "effect_original", "effect_desired", "precision"])
    if case.experiment == "profile":
        rows = t[(t.technique == case.technique) & (t.layer == case.layer) & (t.component == case.component)]
        return _over_prompts(rows, ["effect", "precision"])
    if case.experiment == "pair_type":
        rows = t[(t.technique == case.technique) & (t.pair_type == case.pair_type) & (t.component == "mlp")]
        return _over_prompts(rows, ["effect", "effect_original", "effect_desired"])
    raise ValueError(f"{case.experiment} cases have verdicts, not metrics")


def _over_prompts(rows: pd.DataFrame, metrics: list[str]) -> dict[str, float]:
    """Each metric's mean over prompts with ``_lo``/``_hi`` bounds; all NaN when there are no rows."""
    names = [f"{m}{s}" for m in metrics for s in ("", *INTERVAL_SUFFIXES)]
    table = with_intervals(rows.assign(case=0), "case", metrics)  # one group: the case's rows
    return {n: float(table[n].iloc[0]) if len(table) else math.nan for n in names}


def split_intervals(values: dict[str, float]) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """``values`` as point metrics and their ``(lo, hi)`` bounds: ``m_lo``, ``m_hi`` are bounds of a key ``m``.

    Only the point metrics are checked against ranges and written as golden values.
    """
    bounds = {m: (values[f"{m}_lo"], values[f"{m}_hi"]) for m in values
              if f"{m}_lo" in values and f"{m}_hi" in values}
    bound_keys = {f"{m}{s}" for m in bounds for s in INTERVAL_SUFFIXES}
    return {k: v for k, v in values.items() if k not in bound_keys}, bounds
