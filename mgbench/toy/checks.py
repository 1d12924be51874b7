"""The toy world's own checks: what a build must reach.

``classifier_accuracy`` and ``prompt_following`` are the issue's targets (>= 90% on held-out clips; >= 80%
of sampled clips, per category that enters the decoder). Prompt following is measured the way ``mgbench
run`` measures recognition at the full model: a ``Session`` on the built folder with the run's default
settings for a planted model (float64 with ``--dtype auto``, the classifier ``planted.json`` names, 1 s
clips, seed 0), whose DecoderLens rows at the last layer are the baseline clips; a run's default 2
prompts per concept are the first 2 of the build's 10 (the sampling noise is keyed by the prompt).
``planted_truth`` (``toy.planted``) is re-exported here, where it was first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..classify.loading import load_classifier
from ..concepts.concept_set import load_concepts
from ..engine.runner import GenerationSettings
from ..experiments.decoderlens import decoderlens_grid, run_decoderlens
from ..experiments.session import RunConfig, Session
from ..zoo.loading import load_musicgen
from .classifier import concept_accuracy, render
from .codec import random_fills
from .musicgen import FRAMES
from .planted import planted_truth
from .world import FRAME_RATE, SAMPLE_RATE, ToyWorld

__all__ = ["HELD_OUT_SEED", "RUN_SECONDS", "TARGETS", "classifier_accuracy", "following_config", "planted_truth",
           "prompt_following"]

#: what the toy world must reach (issue 11)
TARGETS = {"classifier_accuracy": 0.9, "prompt_following": 0.8}
#: seeds no training run uses: the classifier check's clips are held out
HELD_OUT_SEED = 10_000
#: a planted model's default clip length in ``mgbench run`` (``zoo.worlds.TOY_RUN``): the training clips' length
RUN_SECONDS = FRAMES / FRAME_RATE


def classifier_accuracy(musicgen: Path, classifier: str, clips: int = 400) -> dict[str, float]:
    """Top-1 among each category's concepts on ``clips`` held-out clips of the world, rendered by the codec of the
    model in ``musicgen``, heard by ``classifier`` (a name or folder)."""
    concepts = load_concepts()
    world = ToyWorld.from_concepts(concepts)
    codec = load_musicgen(str(musicgen)).model.audio_encoder
    heard = load_classifier(classifier)
    rng = np.random.default_rng(HELD_OUT_SEED)
    fills = random_fills(world, clips, rng)
    audio = render(world, codec, fills, frames=FRAMES, rng=rng)
    with torch.no_grad():
        logits = torch.cat([heard.logits(audio[s:s + 100], SAMPLE_RATE) for s in range(0, clips, 100)])
    return concept_accuracy(logits, concepts, fills)


def following_config(musicgen: Path, prompts: int = 10, cache: "str | None" = None) -> RunConfig:
    """The run a planted model gets by default (``mgbench run --model FOLDER``), with ``prompts`` per concept."""
    return RunConfig(model=str(musicgen), prompts=prompts, generation=GenerationSettings(seconds=RUN_SECONDS, seed=0),
                     cache=cache)


def prompt_following(musicgen: Path, prompts: int = 10) -> tuple[dict[str, float], dict]:
    """Per category, the fraction of the baseline clips of each concept's first ``prompts`` prompts whose concept
    is recognized among its category's (DecoderLens at the full model), and the settings it ran with."""
    with tempfile.TemporaryDirectory() as cache:
        session = Session(following_config(musicgen, prompts, cache))
        last = session.musicgen.num_layers - 1
        rows = run_decoderlens(session, decoderlens_grid(session.concepts.names, [last], prompts))
        c = session.config
        classifier = c.classifier_name  # a folder beside the build's model (--from-scratch): said relative to it
        classifier = os.path.relpath(classifier, musicgen) if Path(classifier).is_absolute() else classifier
        settings = {"prompts": prompts, "seconds": c.generation.seconds, "seed": c.generation.seed,
                    "dtype": c.resolved_dtype, "classifier": classifier, "layer": last}
    following = rows.groupby("category", sort=False)["recognized"].mean()
    return {category: float(value) for category, value in following.items()}, settings
