"""Sharded runs: ``mgbench run --shard I/N`` computes a fixed 1/N of a selection's work into the shared store.

The work of a selection is its wanted rows (one grid per stored table, ``pipeline.selection_grids``) and the
concept passes they need (baseline clips and mean activations, one per concept). Shard ``I`` of ``N`` (1-based)
owns the grid rows at positions ``I-1, I-1+N, I-1+2N, ...`` of every grid and the concepts at those positions
of the selection's concept list. The assignment depends only on the selection, never on what is stored yet, so
shards may run in any order, concurrently, killed and restarted: each computes only its own missing rows.

A shard computes its own concept passes first. Rows that need another shard's pass read it from the store, or,
when that shard has not stored it yet, compute it too: a pass is a deterministic function of the session, and
stores are written atomically (same name, whole files), so a pass computed twice is stored whole, never torn.
Rows computed twice (two unsharded runs at once) are stored twice and read once: ``resume.fill_table`` keeps one
row per row id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from ..errors import ConfigError
from .pipeline import ROW_TABLES, Selection, selected_concepts, selection_grids
from .resume import missing_rows
from .session import Session

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"2/3"`` -> Shard(2, 3); a one-line ``ConfigError`` for anything else."""
        match = _SHARD.match(text)
        index, count = (int(match[1]), int(match[2])) if match else (0, 0)
        if not match or count < 1 or not 1 <= index <= count:
            raise ConfigError(f"shard {text!r} is not allowed; give I/N with 1 <= I <= N, e.g. 1/3 (shards 1/3, 2/3 "
                              "and 3/3 together compute everything)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def pick(self, grid: pd.DataFrame) -> pd.DataFrame:
        """This shard's rows of ``grid`` (every ``count``-th row, from position ``index - 1``)."""
        return grid.iloc[self.index - 1::self.count].reset_index(drop=True)

    def concepts(self, names: list[str]) -> list[str]:
        """The concepts whose passes this shard computes."""
        return names[self.index - 1::self.count]


def pass_concepts(session: Session, selection: Selection) -> list[str]:
    """The concepts whose passes the selection needs: all of them, unless it runs only DecoderLens rows before the
    last layer (the last layer's rows reuse the baseline clips)."""
    last = session.musicgen.num_layers - 1
    only_lens = set(selection.experiments) == {"decoderlens"} and selection.layers and last not in selection.layers
    return [] if only_lens else selected_concepts(session, selection)


def missing_work(session: Session, selection: Selection, shard: "Shard | None" = None,
                 clips: bool = True) -> dict[str, int]:
    """Clips still to generate, per experiment and ``baselines`` (concept passes), for ``shard`` (None: all).

    DecoderLens rows of the last layer reuse the baseline clips and count for nothing; with ``clips=False`` they
    count as the rows they are (then the numbers are rows still to store, and prompts of passes still to store).
    """
    pick = shard.pick if shard else (lambda grid: grid)
    work = {}
    for name, grid in selection_grids(session, selection).items():
        wanted = pick(grid)
        if name == "decoderlens" and clips:
            wanted = wanted[wanted.layer != session.musicgen.num_layers - 1]
        ids = list(grid.columns)
        work[name] = len(missing_rows(session.store, name, wanted, ids)) if len(wanted) else 0
    concepts = pass_concepts(session, selection)
    passes = shard.concepts(concepts) if shard else concepts
    work["baselines"] = session.config.prompts * sum(
        not session.store.tensor_path(f"pass-{c}").exists() for c in passes)
    return work


def run_shard(session: Session, selection: Selection, shard: Shard) -> dict[str, int]:
    """Compute (or find stored) this shard's concept passes and rows; return its rows per table."""
    selection.validate(session)
    for name in shard.concepts(pass_concepts(session, selection)):
        session.concept_pass(session.concepts.get(name))
    rows = {}
    for name, grid in selection_grids(session, selection).items():
        wanted = shard.pick(grid)
        rows[name] = len(ROW_TABLES[name](session, wanted)) if len(wanted) else 0
    return rows
