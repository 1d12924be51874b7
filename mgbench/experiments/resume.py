"""Compute only the rows of a table that are not stored yet, in batches, one stored shard per batch; a batch that
runs out of memory is split (``OomBackoff``)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch

from ..engine.batching import is_oom
from ..progress import progress
from .store import ResultStore


class OomBackoff:
    """Runs ``compute`` on a batch; on out-of-memory, halves the batch (and every later one) and retries."""

    def __init__(self, compute: Callable[[pd.DataFrame], pd.DataFrame], store: Callable[[pd.DataFrame], None]):
        self.compute, self.store = compute, store
        self.limit: "int | None" = None

    def __call__(self, batch: pd.DataFrame) -> None:
        size = len(batch) if self.limit is None else min(self.limit, len(batch))
        for start in range(0, len(batch), size):
            piece = batch.iloc[start:start + size]
            try:
                self.store(self.compute(piece))
            except (RuntimeError, MemoryError) as e:
                if not is_oom(e) or len(piece) == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.limit = max(1, len(piece) // 2)
                self(piece)


def missing_mask(store: ResultStore, table: str, wanted: pd.DataFrame, ids: list[str]) -> "pd.Series[bool]":
    """For each row of ``wanted`` (identified by the ``ids`` columns, in order): whether ``table`` lacks it yet."""
    done = store.read(table)
    if done.empty:
        return pd.Series(True, index=wanted.index)
    merged = wanted[ids].merge(done[ids].drop_duplicates(), on=ids, how="left", indicator=True)  # keeps the order
    return pd.Series((merged["_merge"] == "left_only").to_numpy(), index=wanted.index)


def missing_rows(store: ResultStore, table: str, wanted: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """The rows of ``wanted`` (identified by the ``ids`` columns) that ``table`` does not hold yet."""
    return wanted[missing_mask(store, table, wanted, ids)].reset_index(drop=True)


def fill_table(store: ResultStore, table: str, wanted: pd.DataFrame, ids: list[str],
               compute: Callable[[pd.DataFrame], pd.DataFrame], batches: Callable[[pd.DataFrame], list],
               desc: str) -> pd.DataFrame:
    """Compute the missing rows of ``wanted`` with ``compute(batch)``, store each batch, return all wanted rows.

    ``batches(missing)`` splits the missing rows into the frames that ``compute`` takes; a batch
    that runs out of memory is split in halves, and every finished piece is stored at once.
    """
    missing = missing_rows(store, table, wanted, ids)
    run = OomBackoff(compute, lambda rows: store.add_rows(table, rows))
    for batch in progress(batches(missing) if not missing.empty else [], desc):
        run(batch)
    done = store.read(table)
    if done.empty:
        return done
    return wanted[ids].merge(done.drop_duplicates(subset=ids), on=ids, how="inner")


def chunks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    """``frame`` cut into consecutive pieces of at most ``size`` rows."""
    return [frame.iloc[i:i + size].reset_index(drop=True) for i in range(0, len(frame), max(1, size))]
