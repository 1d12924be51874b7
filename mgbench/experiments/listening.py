"""Listening examples: for each concept pair, the best and the worst edit by effect, next to the baseline clip,
regenerated (common random numbers: exactly the measured clips) as WAVs for the report to link."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..engine.hooks import RowEdit
from ..paths import atomic_write_with, write_wav
from .session import Session


def sweep_label(row) -> str:
    """A row's sweep ids as a name suffix: ``""``, ``-a2``, ``-a0.5-f0-50`` (for file names and case ids)."""
    alpha, frames = getattr(row, "alpha", None), getattr(row, "frames", None)
    return (f"-a{alpha:g}" if alpha is not None else "") + (f"-f{frames}" if frames is not None else "")


def pick_examples(table: pd.DataFrame, prompts: int = 3) -> pd.DataFrame:
    """Per ordered pair, among the first ``prompts`` prompts: the row with the highest and the lowest effect."""
    rows = table[table.prompt_id < prompts]
    picks = []
    for _, g in rows.groupby(["original", "desired"], sort=True):
        picks.append(g.loc[[g.effect.idxmax()]].assign(kind="best"))
        picks.append(g.loc[[g.effect.idxmin()]].assign(kind="worst"))
    return pd.concat(picks, ignore_index=True) if picks else rows.assign(kind=[])


def write_examples(session: Session, table: pd.DataFrame, edit: Callable[[object], RowEdit], out: Path,
                   prompts: int = 3) -> pd.DataFrame:
    """Regenerate the clips picked from ``table`` (rows of edits: ``edit(row)`` is a row's) and their baselines as
    WAVs. Returns the index (one row per example, with ``path`` and ``baseline_path`` relative to ``out``), also
    written to ``out/audio/examples.csv``.
    """
    picks = pick_examples(table, prompts)
    if picks.empty:
        return picks
    edits = [edit(r) for r in picks.itertuples()]
    prompt_text = [session.prompts(r.original)[r.prompt_id] for r in picks.itertuples()]
    base_keys = sorted({(r.original, r.prompt_id) for r in picks.itertuples()})
    rate = session.musicgen.sample_rate
    paths = []
    for r, clip in zip(picks.itertuples(), session.generate(prompt_text, edits)):
        rel = Path("audio") / f"{r.original}-to-{r.desired}" / (
            f"{r.kind}-{r.technique}-L{r.layer}.{r.component}{sweep_label(r)}-p{r.prompt_id}.wav")
        write_wav(out / rel, clip, rate)
        paths.append(str(rel))
    baseline_paths = {}
    for (concept, prompt_id), clip in zip(base_keys, session.generate([session.prompts(c)[p] for c, p in base_keys])):
        rel = Path("audio") / "baselines" / f"{concept}-p{prompt_id}.wav"
        write_wav(out / rel, clip, rate)
        baseline_paths[(concept, prompt_id)] = str(rel)
    index = picks.assign(prompt=prompt_text, path=paths,
                         baseline_path=[baseline_paths[(r.original, r.prompt_id)] for r in picks.itertuples()])
    atomic_write_with(out / "audio" / "examples.csv", lambda tmp: index.to_csv(tmp, index=False))
    return index
