"""A results folder's tables as the suite and the report read them: text columns as categoricals.

A paper-scale table holds millions of rows whose text columns (model, technique, concepts, component, ...) take a
handful of distinct values; as Arrow strings they were most of its memory (1.14 of 1.57 GB for the full paper), as
categoricals they take one small code a row. Their categories are kept in sorted order, so that sorting and grouping
give the order of the text itself, and tables concatenated across runs share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def read_table(path: "str | Path") -> pd.DataFrame:
    """A stored table (parquet) with its text columns as categoricals in sorted order."""
    text = [f.name for f in pq.read_schema(path) if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return sorted_categories(pd.read_parquet(path, read_dictionary=text))


def sorted_categories(table: pd.DataFrame, categories: "dict[str, Sequence] | None" = None) -> pd.DataFrame:
    """``table`` with each categorical column's categories sorted (or set to ``categories[column]``, sorted, where
    given: values outside them would become missing, so give a superset)."""
    out = table.copy(deep=False)
    for column in out.columns[[isinstance(t, pd.CategoricalDtype) for t in out.dtypes]]:
        wanted = (categories or {}).get(column, out[column].cat.categories)
        out[column] = out[column].cat.set_categories(sorted(wanted))
    return out


def concat_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Tables of several runs as one (``pd.concat``), a column categorical in every table staying categorical with
    the union of their categories (pandas would fall back to Python strings where the categories differ)."""
    tables = [t for t in tables if len(t.columns)]
    if not tables:
        return pd.DataFrame()
    shared = {column: set().union(*(t[column].cat.categories for t in tables)) for column in tables[0].columns
              if all(column in t.columns and isinstance(t[column].dtype, pd.CategoricalDtype) for t in tables)}
    return pd.concat([sorted_categories(t, shared) for t in tables], ignore_index=True)


def plain_text(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its categorical columns as plain strings again (what a user's ``pd.read_parquet`` of a written
    aggregate should give, whatever the tables it was computed from)."""
    return table.astype({c: "str" for c in table.columns if isinstance(table[c].dtype, pd.CategoricalDtype)})
