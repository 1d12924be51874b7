"""Checking apart from computing: a model's tables read from a results folder, and the rows a case lacks there.

``pytest bench/ --results DIR --no-compute`` checks the tables that an earlier run stored in ``DIR/<size>/``
(``pytest bench/ --results DIR`` writes them there; so does ``mgbench run --out DIR/<size>``), computing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..concepts.concept_set import ConceptSet
from ..experiments import catalog
from ..experiments.catalog import get, selected
from ..experiments.experiment import Case
from ..experiments.selection import Selection
from ..experiments.session import Session
from .cases import get_kind

#: the settings a stored run must share with the check (run.json's keys)
SETTINGS = ("prompts", "seconds", "seed")


def read_results(folder: Path, size: str, settings: dict) -> "tuple[dict[str, pd.DataFrame], str | None]":
    """Each experiment's table stored in ``folder`` (a missing table is empty), and why its cases cannot be checked
    with ``settings`` (None when they can)."""
    tables = {e.name: pd.read_parquet(folder / f"{e.name}.parquet") if (folder / f"{e.name}.parquet").is_file()
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


def stored_ids(tables: dict[str, pd.DataFrame]) -> dict[str, set]:
    """The row ids each of one model's tables holds (computed once per model, checked for every case)."""
    return {name: set(table[list(get(name).ids)].itertuples(index=False, name=None)) if not table.empty else set()
            for name, table in tables.items()}


def lacking(session: Session, selection: Selection, ids: dict[str, set]) -> "str | None":
    """What the stored row ids ``ids`` (one model's ``stored_ids``) lack of ``selection``'s rows; None: nothing."""
    for experiment in selected(session, selection):
        grid = experiment.grid(session, selection)[list(experiment.ids)]
        rows = set(grid.itertuples(index=False, name=None))
        absent = rows - ids.get(experiment.name, set())
        if absent:
            return (f"{len(absent)} of its {len(rows)} {experiment.name} rows are not in the stored "
                    f"{session.config.model} tables (e.g. {dict(zip(experiment.ids, sorted(absent)[0]))})")
    return None


def missing_rows(case: Case, sessions: Callable[[str], Session], ids: dict[str, dict[str, set]],
                 concepts: ConceptSet) -> "str | None":
    """What the stored tables (their ``stored_ids`` by model) lack of the rows ``case`` reads (its selections'
    grids, through the models' ``sessions``); None when they hold them all."""
    for size, selection in get_kind(case.experiment).wants(case, concepts):
        absent = lacking(sessions(size), selection, ids.get(size, {}))
        if absent:
            return absent
    return None
