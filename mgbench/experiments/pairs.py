"""Tables of ordered concept pairs (original -> desired): their grids, and their clips measured against the original
prompt's baseline clip (effect, eq. 1 with its two parts, and precision), shared by the interventions and the
prompt-swap ceiling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..concepts.concept_set import pair_type
from .metrics import intervention_effect, precision
from .resume import chunks, fill_table
from .selection import Selection
from .session import Session


def selected_pairs(session: Session, selection: Selection) -> list[tuple[str, str]]:
    """The selection's ordered pairs of the session's concepts."""
    return selection.pair_list(session.concepts.names)


def against_baseline(session: Session, rows: list, after: torch.Tensor) -> dict[str, "np.ndarray"]:
    """Effect (eq. 1, with its original and desired parts) and precision of clips ``after`` (classifier logits, one
    per row with ``original``, ``desired`` and ``prompt_id``) against the same prompts' baseline clips."""
    concepts = session.concepts
    before = torch.stack([session.concept_pass(concepts.get(r.original)).logits[r.prompt_id] for r in rows])
    original = torch.tensor([session.recognition.odds_column(concepts.get(r.original)) for r in rows])
    desired = torch.tensor([session.recognition.odds_column(concepts.get(r.desired)) for r in rows])
    effect, eff_o, eff_d = intervention_effect(before, after, original, desired, session.config.odds)
    return {"effect": effect.numpy(), "effect_original": eff_o.numpy(), "effect_desired": eff_d.numpy(),
            "precision": precision(before, after).numpy()}


def fill_pair_table(session: Session, name: str, wanted: pd.DataFrame, ids: list[str], compute) -> pd.DataFrame:
    """``fill_table`` for a table of (original, desired) pairs, then its pair type (after ``desired``), model,
    classifier and recognizer (last) columns."""
    table = fill_table(session.store, name, wanted, ids, compute, lambda missing: chunks(missing, session.batch_size),
                       name)
    if table.empty:
        return table
    concepts = session.concepts
    table.insert(ids.index("desired") + 1, "pair_type", [pair_type(concepts.get(o), concepts.get(d))
                                                         for o, d in zip(table["original"], table["desired"])])
    return session.label(table, category=False)
