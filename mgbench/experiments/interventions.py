"""Experiment 2: interchange interventions, every ordered concept pair x technique x site x prompt.

For an original concept's prompt, the output of one site is replaced by the desired concept's mean
(``replace``) or shifted by alpha * (desired mean - original mean) (``adjust``, alpha 1 unless swept) at every
generation step, or only at the frames of a window, on the conditional rows (and the unconditional ones with
``both_halves``, using the unconditional means). The clip is compared with the same prompt's un-intervened clip,
which shares its sampling noise: effect = eq. (1) with its original and desired parts, precision = -KL(after ||
before).

Two optional row ids, present only when asked for (``--alphas``, ``--frames``), add a dimension to the grid:
``alpha`` (the strength of additive techniques) and ``frames`` (the window ``t0-t1``). Their rows are stored in a
table of their own (``store_table``), so rows without them keep their ids and store keys.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ..concepts.concept_set import pair_type
from ..engine.hooks import ADD, REPLACE, RowEdit
from ..engine.sites import Site
from .metrics import intervention_effect, precision
from .resume import chunks, fill_table
from .session import Session

#: technique -> f(original mean, desired mean, alpha) -> (edit mode, vector); add new techniques here. ``adjust``
#: is the additive steer h + alpha * (desired - original); alpha 1 gives the paper's adjust bit for bit.
TECHNIQUES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], tuple[str, torch.Tensor]]] = {
    "replace": lambda original, desired, alpha: (REPLACE, desired),
    "adjust": lambda original, desired, alpha: (ADD, alpha * (desired - original)),
}
#: techniques without a strength (replace sets the output, whatever alpha): not swept, their rows carry alpha 1
UNSCALED = ("replace",)
IDS = ["technique", "original", "desired", "layer", "component", "prompt_id"]
#: optional row ids (``--alphas``, ``--frames``), placed before ``prompt_id`` in this order when present
SWEEP_IDS = ("alpha", "frames")


def row_ids(table: pd.DataFrame) -> list[str]:
    """The id columns of intervention rows ``table``: ``IDS`` with the sweep ids it carries."""
    return [*IDS[:-1], *(c for c in SWEEP_IDS if c in table.columns), IDS[-1]]


def store_table(table: pd.DataFrame) -> str:
    """The stored table that holds rows with ``table``'s ids: ``interventions``, or e.g. ``interventions-alpha``."""
    return "-".join(["interventions", *(c for c in SWEEP_IDS if c in table.columns)])


def frames_text(frames: tuple[int, int]) -> str:
    """A window ``(t0, t1)`` as its row id, ``t0-t1``."""
    return f"{frames[0]}-{frames[1]}"


def sweep_label(row) -> str:
    """A row's sweep ids as a name suffix: ``""``, ``-a2``, ``-a0.5-f0-50`` (for file names and case ids)."""
    alpha, frames = getattr(row, "alpha", None), getattr(row, "frames", None)
    return (f"-a{alpha:g}" if alpha is not None else "") + (f"-f{frames}" if frames is not None else "")


def make_edit(session: Session, technique: str, original: str, desired: str, site: Site, alpha: float = 1.0,
              frames: "tuple[int, int] | None" = None) -> RowEdit:
    """The edit that applies ``technique`` of strength ``alpha`` at ``site`` for the pair (original, desired),
    limited to ``frames`` when given."""
    rule = TECHNIQUES[technique]
    o_cond, o_uncond = session.means(session.concepts.get(original), site)
    d_cond, d_uncond = session.means(session.concepts.get(desired), site)
    mode, cond = rule(o_cond, d_cond, alpha)
    uncond = rule(o_uncond, d_uncond, alpha)[1] if session.config.both_halves and o_uncond is not None else None
    return RowEdit(site, mode, cond, uncond, frames)


def intervention_grid(concepts: list[str], techniques: list[str], sites: list[Site], prompts: int,
                      pairs: "list[tuple[str, str]] | None" = None, alphas: "tuple[float, ...] | None" = None,
                      frames: "tuple[int, int] | None" = None) -> pd.DataFrame:
    """Row ids of every (technique, ordered pair, site, prompt) to run; with ``alphas`` every additive technique's
    row at each alpha (an ``alpha`` column), with ``frames`` a ``frames`` column holding the window."""
    pairs = pairs if pairs is not None else [(o, d) for o in concepts for d in concepts if o != d]
    grid = pd.DataFrame([(t, o, d, s.layer, s.component, a, p) for t in techniques for o, d in pairs for s in sites
                         for a in ((1.0,) if alphas is None or t in UNSCALED else alphas) for p in range(prompts)],
                        columns=[*IDS[:-1], "alpha", IDS[-1]])
    if alphas is None:
        grid = grid.drop(columns="alpha")
    if frames is not None:
        grid.insert(len(grid.columns) - 1, "frames", frames_text(frames))
    return grid


class InterventionRows:
    """Computes rows of the intervention grid: one generate call and one classifier call per batch."""

    def __init__(self, session: Session):
        self.session = session
        self.edits: dict[tuple, RowEdit] = {}

    def edit(self, row) -> RowEdit:
        """The edit of an intervention row (a named tuple with the ``IDS`` columns and any sweep ids)."""
        alpha, frames = float(getattr(row, "alpha", 1.0)), getattr(row, "frames", None)
        key = (row.technique, row.original, row.desired, row.layer, row.component, alpha, frames)
        if key not in self.edits:  # means are computed once per concept and reused by every pair
            site = Site(row.layer, row.component).validate(self.session.facts.num_layers)
            window = None if frames is None else tuple(int(t) for t in frames.split("-"))
            self.edits[key] = make_edit(self.session, row.technique, row.original, row.desired, site, alpha, window)
        return self.edits[key]

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        session = self.session
        rows = list(batch.itertuples(index=False))
        prompts = [session.prompts(r.original)[r.prompt_id] for r in rows]
        edits = [self.edit(r) for r in rows]
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

    Rows of any pairs, techniques, sites and strengths share a batch: each row carries its own prompt and edit.
    """
    return fill_pair_table(session, store_table(wanted), wanted, row_ids(wanted), InterventionRows(session))


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
