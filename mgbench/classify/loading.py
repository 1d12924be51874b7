"""Load an AudioSet classifier by name: ``passt`` (the paper's), ``toy`` (shipped, trained on the toy world),
``tiny`` (random, offline) or a saved folder."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from ..errors import unknown
from ..paths import content_identity, toy_folder
from .passt import load_passt_folder, load_pretrained_passt, passt_checkpoint_path, passt_identity
from .tiny import tiny_passt_folder

CLASSIFIER_NAMES = ("passt", "toy", "tiny")


class AudioClassifier(Protocol):
    """Anything that turns mono waveforms into AudioSet logits."""

    name: str
    identity: str
    sample_rate: int

    def logits(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``(batch, samples)`` mono audio at ``sample_rate`` -> ``(batch, classes)`` float32 logits (527 AudioSet
        classes; CLAP, ``clap.ClapScorer``: one per text)."""
        ...


def load_classifier(name: str = "toy", device: str = "cpu") -> AudioClassifier:
    """Load an AudioSet classifier: ``passt`` (paper), ``toy``, ``tiny`` or a folder saved by ``save_passt``."""
    if name == "toy":
        return load_passt_folder(toy_folder() / "classifier").to(device)
    if name == "tiny":
        return load_passt_folder(tiny_passt_folder()).to(device)
    if name == "passt":
        return load_pretrained_passt().to(device)
    if Path(name).is_dir():
        return load_passt_folder(name).to(device)
    raise unknown("classifier", name, CLASSIFIER_NAMES,
                  "Or pass a folder written by mgbench.classify.passt.save_passt")


def classifier_identity(name: str) -> "str | None":
    """The identity ``load_classifier(name)`` would report, if its weights are on this machine (else None), without
    loading it."""
    if name == "passt":
        checkpoint = passt_checkpoint_path()
        return passt_identity(checkpoint) if checkpoint.is_file() else None
    folder = toy_folder() / "classifier" if name == "toy" else tiny_passt_folder() if name == "tiny" else Path(name)
    return content_identity(folder) if folder.is_dir() else None
