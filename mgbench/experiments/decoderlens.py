"""Experiment 1: DecoderLens recognizability (NDCG) and the self-similarity of layer outputs.

Layer ``i`` (0-based, as in the paper's figures) is the decoder cut after ``i + 1`` layers, followed
by the usual final norm and codebook heads, generating autoregressively with the cut model. The last
layer is the full model, so its rows reuse the concept's baseline clips.
"""

from __future__ import annotations

import pandas as pd
import torch

from ..engine.hooks import installed
from ..lens.translators import TunedLens
from .metrics import ndcg, random_ranking_ndcg, self_similarity
from .resume import chunks, fill_table
from .session import Session

IDS = ["concept", "layer", "prompt_id"]


def decoderlens_grid(concepts: list[str], layers: list[int], prompts: int) -> pd.DataFrame:
    """Row ids of every (concept, layer, prompt) to run."""
    return pd.DataFrame([(c, layer, p) for c in concepts for layer in layers for p in range(prompts)], columns=IDS)


def run_decoderlens(session: Session, wanted: pd.DataFrame, lens: "TunedLens | None" = None) -> pd.DataFrame:
    """Compute (or read from the store) the rows of ``wanted``: ndcg, whether the concept is recognized among its
    category's, and the top-5 classes (AudioSet labels, or CLAP texts) per (concept, layer, prompt). With ``lens``
    each cut is followed by its translator (table ``tunedlens``)."""
    num_layers, layers = session.musicgen.num_layers, session.musicgen.decoder_layers

    def compute(batch: pd.DataFrame) -> pd.DataFrame:
        layer = int(batch["layer"].iloc[0])
        if layer == num_layers - 1:
            logits = torch.stack([session.concept_pass(session.concepts.get(c)).logits[p]
                                  for c, p in zip(batch["concept"], batch["prompt_id"])])
        else:
            prompts = [session.prompts(c)[p] for c, p in zip(batch["concept"], batch["prompt_id"])]
            with installed([(layers[layer], lens.hook(layer))] if lens is not None else []):
                logits = session.classify(session.runner.generate(prompts, cut=layer + 1))
        concepts, seen = [session.concepts.get(c) for c in batch["concept"]], session.recognition
        return batch.assign(ndcg=[ndcg(row, seen.relevant(c)).item() for row, c in zip(logits, concepts)],
                            recognized=[seen.recognized(row, c) for row, c in zip(logits, concepts)],
                            recognized_chance=[1 / len(session.concepts.members(c.category)) for c in concepts],
                            ndcg_chance=[random_ranking_ndcg(len(set(seen.relevant(c))), len(row))
                                         for row, c in zip(logits, concepts)],
                            top5=seen.top(logits))

    def batches(missing: pd.DataFrame) -> list[pd.DataFrame]:
        return [piece for _, group in missing.groupby("layer", sort=True)
                for piece in chunks(group, session.batch_size)]

    name = "decoderlens" if lens is None else "tunedlens"
    table = fill_table(session.store, name, wanted, IDS, compute, batches, name)
    return _label(session, table)


def run_similarity(session: Session, concepts: list[str]) -> pd.DataFrame:
    """One row per (concept, layer_i, layer_j): Euclidean distance of time-averaged layer outputs.

    A layer's output is its residual-stream output (before the decoder's final norm) on the
    conditional rows, averaged over generation steps; distances are averaged over prompts.
    """
    rows = []
    for name in concepts:
        matrix = self_similarity(session.concept_pass(session.concepts.get(name)).layer_outputs)
        size = matrix.shape[0]
        rows += [(name, i, j, matrix[i, j].item()) for i in range(size) for j in range(size)]
    return _label(session, pd.DataFrame(rows, columns=["concept", "layer_i", "layer_j", "distance"]))


def _label(session: Session, table: pd.DataFrame) -> pd.DataFrame:
    """Add the model, classifier, recognizer (last) and concept category columns that make tables from many runs
    concatenable."""
    out = table.copy()
    if "concept" in out:
        out.insert(1, "category", [session.concepts.get(c).category for c in out["concept"]])
    out.insert(0, "classifier", session.config.classifier_name)
    out.insert(0, "model", session.config.model)
    return out.assign(recognizer=session.config.recognizer)
