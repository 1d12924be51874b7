"""A short calibration of generation speed on a device that is here, for ``mgbench plan``.

Generating a whole batch of real clips to time it takes minutes on a CPU (a batch of 256 clips of 4 s). Instead,
a few decoder steps are timed on a decoder of the model's width with one and with two of its layers (random
weights: the time does not depend on their values), at two batch sizes; the difference gives one layer's cost and
the rest the embeddings' and heads', so the model's step costs ``fixed + layers * per_layer``; the cost model
(``cost.flops_per_clip``) carries a step at the start of a clip to all the clip's steps (the attention over the
cache grows). Only the decoder is timed: on the CPU it is 88-90% of a clip's time (``shared/notes``), the text
encoder, sampling, codec and classifier the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..zoo.architectures import ModelFacts
from .cost import flops_per_clip, flops_per_step
from .profile import sync

#: decoder steps timed per configuration, after one warm-up step
STEPS = 3


@dataclass(frozen=True)
class Calibration:
    """Seconds per decoder step of the whole model at each timed batch size, and clips per second at ``batch``."""

    step_seconds: dict[int, float]
    batch: int
    clips_per_s: float
    what: str  # one line: what was measured


def _decoder(facts: ModelFacts, layers: int, device: str, dtype: torch.dtype) -> torch.nn.Module:
    from transformers import MusicgenDecoderConfig, MusicgenForCausalLM

    from ..quiet import quiet_transformers

    s = facts.shape
    config = MusicgenDecoderConfig(vocab_size=s.vocab, num_codebooks=s.codebooks, hidden_size=s.hidden,
                                   ffn_dim=s.ffn, num_hidden_layers=layers, num_attention_heads=s.heads,
                                   max_position_embeddings=facts.max_positions, pad_token_id=s.vocab,
                                   bos_token_id=s.vocab, decoder_start_token_id=s.vocab)
    with quiet_transformers():
        return MusicgenForCausalLM(config).to(device=device, dtype=dtype).eval()


@torch.no_grad()
def _step_seconds(decoder: torch.nn.Module, rows: int, text_tokens: int) -> float:
    """The median seconds of one cached step of ``decoder`` for ``rows`` decoder rows, after a first step."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    config, param = decoder.config, next(decoder.parameters())
    states = torch.randn(rows, text_tokens, config.hidden_size, device=param.device, dtype=param.dtype)
    frame = torch.full((rows * config.num_codebooks, 1), config.pad_token_id, device=param.device)
    cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    times = []
    for i in range(STEPS + 1):
        sync(param.device)
        start = time.perf_counter()
        decoder(input_ids=frame, encoder_hidden_states=states, cache=cache, use_cache=True)
        sync(param.device)
        times.append(time.perf_counter() - start) if i else None
    return sorted(times)[len(times) // 2]


def calibrate(facts: ModelFacts, seconds: float, batch: int, device: str, dtype: torch.dtype,
              guided: bool = True) -> Calibration:
    """Clips per second of the model ``facts`` describes at ``batch`` prompts per call on ``device``, from a few
    timed steps (the module's method); also timed at a quarter of ``batch`` to show how it scales."""
    shape, text = facts.shape, facts.shape.text_tokens
    batches = sorted({max(1, batch // 4), batch})
    timed = {layers: {b: _step_seconds(_decoder(facts, layers, device, dtype), b * (2 if guided else 1), text)
                      for b in batches} for layers in (1, 2)}
    step = {b: timed[1][b] + (shape.layers - 1) * max(0.0, timed[2][b] - timed[1][b]) for b in batches}
    n = facts.steps(seconds)
    measured_flops = sum(flops_per_step(shape, p) for p in range(2, STEPS + 2)) / STEPS
    clip = step[batch] * flops_per_clip(shape, seconds) / measured_flops  # all n steps, attention grown
    what = (f"measured here: {STEPS} decoder steps at batch {' and '.join(map(str, batches))} on a decoder of 1 "
            f"and 2 of the model's {shape.layers} layers, extrapolated to {shape.layers} layers and the {n} steps of "
            "a clip by the cost model (decoder only)")
    return Calibration(step, batch, batch / clip, what)
