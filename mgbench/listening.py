"""Listening examples: for each concept pair, the best and the worst intervention by effect, next to the baseline."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .audio import write_wav
from .interventions import InterventionRows
from .session import Session


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
    edits = [rows.edit(r.technique, r.original, r.desired, r.layer, r.component) for r in picks.itertuples()]
    prompt_text = [session.prompts(r.original)[r.prompt_id] for r in picks.itertuples()]
    base_keys = sorted({(r.original, r.prompt_id) for r in picks.itertuples()})
    rate = session.musicgen.sample_rate
    paths, baseline_paths = [], {}
    for start in range(0, len(picks), session.batch_size):
        audio = session.runner.generate(prompt_text[start:start + session.batch_size],
                                        edits=edits[start:start + session.batch_size])
        for r, clip in zip(picks.iloc[start:start + session.batch_size].itertuples(), audio):
            rel = Path("audio") / f"{r.original}-to-{r.desired}" / (
                f"{r.kind}-{r.technique}-L{r.layer}.{r.component}-p{r.prompt_id}.wav")
            write_wav(out / rel, clip, rate)
            paths.append(str(rel))
    for start in range(0, len(base_keys), session.batch_size):
        chunk = base_keys[start:start + session.batch_size]
        audio = session.runner.generate([session.prompts(c)[p] for c, p in chunk])
        for (concept, prompt_id), clip in zip(chunk, audio):
            rel = Path("audio") / "baselines" / f"{concept}-p{prompt_id}.wav"
            write_wav(out / rel, clip, rate)
            baseline_paths[(concept, prompt_id)] = str(rel)
    index = picks.assign(prompt=prompt_text, path=paths,
                         baseline_path=[baseline_paths[(r.original, r.prompt_id)] for r in picks.itertuples()])
    index.to_csv(out / "audio" / "examples.csv", index=False)
    return index
