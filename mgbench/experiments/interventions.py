"""Experiment 2: interchange interventions, every ordered concept pair x technique x site x prompt.

For an original concept's prompt, the output of one site is replaced by the desired concept's mean
(``replace``) or shifted by desired mean - original mean (``adjust``) at every generation step, on
the conditional rows (and the unconditional ones with ``both_halves``, using the unconditional
means). The clip is compared with the same prompt's un-intervened clip, which shares its sampling
noise: effect = eq. (1) with its original and desired parts, precision = -KL(after || before).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ..concepts.concept_set import pair_type
from ..model.hooks import ADD, REPLACE, RowEdit
from ..model.sites import Site
from .metrics import intervention_effect, precision
from .resume import chunks, fill_table
from .session import Session

#: technique -> f(original mean, desired mean) -> (edit mode, vector); add new techniques here.
TECHNIQUES: dict[str, Callable[[torch.Tensor, torch.Tensor], tuple[str, torch.Tensor]]] = {
    "replace": lambda original, desired: (REPLACE, desired),
    "adjust": lambda original, desired: (ADD, desired - original),
}
IDS = ["technique", "original", "desired", "layer", "component", "prompt_id"]


def make_edit(session: Session, technique: str, original: str, desired: str, site: Site) -> RowEdit:
    """The edit that applies ``technique`` at ``site`` for the pair (original, desired)."""
    rule = TECHNIQUES[technique]
    o_cond, o_uncond = session.means(session.concepts.get(original), site)
    d_cond, d_uncond = session.means(session.concepts.get(desired), site)
    mode, cond = rule(o_cond, d_cond)
    uncond = rule(o_uncond, d_uncond)[1] if session.config.both_halves and o_uncond is not None else None
    return RowEdit(site, mode, cond, uncond)


def intervention_grid(concepts: list[str], techniques: list[str], sites: list[Site], prompts: int,
                      pairs: "list[tuple[str, str]] | None" = None) -> pd.DataFrame:
    """Row ids of every (technique, ordered pair, site, prompt) to run."""
    pairs = pairs if pairs is not None else [(o, d) for o in concepts for d in concepts if o != d]
    return pd.DataFrame([(t, o, d, s.layer, s.component, p) for t in techniques for o, d in pairs for s in sites
                         for p in range(prompts)], columns=IDS)


class InterventionRows:
    """Computes rows of the intervention grid: one generate call and one classifier call per batch."""

    def __init__(self, session: Session):
        self.session = session
        self.edits: dict[tuple, RowEdit] = {}

    def edit(self, technique: str, original: str, desired: str, layer: int, component: str) -> RowEdit:
        key = (technique, original, desired, layer, component)
        if key not in self.edits:  # means are computed once per concept and reused by every pair
            site = Site(layer, component).validate(self.session.musicgen.num_layers)
            self.edits[key] = make_edit(self.session, technique, original, desired, site)
        return self.edits[key]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        session = self.session
        rows = list(batch.itertuples(index=False))
        prompts = [session.prompts(r.original)[r.prompt_id] for r in rows]
        edits = [self.edit(r.technique, r.original, r.desired, r.layer, r.component) for r in rows]
        after = session.classify(session.runner.generate(prompts, edits=edits))
        return batch.assign(**against_baseline(session, rows, after))


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


def run_interventions(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """Compute (or read from the store) the rows of ``wanted`` (see ``intervention_grid``).

    Rows of any pairs, techniques and sites share a batch: each row carries its own prompt and edit.
    """
    return fill_pair_table(session, "interventions", wanted, IDS, InterventionRows(session))


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
    table.insert(0, "classifier", session.config.classifier_name)
    table.insert(0, "model", session.config.model)
    return table.assign(recognizer=session.config.recognizer)
