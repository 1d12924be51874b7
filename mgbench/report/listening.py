"""Listening examples: for each concept pair, the best and the worst intervention by effect, next to the baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..experiments.interventions import InterventionRows, sweep_label
from ..experiments.session import Session
from ..paths import atomic_write_with
from .audio import write_wav


def pick_examples(interventions: pd.DataFrame, prompts: int = 3) -> pd.DataFrame:
    """Per ordered pair, among the first ``prompts`` prompts: the row with the highest and the lowest effect."""
    rows = interventions[interventions.prompt_id < prompts]
    picks = []
    for _, g in rows.groupby(["original", "desired"], sort=True):
        picks.append(g.loc[[g.effect.idxmax()]].assign(kind="best"))
        picks.append(g.loc[[g.effect.idxmin()]].assign(kind="worst"))
    return pd.concat(picks, ignore_index=True) if picks else rows.assign(kind=[])


def write_examples(session: Session, interventions: pd.DataFrame, out: Path, prompts: int = 3) -> pd.DataFrame:
    """Regenerate the picked clips (common random numbers: exactly the measured clips) and their baselines as WAVs.

    Returns the index (one row per example, with ``path`` and ``baseline_path`` relative to ``out``),
    also written to ``out/audio/examples.csv``.
    """
    picks = pick_examples(interventions, prompts)
    if picks.empty:
        return picks
    rows = InterventionRows(session)
    edits = [rows.edit(r) for r in picks.itertuples()]
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
