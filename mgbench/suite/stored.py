"""Checking apart from computing: a model's tables read from a results folder, and the rows a case lacks there.

``pytest bench/ --results DIR --no-compute`` checks the tables that an earlier run stored in ``DIR/<size>/``
(``pytest bench/ --results DIR`` writes them there; so does ``mgbench run --out DIR/<size>``), computing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..concepts.concept_set import ConceptSet
from ..experiments import catalog
from ..experiments.catalog import get, selected
from ..experiments.experiment import Case
from ..experiments.selection import Selection
from ..experiments.session import Session
from ..experiments.tables import read_table
from .cases import get_kind

#: the settings a stored run must share with the check (run.json's keys)
SETTINGS = ("prompts", "seconds", "seed")
#: combined row keys stay below this (int64); past it the keys so far are renumbered (``RowIds``)
KEY_LIMIT = 2**63


def read_results(folder: Path, size: str, settings: dict) -> "tuple[dict[str, pd.DataFrame], str | None]":
    """Each experiment's table stored in ``folder`` (a missing table is empty), and why its cases cannot be checked
    with ``settings`` (None when they can)."""
    tables = {e.name: read_table(folder / f"{e.name}.parquet") if (folder / f"{e.name}.parquet").is_file()
              else pd.DataFrame() for e in catalog.EXPERIMENTS}
    try:
        info = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return tables, f"no results of {size} in {folder} (run.json missing or unreadable); compute them first"
    if info.get("model") != size:
        return tables, f"{folder} holds results of model {info.get('model')!r}, not {size}"
    made, wanted = ({k: d.get(k) for k in SETTINGS} for d in (info, settings))
    if made != wanted:
        return tables, f"{folder} was made with {made}; this check uses {wanted} (give the same --prompts/--seconds)"
    return tables, None


@dataclass(frozen=True)
class RowIds:
    """The row ids one stored table holds, compact (8 bytes a row, not a Python tuple): each id column's distinct
    stored values, and every stored row's key (the codes of its values combined in mixed radix), sorted and unique."""

    columns: tuple[str, ...]
    values: tuple[pd.Index, ...]
    folds: tuple["np.ndarray | None", ...]  # per column: the distinct keys so far where they were renumbered
    keys: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame, columns: Sequence[str]) -> "RowIds":
        """The ids of ``table``'s rows (its ``columns``); an empty table holds none."""
        columns = tuple(columns)
        if table.empty:
            return cls(columns, (), (), np.empty(0, np.int64))
        codes, values = zip(*(pd.factorize(table[c], use_na_sentinel=False) for c in columns))
        values = tuple(pd.Index(v) for v in values)
        keys, _, folds = _combined(codes, [len(v) for v in values])
        return cls(columns, values, folds, np.unique(keys))

    def absent(self, grid: pd.DataFrame) -> np.ndarray:
        """Which of ``grid``'s rows (it has the id columns) are not stored: a boolean mask."""
        if not len(self.keys):
            return np.ones(len(grid), bool)
        codes = [v.get_indexer(grid[c]) for c, v in zip(self.columns, self.values)]
        keys, known, _ = _combined(codes, [len(v) for v in self.values], self.folds)
        at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return ~(known & (self.keys[at] == keys))


def _combined(codes: Sequence[np.ndarray], sizes: Sequence[int], folds: "Sequence[np.ndarray | None] | None" = None
              ) -> "tuple[np.ndarray, np.ndarray, tuple[np.ndarray | None, ...]]":
    """Rows' codes per column (-1: a value not stored) as one int64 key per row, whether every code was known, and
    where the keys were renumbered (their rank among the distinct keys so far, lest the next column overflow int64):
    computed from the stored rows when ``folds`` is None, else the stored table's, so that a grid gets its keys."""
    keys, known, bound, made = np.zeros(len(codes[0]), np.int64), np.ones(len(codes[0]), bool), 1, []
    for i, (code, size) in enumerate(zip(codes, sizes)):
        fold = None
        if bound * size >= KEY_LIMIT:
            fold = np.unique(keys) if folds is None else folds[i]
            at = np.searchsorted(fold, keys).clip(max=len(fold) - 1)
            known &= fold[at] == keys
            keys, bound = at.astype(np.int64), len(fold)
        made.append(fold)
        known &= code >= 0
        keys, bound = keys * size + np.maximum(code, 0), bound * size
    return keys, known, tuple(made)


def stored_ids(tables: dict[str, pd.DataFrame]) -> dict[str, RowIds]:
    """The row ids each of one model's tables holds (computed once per model, checked for every case)."""
    return {name: RowIds.of(table, get(name).ids) for name, table in tables.items()}


def lacking(session: Session, selection: Selection, ids: dict[str, RowIds]) -> "str | None":
    """What the stored row ids ``ids`` (one model's ``stored_ids``) lack of ``selection``'s rows; None: nothing."""
    for experiment in selected(session, selection):
        grid = experiment.grid(session, selection)[list(experiment.ids)]
        stored = ids.get(experiment.name)
        absent = grid[stored.absent(grid)] if stored is not None else grid
        if len(absent):
            absent = absent.drop_duplicates()
            first = min(absent.itertuples(index=False, name=None))
            return (f"{len(absent)} of its {len(grid.drop_duplicates())} {experiment.name} rows are not in the stored "
                    f"{session.config.model} tables (e.g. {dict(zip(experiment.ids, first))})")
    return None


def missing_rows(case: Case, sessions: Callable[[str], Session], ids: dict[str, dict[str, RowIds]],
                 concepts: ConceptSet) -> "str | None":
    """What the stored tables (their ``stored_ids`` by model) lack of the rows ``case`` reads (its selections'
    grids, through the models' ``sessions``); None when they hold them all."""
    for size, selection in get_kind(case.experiment).wants(case, concepts):
        absent = lacking(sessions(size), selection, ids.get(size, {}))
        if absent:
            return absent
    return None
