"""Bench cases: one parametrized test per case, with an id that carries the model, concepts, site and technique.

The kinds of case are declared by the experiments (``Experiment.cases``) and here by the suite (the ground-truth
checks); this module looks them up by name, lists a model's cases, turns the cases a session selected into the
selections that compute their rows, and reads a case's metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd

from ..concepts.concept_set import ConceptSet
from ..errors import ConfigError
from ..experiments.catalog import case_kinds
from ..experiments.experiment import Case, CaseKind
from ..experiments.selection import Selection
from ..experiments.summaries import INTERVAL_SUFFIXES, summarize_rows
from ..zoo.loading import model_facts
from .ground_truth import GROUND_TRUTH


def kinds() -> dict[str, CaseKind]:
    """Every kind of bench case by name: the experiments' and the suite's."""
    return {kind.name: kind for kind in [*case_kinds(), GROUND_TRUTH]}


def get_kind(name: str) -> CaseKind:
    found = kinds()
    if name not in found:
        raise ConfigError(f"unknown bench case kind {name!r}; valid: {', '.join(found)}")
    return found[name]


@lru_cache(maxsize=None)
def layers_of(size: str) -> int:
    """The decoder layers of model ``size``, from its configuration."""
    return model_facts(size).num_layers


def enumerate_cases(kind: str, size: str, concepts: ConceptSet) -> list[Case]:
    """Every case of ``kind`` for a model."""
    return get_kind(kind).cases(size, concepts, layers_of(size))


def selections(cases: Iterable[Case], concepts: ConceptSet) -> dict[str, list[Selection]]:
    """What computes the rows of ``cases``: per model, one selection per experiment, each the smallest one covering
    what the cases read of it (``Selection.union``)."""
    wanted: dict[tuple[str, str], list[Selection]] = {}
    for case in cases:
        for size, selection in get_kind(case.experiment).wants(case, concepts):
            wanted.setdefault((size, selection.experiments[0]), []).append(selection)
    out: dict[str, list[Selection]] = {}
    for (size, _), chosen in wanted.items():
        out.setdefault(size, []).append(Selection.union(chosen))
    return out


def kind_metrics(kind: CaseKind, tables: dict[str, pd.DataFrame]) -> "pd.DataFrame | None":
    """The metrics of every case of ``kind`` at once: its table grouped once by the kind's aggregate, each group's
    metrics over prompts with their 95% intervals (``stats.with_intervals``, vectorized over the groups); indexed by
    the groups' keys. None without rows."""
    return summarize_rows(kind.aggregate, tables.get(kind.table, pd.DataFrame()))


def group_metrics(kind: CaseKind, grouped: "pd.DataFrame | None", case: Case) -> dict[str, float]:
    """The case's metrics from its kind's ``kind_metrics``: ``<metric>``, ``<metric>_lo``, ``<metric>_hi``; all NaN
    when the case has no rows."""
    names = [f"{m}{s}" for m in kind.aggregate.metrics for s in ("", *INTERVAL_SUFFIXES)]
    key = kind.key(case)
    key = key[0] if len(key) == 1 else key
    if grouped is None or key not in grouped.index:
        return {n: math.nan for n in names}
    row = grouped.loc[key]
    return {n: float(row[n]) for n in names}


def case_metrics(case: Case, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The case's metrics from its model's tables, each metric over prompts with its 95% bootstrap interval
    (``<metric>_lo``, ``<metric>_hi``); computed from the case's own rows (the bench groups every case of a kind at
    once, ``kind_metrics``: the same numbers)."""
    kind = get_kind(case.experiment)
    if kind.aggregate is not None:
        table = tables.get(kind.table, pd.DataFrame())
        if not table.empty:
            by = list(kind.aggregate.by)
            table = table[(table[by] == pd.Series(kind.key(case), index=by)).all(axis=1)]
        return group_metrics(kind, kind_metrics(kind, {kind.table: table}), case)
    if kind.metrics is None:
        raise ValueError(f"{case.experiment} cases have verdicts, not metrics")
    return kind.metrics(case, tables)


def split_intervals(values: dict[str, float]) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """``values`` as point metrics and their ``(lo, hi)`` bounds: ``m_lo``, ``m_hi`` are bounds of a key ``m``.

    Only the point metrics are checked against ranges and written as golden values.
    """
    bounds = {m: (values[f"{m}_lo"], values[f"{m}_hi"]) for m in values
              if f"{m}_lo" in values and f"{m}_hi" in values}
    bound_keys = {f"{m}{s}" for m in bounds for s in INTERVAL_SUFFIXES}
    return {k: v for k, v in values.items() if k not in bound_keys}, bounds
