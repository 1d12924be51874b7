"""Fixed shapes for a sweep: one compiled graph per batch size, compiled and recorded once.

A compiled step is specialised to its input shapes, and a CUDA graph replays fixed addresses. Left alone, a
sweep meets a new text length with nearly every batch (the cross-attention cache is sized to the batch's
longest prompt), a smaller last batch per concept, and a new KV cache per call: each is a recompile (30-70 s
on a GPU; past torch's recompile limit the step would fall back to eager) or a re-recorded CUDA graph. So:

- **Text** is padded to buckets of ``TEXT_BUCKET`` tokens (a session pins the bucket of its longest prompt,
  so all its batches share one length). Under masked padding (transformers') the padded positions are
  masked: the same numbers, mathematically (on the CPU in float64 the same codes, tested). Under
  ``text_padding="audiocraft"`` (padded positions attended to as zero vectors, up to the batch's longest
  prompt) the cross-attention mask attends to the batch's longest prompt's positions and masks the bucket's
  rest: again audiocraft's numbers, in a fixed shape.
- **Batches** smaller than the compiled size are padded with copies of their last prompt (rows whose results
  are dropped); with common random numbers a row's clip does not depend on the rows beside it.
- **One KV cache per shape** per model, reset in place for each batch (``Workspace``), as are the codes'
  buffers of the in-graph sampler: their addresses never change, so a CUDA graph is recorded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch
from transformers.cache_utils import EncoderDecoderCache

from .decode import new_cache
from .slots import static

#: text lengths are padded to a multiple of this many tokens
TEXT_BUCKET = 16
WORKSPACE_ATTRIBUTE = "_mgbench_workspace"
T = TypeVar("T")


def bucket(n: int, size: int) -> int:
    """``n`` rounded up to a multiple of ``size``."""
    return -(-n // size) * size


def padded(items: Sequence[T], size: int) -> list[T]:
    """``items`` followed by copies of its last item up to ``size`` items (rows whose results are dropped)."""
    return list(items) + [items[-1]] * max(0, size - len(items))


def fixed_text(input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int, pad_id: int,
               text_padding: str = "masked") -> tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]:
    """Tokens padded on the right to ``length``: ``(input_ids, attention_mask, cross_mask)``, where ``cross_mask`` is
    what the decoder's cross-attention attends to: None for the tokens (``masked``), or every position up to the
    batch's longest prompt (``audiocraft``: padding attended to as zero vectors, the rest of the bucket masked)."""
    extra = length - input_ids.shape[1]
    if extra < 0:
        raise ValueError(f"cannot pad {input_ids.shape[1]} tokens to {length}")
    ids = torch.nn.functional.pad(input_ids, (0, extra), value=pad_id)
    mask = torch.nn.functional.pad(attention_mask, (0, extra), value=0)
    if text_padding == "masked":
        return ids, mask, None
    longest = int(attention_mask.sum(dim=1).max())
    cross = (torch.arange(length) < longest).to(mask.dtype).expand_as(mask).contiguous()
    return ids, mask, cross


class Workspace:
    """A model's buffers of fixed shape: KV caches and the in-graph sampler's codes, each allocated once per shape and
    reset in place for every batch. Kept with the model, so every runner of it shares them (runs are sequential)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.caches: dict[tuple[int, ...], EncoderDecoderCache] = {}
        self.buffers: dict[tuple[int, ...], tuple[torch.Tensor, ...]] = {}

    @classmethod
    def on(cls, model: torch.nn.Module) -> "Workspace":
        """The workspace of ``model``, made on first use."""
        if getattr(model, WORKSPACE_ATTRIBUTE, None) is None:
            setattr(model, WORKSPACE_ATTRIBUTE, cls(model))
        return getattr(model, WORKSPACE_ATTRIBUTE)

    def cache(self, rows: int, length: int, text_length: int, cross_rows: int) -> EncoderDecoderCache:
        """An empty static KV cache for ``rows`` decoder rows, ``length`` frames and ``text_length`` tokens, whose
        cross-attention part holds ``cross_rows`` rows: the shape's own cache, reset in place (made on first use)."""
        key = (rows, length, text_length, cross_rows)
        kv = self.caches.get(key)
        if kv is None:
            self.caches[key] = kv = new_cache(self.model, "static", length, text_length)
        else:
            kv.reset()
        return kv

    def codes(self, pattern: torch.Tensor, start: int,
              keys: "torch.Tensor | None" = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(codes, pattern, t, keys)`` buffers for a new batch of ``pattern``'s shape, each allocated once per shape
        at a fixed address and filled in place: the codes (the pattern with the start token in column 0), the
        pattern, the frame counter ``t`` (0) and the sampler's per-row noise ``keys`` (if any)."""
        key = tuple(pattern.shape)
        if key not in self.buffers:
            self.buffers[key] = (static(torch.empty_like(pattern)), static(torch.empty_like(pattern)),
                                 static(torch.zeros(1, dtype=torch.long, device=pattern.device)),
                                 static(torch.zeros(pattern.shape[0], dtype=torch.long, device=pattern.device)))
        codes, fixed, t, row_keys = self.buffers[key]
        fixed.copy_(pattern)
        codes.copy_(pattern)
        codes[:, 0] = start
        t.zero_()
        if keys is not None:
            row_keys.copy_(keys)
        return codes, fixed, t, row_keys
