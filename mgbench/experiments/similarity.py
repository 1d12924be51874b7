"""Experiment 1b: the self-similarity of layer outputs (Figure 3), from the concept passes (no clip of its own).

A layer's output is its residual-stream output (before the decoder's final norm) on the conditional rows, averaged
over generation steps; distances are averaged over prompts. Its bench case is one concept: the last layer's
distance to the others, and its ratio to the distances among the others.
"""

from __future__ import annotations

import pandas as pd

from ..concepts.concept_set import ConceptSet
from .experiment import Case, CaseKind, Experiment
from .metrics import self_similarity
from .selection import Selection
from .session import Session

NAME = "similarity"


def run_similarity(session: Session, concepts: list[str]) -> pd.DataFrame:
    """One row per (concept, layer_i, layer_j): Euclidean distance of time-averaged layer outputs."""
    rows = []
    for name in concepts:
        matrix = self_similarity(session.concept_pass(session.concepts.get(name)).layer_outputs)
        size = matrix.shape[0]
        rows += [(name, i, j, matrix[i, j].item()) for i in range(size) for j in range(size)]
    return session.label(pd.DataFrame(rows, columns=["concept", "layer_i", "layer_j", "distance"]))


def _cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    return [Case(NAME, size, concept=c, parts=(c,)) for c in concepts.names]


def _wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
    return [(case.size, Selection((NAME,), concepts=(case.concept,)))]


def _metrics(case: Case, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Similarity has no interval: its table holds distances already averaged over prompts."""
    t = tables[NAME]
    m = t[t.concept == case.concept].pivot(index="layer_i", columns="layer_j", values="distance").to_numpy()
    before = m[:-1, :-1]  # zero diagonal: average the off-diagonal distances
    last, others = m[-1, :-1].mean(), before.sum() / (len(before) * (len(before) - 1))
    return {"last_layer_distance": last, "mean_distance_before_last": others, "last_layer_ratio": last / others}


EXPERIMENT = Experiment(
    name=NAME, ids=("concept",), columns=("model", "concept", "layer_i", "layer_j", "distance"),
    grid=lambda session, selection: pd.DataFrame({"concept": selection.concept_names(session.concepts.names)}),
    rows=lambda session, grid: run_similarity(session, list(grid.concept)), stored=False,
    cases=(CaseKind(NAME, _cases, _wants, metrics=_metrics),))
