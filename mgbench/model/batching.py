"""How many decoder rows go into one generate call: memory-based sizing and out-of-memory back-off."""

from __future__ import annotations

import os
from collections.abc import Callable

import pandas as pd
import torch

from .loading import LoadedMusicgen

CPU_CAP, CUDA_CAP = 256, 2048


def row_bytes(loaded: LoadedMusicgen, seconds: float) -> int:
    """Memory one prompt row needs while generating: KV caches of both CFG halves, logits, audio (x1.5 slack)."""
    cfg = loaded.model.decoder.config
    n = round(seconds * loaded.frame_rate) + loaded.num_codebooks - 1
    dtype_bytes = next(loaded.model.decoder.parameters()).element_size()
    kv = 2 * 2 * cfg.num_hidden_layers * cfg.hidden_size * (n + 64) * dtype_bytes
    logits = 2 * loaded.num_codebooks * cfg.vocab_size * 4 * 4  # a few float32 copies of the scores
    audio = 32 * round(seconds * loaded.sample_rate) * 4  # the codec's widest activations
    return int(1.5 * (kv + logits + audio))


def auto_batch_size(loaded: LoadedMusicgen, seconds: float, budget_bytes: "int | None" = None) -> int:
    """The largest row count whose memory fits the budget: 80% of free CUDA memory, or 25% of free RAM."""
    cuda = loaded.device.type == "cuda"
    if budget_bytes is None:
        if cuda:
            budget_bytes = int(0.8 * torch.cuda.mem_get_info(loaded.device)[0])
        else:
            budget_bytes = int(0.25 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return max(1, min(CUDA_CAP if cuda else CPU_CAP, budget_bytes // row_bytes(loaded, seconds)))


def is_oom(error: BaseException) -> bool:
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(error).lower()


class OomBackoff:
    """Runs ``compute`` on a batch; on out-of-memory, halves the batch (and every later one) and retries."""

    def __init__(self, compute: Callable[[pd.DataFrame], pd.DataFrame], store: Callable[[pd.DataFrame], None]):
        self.compute, self.store = compute, store
        self.limit: "int | None" = None

    def __call__(self, batch: pd.DataFrame) -> None:
        size = len(batch) if self.limit is None else min(self.limit, len(batch))
        for start in range(0, len(batch), size):
            piece = batch.iloc[start:start + size]
            try:
                self.store(self.compute(piece))
            except (RuntimeError, MemoryError) as e:
                if not is_oom(e) or len(piece) == 1:
                    raise
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self.limit = max(1, len(piece) // 2)
                self(piece)
