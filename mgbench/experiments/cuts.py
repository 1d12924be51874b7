"""Rows of a decoder cut after a layer (DecoderLens, and the tuned lens after it): how well a concept is recognized
in the clips the cut model generates.

Layer ``i`` (0-based, as in the paper's figures) is the decoder cut after ``i + 1`` layers, followed by the usual
final norm and codebook heads (after a translator, with a tuned lens), generating autoregressively with the cut
model. The last layer is the full model, so its rows reuse the concept's baseline clips and cost no clip.
"""

from __future__ import annotations

import pandas as pd
import torch

from ..concepts.concept_set import ConceptSet
from ..engine.hooks import installed
from ..lens.translators import TunedLens
from .experiment import Aggregate, Case, CaseKind
from .metrics import ndcg, random_ranking_ndcg
from .resume import chunks, fill_table
from .selection import Selection
from .session import Session

IDS = ["concept", "layer", "prompt_id"]


COLUMNS = ("model", "concept", "category", "layer", "prompt_id", "ndcg")


def cut_grid(concepts: list[str], layers: list[int], prompts: int) -> pd.DataFrame:
    """Row ids of every (concept, layer, prompt) to run."""
    return pd.DataFrame([(c, layer, p) for c in concepts for layer in layers for p in range(prompts)], columns=IDS)


def selection_grid(session: Session, selection: Selection) -> pd.DataFrame:
    """The cut rows a selection wants: its concepts at its layers (all by default)."""
    layers = list(selection.layers) if selection.layers else list(range(session.facts.num_layers))
    return cut_grid(selection.concept_names(session.concepts.names), layers, session.config.prompts)


def last_layer(grid: pd.DataFrame, layers: int) -> pd.Series:
    """The rows that cost no clip: the full model's (the last layer's), which reuse the baseline clips."""
    return grid.layer == layers - 1


def needs_passes(selection: Selection, layers: int) -> bool:
    """Only the last layer's rows need the concept passes."""
    return selection.layers is None or layers - 1 in selection.layers


def lens_summary(name: str) -> Aggregate:
    """The summary of a lens experiment: NDCG per concept and layer."""
    return Aggregate(name, ("concept", "layer"), ("ndcg",), key=lambda t: t.concept + "-L" + t.layer.astype(str))


def lens_kind(name: str, prefix: tuple[str, ...] = ()) -> CaseKind:
    """The bench cases of a lens experiment: one concept at one cut (``<size>-<prefix>-<concept>-L<layer>``), the mean
    NDCG over prompts with its interval."""
    def cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
        return [Case(name, size, concept=c, layer=i, parts=(*prefix, c, f"L{i}"))
                for c in concepts.names for i in range(layers)]

    def wants(case: Case, concepts: ConceptSet) -> list[tuple[str, Selection]]:
        return [(case.size, Selection((name,), concepts=(case.concept,), layers=(case.layer,)))]

    return CaseKind(name, cases, wants, table=name, aggregate=Aggregate(name, ("concept", "layer"), ("ndcg",)))


def cut_rows(session: Session, wanted: pd.DataFrame, table: str, lens: "TunedLens | None" = None) -> pd.DataFrame:
    """Compute (or read from the store table ``table``) the rows of ``wanted``: ndcg, whether the concept is
    recognized among its category's, and the top-5 classes (AudioSet labels, or CLAP texts) per (concept, layer,
    prompt). With ``lens`` each cut is followed by its translator."""
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

    return session.label(fill_table(session.store, table, wanted, IDS, compute, batches, table))
