"""Checking apart from computing: a size's tables read from a results folder, and the rows a case lacks there.

``pytest bench/ --results DIR --no-compute`` checks the tables that an earlier run stored in ``DIR/<size>/``
(``pytest bench/ --results DIR`` writes them there; so does ``mgbench run --out DIR/<size>``), computing nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..concepts.concept_set import ConceptSet
from ..experiments.ceiling import IDS as CEILING_IDS
from ..experiments.decoderlens import IDS as DL_IDS
from ..experiments.interventions import IDS as IV_IDS
from .cases import Case, Needs, add_needs

TABLES = ("decoderlens", "similarity", "interventions", "ceiling")
#: the settings a stored run must share with the check (run.json's keys)
SETTINGS = ("prompts", "seconds", "seed")


def read_results(folder: Path, size: str, settings: dict) -> "tuple[dict[str, pd.DataFrame], str | None]":
    """The tables stored in ``folder`` (a missing table is empty), and why its cases cannot be checked with
    ``settings`` (None when they can)."""
    tables = {name: pd.read_parquet(folder / f"{name}.parquet") if (folder / f"{name}.parquet").is_file()
              else pd.DataFrame() for name in TABLES}
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


#: the ids of each table's rows (similarity: a concept's whole matrix)
ROW_IDS = {"decoderlens": DL_IDS, "interventions": IV_IDS, "ceiling": CEILING_IDS, "similarity": ["concept"]}


def stored_ids(tables: dict[str, pd.DataFrame]) -> dict[str, set]:
    """The row ids each of one size's tables holds (computed once per size, checked for every case)."""
    return {name: set(table[ids].itertuples(index=False, name=None)) if not table.empty else set()
            for name, table in tables.items() for ids in [ROW_IDS[name]]}


def missing_rows(case: Case, ids: dict[str, dict[str, set]], prompts: dict[str, int],
                 concepts: ConceptSet) -> "str | None":
    """What the stored tables (their ``stored_ids`` by size) lack of the rows ``case`` reads (``prompts`` per size);
    None when they hold them all."""
    needs: dict[str, Needs] = {}
    add_needs(needs, case, concepts)
    for size, need in needs.items():
        n = prompts[size]
        wanted = {"decoderlens": {(*k, p) for k in need.decoderlens for p in range(n)},
                  "interventions": {(*k, p) for k in need.interventions for p in range(n)},
                  "ceiling": {(*k, p) for k in need.ceiling for p in range(n)},
                  "similarity": {(c,) for c in need.similarity}}
        for name, rows in wanted.items():
            lacking = rows - ids.get(size, {}).get(name, set())
            if lacking:
                return (f"{len(lacking)} of its {len(rows)} {name} rows are not in the stored {size} tables "
                        f"(e.g. {dict(zip(ROW_IDS[name], sorted(lacking)[0]))})")
    return None
