"""Bench cases: one parametrized test per case, with an id that carries the model, concepts, site and technique.

The kinds of case are declared by the experiments (``Experiment.cases``) and here by the suite (the ground-truth
checks); this module looks them up by name, lists a model's cases, turns the cases a session selected into the
selections that compute their rows, and reads a case's metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import pandas as pd

from ..concepts.concept_set import ConceptSet
from ..errors import ConfigError
from ..experiments.catalog import case_kinds
from ..experiments.experiment import Case, CaseKind
from ..experiments.selection import Selection
from ..experiments.summaries import INTERVAL_SUFFIXES
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


def case_metrics(case: Case, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    """The case's metrics from its model's tables, each metric over prompts with its 95% bootstrap interval
    (``<metric>_lo``, ``<metric>_hi``)."""
    kind = get_kind(case.experiment)
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
