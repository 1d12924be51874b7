"""The toy world's own checks and ground truth: what a build must reach, and what was planted where.

``planted_truth`` reads the ground truth off the weights (which cross-attentions are exactly zero) and
sorts every site by how the text can reach it; ``classifier_accuracy`` and ``prompt_following`` are
the issue's targets (>= 90% on held-out clips; >= 80% of sampled clips with the default settings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..classify.passt import load_passt_folder
from ..concepts.concept_set import load_concepts
from ..concepts.recognition import recognition
from ..engine.runner import GenerationSettings, MusicgenRunner
from ..engine.sites import PAPER_COMPONENTS, all_sites
from ..zoo.loading import load_musicgen
from .classifier import CATEGORIES, concept_accuracy, render
from .codec import random_fills
from .world import SAMPLE_RATE, ToyWorld

#: what the toy world must reach (issue 11)
TARGETS = {"classifier_accuracy": 0.9, "prompt_following": 0.8}
#: seeds no training run uses: the checks' clips are held out
HELD_OUT_SEED = 10_000


def planted_truth(model: torch.nn.Module) -> dict:
    """Every site of ``model``'s decoder, by how the prompt's text can reach it, read off the weights.

    - ``entry``: the cross-attention whose output projection is not zero: the text's only way in;
    - ``no_path``: cross-attentions with a zero output projection: output exactly 0, no causal path;
    - ``downstream``: sites after the entry in the same step (they read its output through the residual);
    - ``through_codes``: sites before the entry: the text reaches them only through the codes generated
      at earlier steps (concept information travels there too, but only what the entry put in).
    """
    layers = model.decoder.model.decoder.layers
    open_layers = [i for i, layer in enumerate(layers) if layer.encoder_attn.out_proj.weight.any()]
    if len(open_layers) != 1:
        raise ValueError(f"a planted toy MusicGen has exactly one open cross-attention; this one has {open_layers}")
    entry = open_layers[0]
    order = {"self_attn": 0, "cross_attn": 1, "mlp": 2}  # the order of a decoder layer's components
    roles: dict[str, str] = {}
    for site in all_sites(len(layers), PAPER_COMPONENTS):
        if site.component == "cross_attn":
            roles[str(site)] = "entry" if site.layer == entry else "no_path"
        elif (site.layer, order[site.component]) > (entry, order["cross_attn"]):
            roles[str(site)] = "downstream"
        else:
            roles[str(site)] = "through_codes"
    return {"entry_layer": entry, "sites": roles,
            "statement": f"the prompt's text enters the decoder only through L{entry}.cross_attn; every other "
                         "cross-attention's output projection is zero (its output is exactly 0 for every input)"}


def classifier_accuracy(folder: Path, clips: int = 400) -> dict[str, float]:
    """Top-1 among each category's concepts on ``clips`` held-out clips of the world, rendered by the toy codec."""
    concepts = load_concepts()
    world = ToyWorld.from_concepts(concepts)
    codec = load_musicgen(str(folder / "musicgen")).model.audio_encoder
    classifier = load_passt_folder(folder / "classifier")
    rng = np.random.default_rng(HELD_OUT_SEED)
    fills = random_fills(world, clips, rng)
    audio = render(world, codec, fills, frames=50, rng=rng)
    with torch.no_grad():
        logits = torch.cat([classifier.logits(audio[s:s + 100], SAMPLE_RATE) for s in range(0, clips, 100)])
    return concept_accuracy(logits, concepts, fills)


def prompt_following(folder: Path, prompts: int = 10, seconds: float = 1.0) -> dict[str, float]:
    """Per category, the fraction of sampled clips (default settings: top-k 250, temperature 1, guidance 3) of
    each concept's first ``prompts`` prompts in which the toy classifier's top concept of that category is
    the prompted one."""
    concepts = load_concepts()
    loaded = load_musicgen(str(folder / "musicgen"), dtype=torch.float64)
    classifier = load_passt_folder(folder / "classifier")
    runner = MusicgenRunner(loaded, GenerationSettings(seconds=seconds, seed=HELD_OUT_SEED))
    hits: dict[str, list[bool]] = {category: [] for category in CATEGORIES}
    audioset = recognition(concepts)
    for concept in concepts.concepts:
        audio = runner.generate(concepts.prompts(concept.name, prompts))
        logits = classifier.logits(audio.float(), loaded.sample_rate)
        hits[concept.category] += [audioset.recognized(row, concept) for row in logits]
    return {category: float(np.mean(h)) for category, h in hits.items()}
