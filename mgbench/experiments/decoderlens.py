"""Experiment 1: DecoderLens recognizability (NDCG): the decoder cut after each layer (``cuts.py``), generating
with the cut model; its bench cases are one concept at one layer (Figure 2)."""

from __future__ import annotations

import pandas as pd

from ..concepts.concept_set import ConceptSet
from .cuts import COLUMNS, IDS, cut_grid, cut_rows, last_layer, lens_summary, needs_passes, selection_grid
from .experiment import Case, CaseKind, Experiment
from .selection import Selection
from .session import Session
from .summaries import over_prompts

NAME = "decoderlens"


def decoderlens_grid(concepts: list[str], layers: list[int], prompts: int) -> pd.DataFrame:
    """Row ids of every (concept, layer, prompt) to run."""
    return cut_grid(concepts, layers, prompts)


def run_decoderlens(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """Compute (or read from the store) the DecoderLens rows of ``wanted`` (``cuts.cut_rows``)."""
    return cut_rows(session, wanted, NAME)


def _cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    return [Case(NAME, size, concept=c, layer=i, parts=(c, f"L{i}")) for c in concepts.names for i in range(layers)]


def _wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
    return [(case.size, Selection((NAME,), concepts=(case.concept,), layers=(case.layer,)))]


def _metrics(case: Case, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    t = tables.get(NAME, pd.DataFrame())
    return over_prompts(t if t.empty else t[(t.concept == case.concept) & (t.layer == case.layer)], ["ndcg"])


EXPERIMENT = Experiment(
    name=NAME, ids=tuple(IDS), columns=COLUMNS, grid=selection_grid, rows=run_decoderlens, free=last_layer,
    passes=needs_passes,
    summary=(lens_summary(NAME),),
    cases=(CaseKind(NAME, _cases, _wants, metrics=_metrics),))
