"""CLAP, a zero-shot audio-text recognizer (LAION's ``laion/clap-htsat-unfused`` through transformers' ``ClapModel``).

A ``ClapScorer`` is bound to texts (the concept set's, ``concepts.recognition``) and turns clips into CLAP's
``logits_per_audio`` over them: exp(logit_scale_a) times the cosine similarity of each clip's audio embedding and
each text's embedding. Clips are scored on their first ``max_length_s`` seconds (10 s): CLAP's feature extractor
would crop a longer clip at a random offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import MissingWeightsError, unknown
from ..paths import content_identity
from ..quiet import quiet_transformers
from .tiny_clap import tiny_clap_folder
from .waveforms import mono_at_rate

CLAP_HUB = "laion/clap-htsat-unfused"
#: ``clap``: the hub checkpoint; ``tiny``: random, built offline (tests, random models)
CLAP_NAMES = ("clap", "tiny")


class ClapScorer:
    """Clips -> ``(batch, texts)`` CLAP logits against fixed texts (embedded once)."""

    def __init__(self, model: torch.nn.Module, processor, texts: Sequence[str], name: str, identity: str):
        self.model = model.eval()
        self.processor = processor
        self.texts = tuple(texts)
        self.name = name
        self.identity = identity
        self.sample_rate = processor.feature_extractor.sampling_rate
        self.text_matrix = self.text_embeds()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def text_embeds(self) -> torch.Tensor:
        """``(texts, dim)`` unit-norm text embeddings."""
        inputs = self.processor.tokenizer(list(self.texts), padding=True, return_tensors="pt").to(self.device)
        return self.model.get_text_features(**inputs).pooler_output

    @torch.no_grad()
    def audio_embeds(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``(batch, dim)`` unit-norm audio embeddings of clips (their first ``max_length_s`` seconds)."""
        extractor = self.processor.feature_extractor
        clips = mono_at_rate(waveforms, sample_rate, self.sample_rate, torch.device("cpu"))
        clips = clips[:, :extractor.nb_max_samples]
        features = extractor(list(clips.numpy()), sampling_rate=self.sample_rate, return_tensors="pt")
        return self.model.get_audio_features(input_features=features["input_features"].to(self.device),
                                             is_longer=features["is_longer"].to(self.device)).pooler_output

    @torch.no_grad()
    def logits(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``(batch, samples)`` audio at ``sample_rate`` -> ``(batch, texts)`` float32 logits."""
        scale = self.model.logit_scale_a.exp()
        return (scale * self.audio_embeds(waveforms, sample_rate) @ self.text_matrix.T).float()

    def to(self, device: str) -> "ClapScorer":
        self.model.to(device)
        self.text_matrix = self.text_matrix.to(device)
        return self


def clap_folder(name: str, allow_download: bool = False) -> Path:
    """The local folder of CLAP ``name``: ``tiny`` (built on first use), a folder, or a hub id (``clap``:
    ``CLAP_HUB``) from the Hugging Face cache (downloaded with ``allow_download``)."""
    if name == "tiny":
        return tiny_clap_folder()
    if Path(name).is_dir():
        return Path(name)
    repo = CLAP_HUB if name == "clap" else name
    if "/" not in repo:
        raise unknown("CLAP model", name, CLAP_NAMES, "Or pass a folder or a hub id of a ClapModel")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, local_files_only=not allow_download))
    except (LocalEntryNotFoundError, OSError):
        raise MissingWeightsError(
            f"CLAP weights {repo!r} are not in the local Hugging Face cache. Add --download where the hub can be "
            f"reached, or run `hf download {repo}` on a machine with internet and copy the cache (HF_HOME), or "
            "pass a folder with --classifier PATH") from None


def load_clap(name: str, texts: Sequence[str], device: str = "cpu", allow_download: bool = False) -> ClapScorer:
    """CLAP ``name`` (``CLAP_NAMES``, a folder or a hub id) scoring clips against ``texts``."""
    from transformers import ClapModel, ClapProcessor

    folder = clap_folder(name, allow_download)
    try:
        with quiet_transformers():
            model = ClapModel.from_pretrained(folder, dtype=torch.float32)
            processor = ClapProcessor.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise MissingWeightsError(f"cannot load CLAP from {folder} ({e}); it needs the files that "
                                  "ClapModel.save_pretrained and ClapProcessor.save_pretrained write") from None
    return ClapScorer(model, processor, texts, name, content_identity(folder)).to(device)


def clap_identity(name: str) -> "str | None":
    """CLAP ``name``'s identity for cache keys (as ``load_clap`` gives it) if it is on this machine, else None."""
    try:
        return content_identity(clap_folder(name))
    except MissingWeightsError:
        return None
