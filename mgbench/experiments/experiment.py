"""What an experiment is, declared once: everything that runs, shards, plans, checks or reports experiments loops over
these declarations (``catalog.EXPERIMENTS``) and names none of them.

An ``Experiment`` says which rows a selection wants (its grid), how they are computed (through the result store,
so that caching, resuming and sharding come free), what it summarizes, which bench cases check it (``CaseKind``),
what its table holds for the report, and what it needs of a backend. A ``CaseKind`` is one parametrized bench test
(``test_<name>``): its cases for a model, the rows each reads (as selections of experiments) and how a case turns
those rows into metrics or a verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ..concepts.concept_set import ConceptSet
from .selection import Selection
from .tables import plain_text

if TYPE_CHECKING:
    from pathlib import Path

    from .session import Session


@dataclass(frozen=True)
class Case:
    """One bench case: a kind (``experiment``, the test ``test_<experiment>``), a model (``size``) and the keys that
    narrow it; ``parts`` are its id after the size (``guitar-L23``)."""

    experiment: str
    size: str
    concept: "str | None" = None
    technique: "str | None" = None
    original: "str | None" = None
    desired: "str | None" = None
    layer: "int | None" = None
    component: "str | None" = None
    pair_type: "str | None" = None
    claim: "str | None" = None
    check: "str | None" = None  # a ground-truth check (suite.ground_truth)
    category: "str | None" = None  # the concept category a ground-truth check judges
    parts: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The test id. Pairs are written ``guitar-to-piano``: pytest's ``-k`` grammar has no ``>``."""
        return "-".join((self.size, *self.parts))

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Verdict:
    """Whether a claim holds on the rows (None: undecided; ``inconclusive`` says whether by the numbers or because
    rows are missing), with the numbers that decide it."""

    holds: "bool | None"
    detail: str
    inconclusive: bool = False

    @property
    def label(self) -> str:
        if self.holds is None:
            return "inconclusive" if self.inconclusive else "cannot judge"
        return "holds" if self.holds else "fails"


#: a model's tables by name, for a model (``size``) the case reads
Tables = Callable[[str], dict[str, pd.DataFrame]]


@dataclass(frozen=True)
class Aggregate:
    """A summary of an experiment's rows: grouped by ``by`` (and by the sweep columns ``sweeps`` where present),
    each metric's mean over prompts with its 95% interval (``stats.with_intervals``); ``where`` keeps some rows
    only; ``key`` names a group in one string (the diff's keys)."""

    name: str
    by: tuple[str, ...]
    metrics: tuple[str, ...]
    where: "Callable[[pd.DataFrame], pd.Series] | None" = None
    sweeps: tuple[str, ...] = ()
    key: "Callable[[pd.DataFrame], pd.Series] | None" = None

    def rows(self, table: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``table`` this aggregate summarizes."""
        return table[self.where(table)] if self.where is not None and not table.empty else table

    def keys(self, table: pd.DataFrame) -> list[str]:
        """The columns a group is made of in ``table``: ``by`` and the sweeps it carries."""
        return [*self.by, *(c for c in self.sweeps if c in table.columns)]

    def names(self, groups: pd.DataFrame) -> pd.Series:
        """Each group's name (``key``) from its columns, read as plain text (a results table's are categorical)."""
        return self.key(plain_text(groups))


@dataclass(frozen=True)
class CaseKind:
    """A kind of bench case, the parametrized test ``test_<name>``.

    ``cases(size, concepts, layers)`` lists its cases for a model of ``layers`` layers; ``wants(case, concepts)`` the
    rows a case reads, as ``(size, selection)`` pairs (a selection names one experiment). A case's result is one of:

    - the group of ``table``'s rows that ``aggregate`` makes of the case's values of its ``by`` columns (the
      group's metrics over prompts with ``_lo``/``_hi`` interval bounds, checked against expected ranges; every case
      of a kind is computed from one grouping of the table, ``suite.cases.kind_metrics``);
    - ``metrics(case, tables)``: numbers computed otherwise (no interval);
    - ``verdict(case, tables)``: a claim (``tables(size)`` gives any model's tables).
    """

    name: str
    cases: Callable[[str, ConceptSet, int], list[Case]]
    wants: Callable[[Case, ConceptSet], list[tuple[str, Selection]]]
    table: str = ""
    aggregate: "Aggregate | None" = None
    metrics: "Callable[[Case, dict[str, pd.DataFrame]], dict[str, float]] | None" = None
    verdict: "Callable[[Case, Tables], Verdict] | None" = None

    def key(self, case: Case) -> tuple:
        """The case's group: its values of the aggregate's ``by`` columns."""
        return tuple(getattr(case, column) for column in self.aggregate.by)


def _always(selection: Selection, layers: int) -> bool:
    return True


@dataclass(frozen=True)
class Experiment:
    """An experiment, declared once.

    - ``grid(session, selection)``: the row ids a selection wants (``ids`` columns, plus sweep columns);
      ``rows(session, grid)``: those rows, computed or read through the store (``stored``; else computed from the
      concept passes, e.g. similarity); ``table(grid)``: the stored table of a grid (sweeps are stored apart);
    - ``free(grid, layers)``: the rows that cost no clip (they reuse the concept passes' baseline clips);
      ``passes(selection, layers)``: whether the selection needs the concept passes; ``pairs``: needs two concepts;
    - ``requires``: backend capabilities (``backends.CAPABILITIES``); ``default``: part of a run that names no
      experiments (False: only when named, e.g. ``--experiments localization``);
    - ``summary``: its aggregates (summary.md, the report's diff); ``cases``: its bench case kinds;
    - ``columns``: what the report reads of its table (a table without them is from elsewhere);
    - ``outputs(session, table, out, listen)``: further tables and files a run writes beside its ``table`` into
      ``out`` (a tuned lens' fit and file; listening examples from the first ``listen`` prompts, 0: none).
    """

    name: str
    ids: tuple[str, ...]
    columns: tuple[str, ...]
    grid: "Callable[[Session, Selection], pd.DataFrame]"
    rows: "Callable[[Session, pd.DataFrame], pd.DataFrame]"
    stored: bool = True
    table: "Callable[[pd.DataFrame], str] | None" = None
    free: "Callable[[pd.DataFrame, int], pd.Series] | None" = None
    passes: Callable[[Selection, int], bool] = _always
    pairs: bool = False
    requires: frozenset[str] = frozenset()
    default: bool = True
    summary: tuple[Aggregate, ...] = ()
    cases: tuple[CaseKind, ...] = ()
    outputs: "Callable[[Session, pd.DataFrame, Path, int], tuple[dict[str, pd.DataFrame], list[Path]]] | None" = None

    def stored_table(self, grid: pd.DataFrame) -> str:
        """The store table that holds ``grid``'s rows."""
        return self.table(grid) if self.table is not None else self.name
