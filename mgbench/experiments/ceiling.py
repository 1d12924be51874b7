"""The prompt-swap ceiling: the largest effect an intervention on a pair (original -> desired) could reach.

For an original concept's prompt, the desired concept's word is written into the desired concept's
slot (guitar's "... rock piece, with a guitar melody ..." becomes "... jazz piece ..." for jazz, and
"... piano melody ..." for piano), and that prompt is generated with the original prompt's sampling
noise (``noise_keys``). The clip is compared with the original prompt's baseline clip exactly as an
intervention's is: effect = eq. (1) with its original and desired parts, precision = -KL(after || before).
"""

from __future__ import annotations

import pandas as pd

from .experiment import Aggregate, Experiment
from .pairs import against_baseline, fill_pair_table, selected_pairs
from .session import Session

NAME = "ceiling"
IDS = ["original", "desired", "prompt_id"]
METRICS = ("effect", "effect_original", "effect_desired", "precision")


def ceiling_grid(concepts: list[str], prompts: int, pairs: "list[tuple[str, str]] | None" = None) -> pd.DataFrame:
    """Row ids of every (ordered pair, prompt) to run."""
    pairs = pairs if pairs is not None else [(o, d) for o in concepts for d in concepts if o != d]
    return pd.DataFrame([(o, d, p) for o, d in pairs for p in range(prompts)], columns=IDS)


class CeilingRows:
    """Computes rows of the ceiling grid: one generate call and one classifier call per batch."""

    def __init__(self, session: Session):
        self.session = session

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        session, concepts = self.session, self.session.concepts
        rows = list(batch.itertuples(index=False))
        swapped = [concepts.swapped_prompt(r.original, r.prompt_id, r.desired) for r in rows]
        keys = [session.prompts(r.original)[r.prompt_id] for r in rows]  # the original prompt's noise
        after = session.classify(session.runner.generate(swapped, noise_keys=keys))
        return batch.assign(**against_baseline(session, rows, after))


def run_ceiling(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """Compute (or read from the store) the rows of ``wanted`` (see ``ceiling_grid``)."""
    return fill_pair_table(session, NAME, wanted, IDS, CeilingRows(session))


EXPERIMENT = Experiment(
    name=NAME, ids=tuple(IDS), columns=("model", "original", "desired", "pair_type", "effect", "precision"),
    grid=lambda session, selection: ceiling_grid([], session.config.prompts, selected_pairs(session, selection)),
    rows=run_ceiling, pairs=True,
    summary=(Aggregate(NAME, ("original", "desired"), METRICS),
             Aggregate("ceiling_pair_type", ("pair_type",), METRICS, key=lambda t: "ceiling-" + t.pair_type)))
