"""Sampling with common random numbers.

A row's sampling noise depends only on (seed, prompt, step, codebook, token) -- not on the row's
position in the batch or the batch size -- so a prompt's baseline and its intervened runs share
their noise: any difference between them comes from the intervention. Sampling is Gumbel-max
(``argmax(logits / T + g)`` over the top-k tokens), which draws exactly from softmax(logits / T)
restricted to the top k. The uniforms come from a counter-based integer hash computed with torch
integer ops, so they are the same on every device and need no generator state.
"""

from __future__ import annotations

import hashlib

import torch
from transformers import LogitsProcessor, LogitsProcessorList

_M32 = 0xFFFFFFFF


def mix32(x: "torch.Tensor | int") -> "torch.Tensor | int":
    """A 32-bit integer hash (lowbias32) of int64 tensors or Python ints (the same values either way)."""
    x = x & _M32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _M32
    return x ^ (x >> 16)


def prompt_key(prompt: str) -> int:
    """A stable 32-bit key of a prompt's text."""
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "little")


def gumbel_noise(seed: int, row_keys: torch.Tensor, step: "int | torch.Tensor", tokens: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise for ``tokens`` (``(rows, n)`` token ids), a pure function of its arguments.

    The noise of a token depends on (seed, row key, step, token id) only, so computing it for a
    subset of tokens (the top k) gives the same values as computing it for the whole vocabulary.
    """
    base = mix32(mix32(mix32(seed) ^ row_keys.long()) ^ step)  # the seed is hashed on the host: nothing to copy
    columns = mix32(tokens.long() + 0x9E3779B9)
    bits = mix32(base[:, None] ^ columns) >> 8  # 24 bits: exact in float32
    uniform = (bits.float() + 0.5) / float(1 << 24)
    return -torch.log(-torch.log(uniform))


def sample_top_k(scores: torch.Tensor, row_keys: torch.Tensor, seed: int, step: "int | torch.Tensor", top_k: int,
                 temperature: float) -> torch.Tensor:
    """Top-k, temperature and Gumbel-max sampling of ``scores`` ``(rows, vocab)`` with each row's noise keyed by
    ``row_keys`` at ``step`` (an int, or a one-element tensor on the device: the same noise), ``(rows,)`` tokens."""
    vocab = scores.shape[-1]
    k = min(top_k or vocab, vocab)
    # noise for the top-k candidates only (its values do not depend on which tokens are asked for)
    values, tokens = torch.topk(scores.to(torch.promote_types(scores.dtype, torch.float32)) / temperature, k,
                                dim=-1, sorted=False)
    noisy = values + gumbel_noise(seed, row_keys, step, tokens)
    return tokens.gather(-1, noisy.argmax(dim=-1, keepdim=True))[:, 0]


class CommonNoiseSampler(LogitsProcessor):
    """Top-k, temperature and Gumbel-max sampling with per-prompt noise, as a logits processor.

    It returns 0 for the sampled token and -inf elsewhere, so the greedy step that follows it in
    ``generate`` picks exactly that token. ``prompt_keys`` has one key per prompt; scores arrive as
    ``(prompts * codebooks, vocab)`` after classifier-free guidance.
    """

    def __init__(self, prompt_keys: list[int], num_codebooks: int, seed: int, top_k: int = 250,
                 temperature: float = 1.0):
        if temperature <= 0:
            raise ValueError("temperature must be > 0 (use greedy decoding for temperature 0)")
        self.keys = torch.tensor(prompt_keys, dtype=torch.int64).repeat_interleave(num_codebooks)
        self.codebook = torch.arange(num_codebooks, dtype=torch.int64).repeat(len(prompt_keys))
        self.seed, self.top_k, self.temperature = seed, top_k, temperature
        self.row_keys: "torch.Tensor | None" = None  # per-row hash keys, made on the scores' device

    def sample(self, scores: torch.Tensor, step: int) -> torch.Tensor:
        """The sampled token of each row of ``scores`` ``(prompts * codebooks, vocab)`` at ``step`` (the length of
        the code sequence so far), ``(rows,)``."""
        rows = scores.shape[0]
        if rows != len(self.keys):
            raise RuntimeError(f"sampler set up for {len(self.keys)} rows, got {rows}")
        return sample_top_k(scores, self.device_keys(scores.device), self.seed, step, self.top_k, self.temperature)

    def device_keys(self, device: torch.device) -> torch.Tensor:
        """The per-row hash keys on ``device`` (what ``sample_top_k`` takes), made there once."""
        if self.row_keys is None or self.row_keys.device != device:
            keys, codebook = self.keys.to(device), self.codebook.to(device)
            self.row_keys = mix32(mix32(keys) + codebook * 0x632BE5AB)
        return self.row_keys

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        choice = self.sample(scores, input_ids.shape[-1])[:, None]
        return torch.full_like(scores, float("-inf")).scatter_(-1, choice, 0.0)


class SamplerLastList(LogitsProcessorList):
    """A processor list that keeps the sampler last.

    MusicGen's ``generate`` appends its classifier-free-guidance processor to the list it is given;
    guidance must run before sampling, so appended processors go in front of the sampler.
    """

    def append(self, processor: LogitsProcessor) -> None:
        at = len(self) - 1 if self and isinstance(self[-1], CommonNoiseSampler) else len(self)
        self.insert(at, processor)
