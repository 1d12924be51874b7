"""The fixed-shape decode loop: ``decode.decode_codes``'s arithmetic with a sweep's one step and its levers.

A runner with fixed shapes (``runner.MusicgenRunner``: compiled, on a GPU, or with a decoder lever) generates
every pass (baselines, captures, cuts, edits) through ``fixed_codes``: the text already padded to its bucket
(``workspace.fixed_text``), the model's KV cache for the shape reset in place (``workspace.Workspace``), the
decoder step compiled once per model (``decode.compiled_decoder``) or eager, and the levers of ``levers.Levers``.
With ``sampler_in_graph`` each frame is one call of ``frame_step`` (compiled with the step's mode): the decoder,
guidance, the sampler and the write of the frame's codes, driven by a frame counter on the device, so the loop
launches one graph per frame and reads nothing back.
"""

from __future__ import annotations

import contextlib

import torch
from transformers.cache_utils import EncoderDecoderCache

from . import decode
from .decode import compiled_decoder, delay_pattern, encode_text, filled_length, greedy, guide, loop_clock, undelayed
from .levers import NO_LEVERS, Levers, conditional_cross, filled_attention
from .sampling import CommonNoiseSampler, sample_top_k
from .workspace import Workspace

FRAME_STEPS_ATTRIBUTE = "_mgbench_frame_steps"


def frame_step(decoder: torch.nn.Module, codes: torch.Tensor, pattern: torch.Tensor, t: torch.Tensor,
               states: torch.Tensor, mask: "torch.Tensor | None", kv: EncoderDecoderCache, guidance_scale: float,
               keys: "torch.Tensor | None", sampling: "tuple[int, int, float] | None", filled: int) -> None:
    """One frame, all on the device: column ``t`` of ``codes`` through the decoder, guidance, the sampler
    (``sampling`` = seed, top-k, temperature with the rows' noise ``keys``; None: greedy), column ``t + 1`` written
    where ``pattern`` says -1, ``t`` advanced. The same operations as ``decode._decode_steps``, so the same codes."""
    frame = codes.index_select(1, t)
    guided = guidance_scale > 1
    extra = {"filled": filled} if filled else {}
    out = decoder(input_ids=frame.repeat(2, 1) if guided else frame, encoder_hidden_states=states,
                  encoder_attention_mask=mask, cache=kv, use_cache=True, **extra)
    scores = out.logits[:, -1].to(dtype=torch.float32, copy=True)
    if guided:
        scores = guide(scores, guidance_scale)
    step = t + 1
    picked = greedy(scores, step) if sampling is None else sample_top_k(scores, keys, sampling[0], step, *sampling[1:])
    column = pattern.index_select(1, step)[:, 0]
    codes.index_copy_(1, step, torch.where(column == -1, picked, column)[:, None])
    t.add_(1)


def compiled_frame_step(model: torch.nn.Module, mode: "str | None"):
    """``frame_step``, compiled with ``mode`` once per model (None: as it is)."""
    if mode is None:
        return frame_step
    compiled = getattr(model, FRAME_STEPS_ATTRIBUTE, {})
    if mode not in compiled:
        compiled_decoder(model, mode)  # the persistent hooks first, the recompile limit raised
        compiled[mode] = torch.compile(frame_step, mode=mode, dynamic=False)
        setattr(model, FRAME_STEPS_ATTRIBUTE, compiled)
    return compiled[mode]


def _levers(model: torch.nn.Module, levers: Levers, guided: bool) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    if levers.filled_attention:
        stack.enter_context(filled_attention(model))
    if levers.conditional_cross and guided:
        stack.enter_context(conditional_cross(model))
    return stack


def fixed_codes(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                cross_mask: "torch.Tensor | None", steps: int, guidance_scale: float,
                sampler: "CommonNoiseSampler | None", levers: Levers = NO_LEVERS,
                compile_mode: "str | None" = None) -> torch.Tensor:
    """``decode.decode_codes`` for tokens padded to a fixed length, with the model's KV cache for the shape, the
    decoder compiled with ``compile_mode`` (or eager) and ``levers``: undelayed codes ``(batch, codebooks, frames)``."""
    guided, start = guidance_scale > 1, model.generation_config.decoder_start_token_id
    states, mask = encode_text(model, input_ids, attention_mask, guided, cross_mask)
    states = states.to(next(model.decoder.parameters()).dtype)  # what the decoder's cast hook gives it
    rows = states.shape[0]
    kv = Workspace.on(model).cache(rows, steps + 1, states.shape[1],
                                   rows // 2 if levers.conditional_cross and guided else rows)
    pattern = delay_pattern(model, input_ids.shape[0], steps, input_ids.device)
    with decode.presized_positions(model, steps + 1), _levers(model, levers, guided), loop_clock():
        if levers.sampler_in_graph:
            codes, pattern, t, keys = Workspace.on(model).codes(
                pattern, start, None if sampler is None else sampler.device_keys(pattern.device))
            sampling = None if sampler is None else (sampler.seed, sampler.top_k, sampler.temperature)
            step = compiled_frame_step(model, compile_mode)
            for i in range(codes.shape[1] - 1):
                size = filled_length(i + 1, levers.filled_attention, codes.shape[1]) if levers.filled_attention else 0
                (step if i else frame_step)(model.decoder, codes, pattern, t, states, mask, kv, guidance_scale, keys,
                                            sampling, size)
        else:
            codes = pattern.clone()
            codes[:, 0] = start
            step = model.decoder if compile_mode is None else compiled_decoder(model, compile_mode)
            decode._decode_steps(model, step, codes, pattern, states, mask, kv, guidance_scale,
                          greedy if sampler is None else sampler.sample, levers.filled_attention)
    return undelayed(model, codes)
