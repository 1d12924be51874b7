"""mgbench's own MusicGen decode loop: what ``model.generate`` computes, with one decoder forward per frame.

transformers' ``generate`` runs the first decoder step twice, re-projects the text states at every
step and cannot use a static cache. This loop encodes the text and applies ``enc_to_dec_proj`` once,
keeps the delay pattern and the generated codes in one preallocated tensor on the model's device,
and calls the decoder once per frame with a KV cache sized up front (``static``) or grown per step
(``dynamic``, transformers' default). It reproduces ``generate``'s arithmetic step for step (logits
cast to float32, guidance ``uncond + (cond - uncond) * scale``, the sampler's step number = the
length of the code sequence so far), so forward hooks (edits, captures) and a DecoderLens cut act as
they do under ``generate``: every frame passes through the decoder exactly once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache, StaticCache
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.musicgen.modeling_musicgen import MusicgenSinusoidalPositionalEmbedding

from ..zoo.loading import PERSISTENT_HOOK
from .taps import install

#: picks one token per row from guided float32 scores ``(rows, vocab)``; ``step`` counts the codes so far (an int, or
#: a one-element tensor on the device when the sampler runs inside the compiled step)
TokenPicker = Callable[[torch.Tensor, "int | torch.Tensor"], torch.Tensor]
CACHES = ("dynamic", "static")
COMPILED_ATTRIBUTE = "_mgbench_compiled_decoder"
#: the compiled step may hold this many graphs (batch sizes x attention length buckets) before torch gives up
RECOMPILE_LIMIT = 64
#: a context manager factory around every decode loop (``benchmark.py`` times the loop with it); None: nothing
LOOP_CLOCK: ContextVar["Callable[[], contextlib.AbstractContextManager] | None"] = ContextVar("loop_clock",
                                                                                              default=None)


def loop_clock() -> contextlib.AbstractContextManager:
    """The current ``LOOP_CLOCK``'s context (a timer set by a benchmark), or nothing."""
    clock = LOOP_CLOCK.get()
    return contextlib.nullcontext() if clock is None else clock()


