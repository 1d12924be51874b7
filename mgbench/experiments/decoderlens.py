"""Experiment 1: DecoderLens recognizability (NDCG): the decoder cut after each layer (``cuts.py``), generating
with the cut model; its bench cases are one concept at one layer (Figure 2), ``<size>-<concept>-L<layer>``."""

from __future__ import annotations

import pandas as pd

from .cuts import COLUMNS, IDS, cut_grid, cut_rows, last_layer, lens_kind, lens_summary, needs_passes, selection_grid
from .experiment import Experiment
from .session import Session

NAME = "decoderlens"


def decoderlens_grid(concepts: list[str], layers: list[int], prompts: int) -> pd.DataFrame:
    """Row ids of every (concept, layer, prompt) to run."""
    return cut_grid(concepts, layers, prompts)


def run_decoderlens(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """Compute (or read from the store) the DecoderLens rows of ``wanted`` (``cuts.cut_rows``)."""
    return cut_rows(session, wanted, NAME)


EXPERIMENT = Experiment(
    name=NAME, ids=tuple(IDS), columns=COLUMNS, grid=selection_grid, rows=run_decoderlens, free=last_layer,
    passes=needs_passes,
    summary=(lens_summary(NAME),),
    cases=(lens_kind(NAME),))
