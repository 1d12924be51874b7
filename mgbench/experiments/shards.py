"""Sharded runs: ``mgbench run --shard I/N`` computes a fixed 1/N of a selection's work into the shared store.

The work of a selection is its wanted rows (one grid per stored experiment, ``pipeline.stored_grids``) and the
concept passes they need (baseline clips and mean activations, one per concept). Shard ``I`` of ``N`` (1-based)
owns the grid rows at positions ``I-1, I-1+N, I-1+2N, ...`` of every grid and the concepts at those positions
of the selection's concept list. The assignment depends only on the selection, never on what is stored yet, so
shards may run in any order, concurrently, killed and restarted: each computes only its own missing rows.

A shard makes sure of its own concepts' passes first, then of the others its rows need, then computes its rows.
A pass is computed under a claim (``claims/pass-<concept>`` in the store, created exclusively, its modification
time renewed every ``HEARTBEAT_S`` while the pass is computed): a shard that finds another's live claim waits for
the pass instead of computing it again, so each pass is computed once across the shards. A claim whose time has
not moved for ``STALE_S`` is a dead shard's (killed, node lost) and is taken over. (Two shards taking over one
stale claim at the same moment may both compute the pass: harmless, as stores are written atomically and a pass
is a deterministic function of the session.) Rows computed twice (two unsharded runs at once) are stored twice
and read once: ``resume.fill_table`` keeps one row per row id.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import ConfigError
from .catalog import selected, validate
from .pipeline import stored_grids
from .resume import missing_mask
from .selection import Selection
from .session import Session
from .store import ResultStore

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
#: seconds between renewals of a live claim, and without renewal after which a claim is a dead shard's
HEARTBEAT_S = 2.0
STALE_S = 30.0


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
    """The concepts whose passes the selection needs: all of them when any selected experiment needs them
    (``Experiment.passes``; e.g. DecoderLens only for its last layer, whose rows reuse the baseline clips)."""
    layers = session.facts.num_layers
    if not any(e.passes(selection, layers) for e in selected(session, selection)):
        return []
    return [c.name for c in session.concepts.select(selection.concept_names(session.concepts.names))]


def missing_work(session: Session, selection: Selection, shards: int = 1, clips: bool = True,
                 store: "ResultStore | None | bool" = True) -> list[dict[str, int]]:
    """For each of ``shards`` shards (one: the whole selection), the clips it still has to generate, per experiment
    and ``baselines`` (concept passes), given what ``store`` holds (True: the session's; None: nothing is stored
    yet); the store is read once.

    Rows that reuse the baseline clips (``Experiment.free``: the lenses' last layer) count for nothing; with
    ``clips=False`` they count as the rows they are (then the numbers are rows still to store, and prompts of passes
    still to store).
    """
    store = session.store if store is True else store
    parts = [Shard(i, shards) for i in range(1, shards + 1)]
    work: list[dict[str, int]] = [{} for _ in parts]
    for experiment, grid in stored_grids(session, selection):
        missing = (missing_mask(store, experiment.stored_table(grid), grid, list(grid.columns)) if store is not None
                   else pd.Series(True, index=grid.index))
        if experiment.free is not None and clips:
            missing &= ~experiment.free(grid, session.facts.num_layers)
        for shard, counts in zip(parts, work):
            counts[experiment.name] = int(shard.pick(missing.to_frame()).iloc[:, 0].sum())
    concepts = pass_concepts(session, selection)
    for shard, counts in zip(parts, work):
        counts["baselines"] = session.config.prompts * sum(
            store is None or not store.tensor_path(f"pass-{c}").exists() for c in shard.concepts(concepts))
    return work


@dataclass
class ShardResult:
    """What one shard did: the concept passes it computed, and its rows per table (computed or found stored)."""

    passes: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        rows = ", ".join(f"{n} {name} rows" for name, n in self.rows.items()) or "no rows"
        return f"computed the concept passes of {', '.join(self.passes) or 'none'}; {rows}"


def run_shard(session: Session, selection: Selection, shard: Shard) -> ShardResult:
    """Make sure of the concept passes (this shard's own first) and compute this shard's missing rows."""
    validate(session, selection)
    concepts = pass_concepts(session, selection)
    own = shard.concepts(concepts)
    result = ShardResult()
    for name in own + [c for c in concepts if c not in own]:
        if ensure_pass(session, name):
            result.passes.append(name)
    for experiment, grid in stored_grids(session, selection):
        wanted = shard.pick(grid)
        result.rows[experiment.name] = len(experiment.rows(session, wanted)) if len(wanted) else 0
    return result


def ensure_pass(session: Session, concept: str, poll_s: float = 0.2) -> bool:
    """Make sure that ``concept``'s pass is stored: compute it under a claim, or wait while another process's live
    claim holds it. True when this process computed it."""
    stored, claim = session.store.tensor_path(f"pass-{concept}"), session.store.dir / "claims" / f"pass-{concept}"
    claim.parent.mkdir(parents=True, exist_ok=True)
    seen, since = None, time.monotonic()
    while not stored.exists():
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:  # another process computes it, or died doing so
            stamp = _mtime(claim)
            if stamp != seen:
                seen, since = stamp, time.monotonic()
            elif time.monotonic() - since > STALE_S:
                claim.unlink(missing_ok=True)  # its holder stopped renewing it: take it over
            time.sleep(poll_s)
            continue
        with _renewed(claim):
            if stored.exists():  # stored between our look and our claim
                return False
            session.concept_pass(session.concepts.get(concept))
            return True
    return False


def _mtime(path: Path) -> "int | None":
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


@contextmanager
def _renewed(claim: Path) -> Iterator[None]:
    """Hold ``claim``: renew its modification time every ``HEARTBEAT_S`` from a thread, remove it at the end."""
    done = threading.Event()

    def renew() -> None:
        while not done.wait(HEARTBEAT_S):
            try:
                os.utime(claim)
            except FileNotFoundError:
                return

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        claim.unlink(missing_ok=True)