def guide(scores: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance of float32 scores whose second half are the unconditional rows:
    ``uncond + (cond - uncond) * scale``, as ``generate`` computes it."""
    cond, uncond = scores.split(scores.shape[0] // 2)
    return uncond + (cond - uncond) * guidance_scale


def greedy(scores: torch.Tensor, step: int) -> torch.Tensor:
    """The highest-scoring token of each row (``generate`` with ``do_sample=False`` and no sampler)."""
    return scores.argmax(dim=-1)


def encode_text(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                guided: bool, cross_mask: "torch.Tensor | None" = None) -> tuple[torch.Tensor, "torch.Tensor | None"]:
    """The decoder's cross-attention inputs, computed once: T5 states (a zero "null" half appended for guidance),
    projected by ``enc_to_dec_proj`` where the widths differ and zeroed at padding, and the step's mask
    (``cross_attention_mask``) over ``cross_mask`` (default: the tokens; ``workspace.fixed_text`` makes others). The
    unconditional half attends where the conditional half does (its states are zero: masked or attended, its
    cross-attention output is 0)."""
    states = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    if guided:
        states = torch.cat([states, torch.zeros_like(states)])
        attention_mask = torch.cat([attention_mask, torch.zeros_like(attention_mask)])
        cross_mask = None if cross_mask is None else torch.cat([cross_mask, cross_mask])
    if (model.text_encoder.config.hidden_size != model.decoder.config.hidden_size
            and model.decoder.config.cross_attention_hidden_size is None):
        states = model.enc_to_dec_proj(states)
    states = states * attention_mask[..., None]
    return states, cross_attention_mask(model, states, attention_mask if cross_mask is None else cross_mask)


def cross_attention_mask(model: torch.nn.Module, states: torch.Tensor,
                         attention_mask: torch.Tensor) -> "torch.Tensor | None":
    """transformers' cross-attention mask of a one-frame step, made once per batch: built inside every step, it
    checks the text padding on the host (``padding_mask.all()``), a GPU sync per step. Same values as the step's
    own (its 4D mask is passed through as is; ``None`` where the attention needs none)."""
    decoder = model.decoder.model.decoder
    frame = states.new_empty(states.shape[0], 1, decoder.config.hidden_size, dtype=decoder.embed_tokens[0].weight.dtype)
    return create_bidirectional_mask(config=decoder.config, inputs_embeds=frame, attention_mask=attention_mask,
                                     encoder_hidden_states=states)


def new_cache(model: torch.nn.Module, kind: str, length: int, text_length: int) -> EncoderDecoderCache:
    """An empty self- and cross-attention KV cache: ``static`` preallocates ``length`` frames (and the text),
    ``dynamic`` grows per step as in ``generate``."""
    config = model.decoder.config
    if kind == "static":
        return EncoderDecoderCache(StaticCache(config=config, max_cache_len=length),
                                   StaticCache(config=config, max_cache_len=text_length))
    if kind == "dynamic":
        return EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    raise ValueError(f"unknown KV cache {kind!r}; use one of {', '.join(CACHES)}")


def delay_pattern(model: torch.nn.Module, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """MusicGen's delay pattern for ``steps`` new codes, ``(batch * codebooks, steps + 1)``: the start/pad token
    where a codebook has nothing to say yet (or any more), -1 where a code is to be generated."""
    start = model.generation_config.decoder_start_token_id
    first = torch.full((model.decoder.num_codebooks, 1), start, dtype=torch.long)
    # one prompt's, on the host: transformers reads the start column element by element (on a GPU a sync each;
    # on an H100 at batch 256, 12,800 host reads), then tiled over the batch (rows are prompt-major) and copied once
    pattern = model.decoder.build_delay_pattern_mask(first, pad_token_id=start, max_length=steps + 1)[1]
    return pattern.repeat(batch, 1).to(device)


def filled_length(frames: int, size: int, length: int) -> int:
    """The bucketed filled length of a cache of ``length`` holding ``frames`` frames (``size`` frames per bucket)."""
    return min(length, -(-frames // size) * size)


def allow_recompiles() -> None:
    """Let torch compile up to ``RECOMPILE_LIMIT`` graphs per function (batch sizes x attention length buckets), and
    make hitting the limit an error instead of a silent fall-back to eager."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    torch._dynamo.config.fail_on_recompile_limit_hit = True


def foreign_hooks(model: torch.nn.Module) -> list[str]:
    """The decoder's modules that carry hooks other than persistent ones (``hooks.persistent``)."""
    return [name or "decoder" for name, m in model.decoder.named_modules()
            if any(not getattr(fn, PERSISTENT_HOOK, False)
                   for fn in (*m._forward_hooks.values(), *m._forward_pre_hooks.values()))]


def compiled_decoder(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``torch.compile`` of the decoder for the steps after the first (``mode``: ``default``, or ``reduce-overhead``
    for CUDA graphs), made once per model and mode. It refuses a decoder with hooks other than persistent ones
    (``hooks.persistent``: edit slots, capture taps and cut gates, ``taps.install``, driven by tensors; the text
    states' dtype cast), installed before compiling: compiled code silently skips hooks registered after compiling
    on modules that had none, so an edited or captured run would equal a plain one without any error. The
    persistent hooks are therefore installed here, before compiling, if not yet. Hitting torch's recompile limit
    (raised to ``RECOMPILE_LIMIT``) is an error, not a silent fall-back to eager."""
    hooked = foreign_hooks(model)
    if hooked:
        raise RuntimeError(f"cannot compile the decoder with forward hooks (on {', '.join(hooked[:3])}): torch.compile "
                           "would silently drop them; edit, capture and cut through taps.install's hooks")
    install(model.decoder.model.decoder.layers)  # before compiling, or a later install would be skipped
    compiled = getattr(model, COMPILED_ATTRIBUTE, {})
    if mode not in compiled:
        allow_recompiles()
        compiled[mode] = torch.compile(model.decoder, mode=mode, dynamic=False)
        setattr(model, COMPILED_ATTRIBUTE, compiled)
    return compiled[mode]


class _PresizedPositions(MusicgenSinusoidalPositionalEmbedding):
    """transformers' sinusoidal positions without their resize branch, an ``if`` on the static cache's length (a
    tensor) that breaks a compiled graph and syncs an eager step with the GPU; the table is sized up front
    (``presized_positions``)."""

    def forward(self, input_ids: torch.Tensor, cache_length: "int | torch.Tensor" = 0) -> torch.Tensor:
        position_ids = torch.arange(input_ids.shape[-1], device=input_ids.device) + cache_length
        return self.weights.index_select(0, position_ids.view(-1)).detach()


@contextlib.contextmanager
def presized_positions(model: torch.nn.Module, length: int) -> Iterator[None]:
    """For the block, the decoder's position table holds ``length`` positions and is read without the resize
    branch (same values, no graph break when compiled, no sync when eager)."""
    positions = model.decoder.model.decoder.embed_positions
    if positions.weights.size(0) < length:
        positions.make_weights(length, positions.embedding_dim)
    kind, positions.__class__ = positions.__class__, _PresizedPositions
    try:
        yield
    finally:
        positions.__class__ = kind


def decode_codes(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, steps: int,
                 guidance_scale: float, pick: TokenPicker = greedy, cache: str = "dynamic",
                 compile_mode: "str | None" = None) -> torch.Tensor:
    """Generate ``steps`` codes per codebook for a batch of tokenized prompts; return the undelayed codes
    ``(batch, codebooks, steps - codebooks + 1)`` on the model's device, as ``generate`` would. With
    ``compile_mode`` every step after the first (which allocates the static cache) runs compiled."""
    if compile_mode is not None and cache != "static":
        raise ValueError("a compiled decoder needs the static KV cache (fixed shapes)")
    step = model.decoder if compile_mode is None else compiled_decoder(model, compile_mode)
    guided = guidance_scale > 1
    batch = input_ids.shape[0]
    states, mask = encode_text(model, input_ids, attention_mask, guided)
    pattern = delay_pattern(model, batch, steps, input_ids.device)
    codes = pattern.clone()  # column t feeds step t; step t writes column t + 1 where the pattern says -1
    codes[:, 0] = model.generation_config.decoder_start_token_id  # (too short a clip leaves no pattern: all -1)
    kv = new_cache(model, cache, steps + 1, states.shape[1])
    with presized_positions(model, steps + 1) if cache == "static" else contextlib.nullcontext(), loop_clock():
        _decode_steps(model, step, codes, pattern, states, mask, kv, guidance_scale, pick)
    return undelayed(model, codes)


def undelayed(model: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """The generated codes of a filled delay-pattern tensor, ``(batch, codebooks, frames)``."""
    kept = codes[codes != model.generation_config.pad_token_id]
    return kept.reshape(codes.shape[0] // model.decoder.num_codebooks, model.decoder.num_codebooks, -1)


def _decode_steps(model: torch.nn.Module, step: torch.nn.Module, codes: torch.Tensor, pattern: torch.Tensor,
                  states: torch.Tensor, mask: "torch.Tensor | None", kv: EncoderDecoderCache, guidance_scale: float,
                  pick: TokenPicker, filled: int = 0) -> None:
    """Fill ``codes`` column by column: one decoder forward per frame (``step`` after the first). With ``filled``
    (frames per bucket) each step tells the attention how much of its cache is filled (``levers.filled_sdpa``)."""
    guided = guidance_scale > 1
    for t in range(codes.shape[1] - 1):
        frame = codes[:, t:t + 1]
        extra = {"filled": filled_length(t + 1, filled, codes.shape[1])} if filled else {}
        out = (step if t else model.decoder)(input_ids=frame.repeat(2, 1) if guided else frame,
                                              encoder_hidden_states=states,
                                              encoder_attention_mask=mask, cache=kv, use_cache=True, **extra)
        scores = out.logits[:, -1].to(dtype=torch.float32, copy=True)
        if guided:
            scores = guide(scores, guidance_scale)
        codes[:, t + 1] = torch.where(pattern[:, t + 1] == -1, pick(scores, t + 1), pattern[:, t + 1])


def decode_audio(model: torch.nn.Module, codes: torch.Tensor, codec: "torch.nn.Module | None" = None) -> torch.Tensor:
    """EnCodec's waveform of undelayed codes ``(batch, codebooks, frames)``: ``(batch, channels, samples)``; ``codec``:
    another copy of the model's EnCodec (``levers.codec``)."""
    codec = model.audio_encoder if codec is None else codec
    return codec.decode(codes[None], audio_scales=[None] * codes.shape[0]).audio_values
