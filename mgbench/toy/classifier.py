"""The toy classifier: a small PaSST (hear21passt's code) trained to hear the toy world's concepts.

Trained on the codec's rendering of clips of the toy world (a quarter of them scrambled), so that the
Table 1 labels of the concepts in a clip score high: a softmax cross-entropy over the instrument
concepts' odds labels and one over the genre concepts' (what the accuracy and the intervention odds
read), plus a binary cross-entropy over all 527 labels (every relevant label high, the rest low).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..classify.passt import passt_wrapper, quiet_passt
from ..concepts.concept_set import ConceptSet
from ..concepts.recognition import recognition
from ..progress import progress
from .codec import decode, random_fills
from .world import ToyWorld

TOY_PASST = dict(embed_dim=64, depth=2, num_heads=4)
CATEGORIES = ("instrument", "genre")


def concept_of(concepts: ConceptSet, slot: str, word: str):
    """The concept whose word fills ``slot`` with ``word`` (None: a word no concept names, e.g. flute)."""
    return next((c for c in concepts.concepts if c.slot == slot and c.word == word), None)


def targets(concepts: ConceptSet, fills: list[dict[str, str]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Multi-hot relevant labels ``(clips, 527)``, and per category the index of each clip's concept among that
    category's concepts (-100, ignored by the cross-entropy, when the word names no concept)."""
    relevant = torch.zeros(len(fills), 527)
    classes = {category: torch.full((len(fills),), -100) for category in CATEGORIES}
    for row, fill in enumerate(fills):
        for category in CATEGORIES:
            members = concepts.members(category)
            concept = concept_of(concepts, members[0].slot, fill[members[0].slot])
            if concept is not None:
                relevant[row, list(concept.label_indices)] = 1.0
                classes[category][row] = members.index(concept)
    return relevant, classes


def odds_labels(concepts: ConceptSet, category: str) -> list[int]:
    return [c.odds_label for c in concepts.members(category)]


def render(world: ToyWorld, codec: torch.nn.Module, fills: list[dict[str, str]], frames: int,
           rng: np.random.Generator, scrambled: float = 0.0, chunk: int = 64) -> torch.Tensor:
    """Audio ``(clips, samples)`` of a clip of each fill (a fraction ``scrambled`` scrambled), through the codec."""
    codes = torch.from_numpy(world.sample(fills, frames, rng, scrambled))
    quantizers = codec.quantizer.layers[:codes.shape[1]]
    tables = torch.nn.ModuleList(torch.nn.Embedding.from_pretrained(q.codebook.embed) for q in quantizers)
    with torch.no_grad():
        return torch.cat([decode(codec, tables, codes[s:s + chunk]) for s in range(0, len(codes), chunk)])


def train_classifier(world: ToyWorld, codec: torch.nn.Module, concepts: ConceptSet, steps: int, clips: int,
                     seed: int, frames: int = 50, batch: int = 32) -> torch.nn.Module:
    """A PaSST wrapper (logits mode) trained on ``clips`` rendered clips of the toy world."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    fills = random_fills(world, clips, rng)
    audio = render(world, codec, fills, frames, rng, scrambled=0.25)
    relevant, classes = targets(concepts, fills)
    labels = {category: odds_labels(concepts, category) for category in CATEGORIES}
    wrapper = passt_wrapper(dict(TOY_PASST))
    optimizer = torch.optim.AdamW(wrapper.net.parameters(), lr=3e-3, weight_decay=0.01)
    wrapper.train()
    wrapper.mel.eval()  # no SpecAugment: its time masks (192 frames) would blank a whole 1 s clip
    for _ in progress(range(steps), "toy classifier", unit="step"):
        rows = torch.from_numpy(rng.integers(clips, size=batch))
        with quiet_passt():  # hear21passt prints tensor shapes on its first forward
            logits = wrapper(audio[rows])
        loss = F.binary_cross_entropy_with_logits(logits, relevant[rows]) * 10
        for category in CATEGORIES:
            loss = loss + F.cross_entropy(logits[:, labels[category]], classes[category][rows], ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return wrapper.eval()


def concept_accuracy(logits: torch.Tensor, concepts: ConceptSet, fills: list[dict[str, str]]) -> dict[str, float]:
    """Per category, the fraction of clips (naming a concept of it) whose top label among the category's concepts'
    odds labels is their own concept's."""
    out, audioset = {}, recognition(concepts)
    for category in CATEGORIES:
        slot = concepts.members(category)[0].slot
        named = [(row, concept_of(concepts, slot, fill[slot])) for row, fill in zip(logits, fills)]
        out[category] = float(np.mean([audioset.recognized(row, c) for row, c in named if c is not None]))
    return out
