"""How many decoder rows go into one generate call: sized from the model's facts and the device's free memory."""

from __future__ import annotations

import os

import torch

from ..zoo.architectures import ModelFacts
from ..zoo.loading import LoadedMusicgen

CPU_CAP, CUDA_CAP = 256, 2048


def row_bytes(facts: ModelFacts, seconds: float, dtype_bytes: int = 4) -> int:
    """Memory one prompt row needs while generating: KV caches of both CFG halves, logits, audio (x1.5 slack)."""
    shape, n = facts.shape, facts.steps(seconds)
    kv = 2 * 2 * shape.layers * shape.hidden * (n + 64) * dtype_bytes
    logits = 2 * shape.codebooks * shape.vocab * 4 * 4  # a few float32 copies of the scores
    audio = 32 * round(seconds * facts.sample_rate) * 4  # the codec's widest activations
    return int(1.5 * (kv + logits + audio))


def memory_budget(device: torch.device) -> int:
    """Bytes a run may fill: 80% of the CUDA device's free memory, or 25% of the free RAM."""
    if device.type == "cuda":
        return int(0.8 * torch.cuda.mem_get_info(device)[0])
    return int(0.25 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def auto_batch_size(facts: ModelFacts, seconds: float, cuda: bool, budget_bytes: int, dtype_bytes: int = 4) -> int:
    """The largest row count whose memory fits ``budget_bytes``, capped (``CUDA_CAP`` on a GPU, ``CPU_CAP``)."""
    return max(1, min(CUDA_CAP if cuda else CPU_CAP, budget_bytes // row_bytes(facts, seconds, dtype_bytes)))


def loaded_batch_size(loaded: LoadedMusicgen, seconds: float) -> int:
    """``auto_batch_size`` for a loaded model on its device, in its decoder's dtype."""
    dtype_bytes = next(loaded.model.decoder.parameters()).element_size()
    return auto_batch_size(loaded.facts, seconds, loaded.device.type == "cuda", memory_budget(loaded.device),
                           dtype_bytes)


def is_oom(error: BaseException) -> bool:
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(error).lower()
