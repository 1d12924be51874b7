"""Optional levers on the decode loop's speed (``Levers``), each off by default and each keeping today's codes.

Measured against the hardware limit on a GPU by ``bench/gpu_check.py`` (docs/performance.md says what each is
expected to buy); on the CPU each is tested for the codes of today's eager loop in float64:

- ``filled_attention``: a step's self-attention reads only the filled part of the static KV cache, in length
  buckets of that many frames (``filled_sdpa``), instead of the whole preallocated length (future positions
  masked). The same keys that count, so the same codes; one compiled graph per bucket.
- ``conditional_cross``: cross-attention for the conditional rows only. The unconditional rows' text states
  are zero and MusicGen's attention projections have no bias, so their cross-attention output is exactly 0
  (checked: ``conditional_cross`` refuses a decoder with biases); it is filled in as zeros.
- ``codec_bfloat16``: EnCodec decodes in bfloat16 (a copy kept with the model, its padding reckoned in ints so that
  it reads nothing back and compiles to one graph; compiled with the step's mode).
  Codes are untouched; the audio differs from float32's by the error ``bench/gpu_check.py`` states as an SNR.
- ``audio_on_device``: the runner returns the audio on the model's device, for a classifier there; where audio
  must leave the device it goes through pinned memory (``to_host``).
- ``sampler_in_graph``: guidance, the sampler and the write of the codes run inside the compiled step, driven
  by a frame counter on the device (``stepper.Stepper``): the loop launches one graph per frame and nothing else.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.models.encodec.modeling_encodec import EncodecConv1d
from transformers.models.musicgen.modeling_musicgen import MusicgenAttention

from .decode import allow_recompiles

#: the attention implementation name of ``filled_sdpa``
FILLED = "mgbench_filled_sdpa"
CODEC_ATTRIBUTE = "_mgbench_codec_bfloat16"


@dataclass(frozen=True)
class Levers:
    """Which levers a runner pulls (module docstring). ``filled_attention``: frames per length bucket, 0 for off."""

    filled_attention: int = 0
    conditional_cross: bool = False
    codec_bfloat16: bool = False
    audio_on_device: bool = False
    sampler_in_graph: bool = False

    def __post_init__(self) -> None:
        if self.filled_attention < 0:
            raise ValueError(f"filled_attention is frames per bucket (0: off), not {self.filled_attention}")

    def as_dict(self) -> dict:
        return asdict(self)


#: no lever pulled: today's loop
NO_LEVERS = Levers()


def filled_sdpa(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                attention_mask: "torch.Tensor | None", filled: int = 0, **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention over the first ``filled`` positions of a self-attention's KV cache (0, or a
    cross-attention: all of them). The positions past the filled part are masked anyway: same keys, same result."""
    if filled and module.is_causal and key.shape[2] > filled:
        key, value = key[:, :, :filled], value[:, :, :filled]
        attention_mask = None if attention_mask is None else attention_mask[..., :filled]
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


@contextlib.contextmanager
def filled_attention(model: torch.nn.Module) -> Iterator[None]:
    """For the block, the decoder attends through ``filled_sdpa`` (its masks are SDPA's); a step passes
    ``filled=`` the bucketed length of its cache. Needs the decoder's SDPA attention."""
    config = model.decoder.config
    kind = config._attn_implementation
    if kind not in ("sdpa", FILLED):
        raise ValueError(f"filled_attention replaces SDPA attention; this decoder uses {kind!r}")
    AttentionInterface.register(FILLED, filled_sdpa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(FILLED, sdpa_mask)
    config._attn_implementation = FILLED
    try:
        yield
    finally:
        config._attn_implementation = kind


class _ConditionalCross(MusicgenAttention):
    """A cross-attention run on the first half of the rows (the conditional ones); the second half's output is 0."""

    def forward(self, hidden_states: torch.Tensor, key_value_states: "torch.Tensor | None" = None, cache=None,
                attention_mask: "torch.Tensor | None" = None, **kwargs):
        half = hidden_states.shape[0] // 2
        out, weights = super().forward(hidden_states[:half], key_value_states[:half], cache=cache,
                                       attention_mask=None if attention_mask is None else attention_mask[:half],
                                       **kwargs)
        return torch.cat([out, torch.zeros_like(out)]), weights


@contextlib.contextmanager
def conditional_cross(model: torch.nn.Module) -> Iterator[None]:
    """For the block, every layer's cross-attention runs on the conditional rows only (its KV cache holds those
    rows) and gives 0 for the unconditional ones, which is what it computes for them: zero text states through
    projections without bias (refused otherwise)."""
    modules = [layer.encoder_attn for layer in model.decoder.model.decoder.layers]
    biased = [i for i, m in enumerate(modules) if m.v_proj.bias is not None or m.out_proj.bias is not None]
    if biased:
        raise ValueError(f"conditional_cross needs cross-attention without bias (layers {biased} have one): the "
                         "unconditional rows' output would not be 0")
    kinds = [type(m) for m in modules]
    for m in modules:
        m.__class__ = _ConditionalCross
    try:
        yield
    finally:
        for m, kind in zip(modules, kinds):
            m.__class__ = kind


class _IntPaddedConv1d(EncodecConv1d):
    """EnCodec's padded convolution with its padding reckoned in Python ints: transformers keeps stride, kernel and
    padding in tensor buffers, so every convolution reads them back on the host (a GPU sync, two per convolution)
    and breaks a compiled graph. The same paddings, so the same numbers."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        length, stride = hidden_states.shape[-1], self.conv.stride[0]
        kernel = (self.conv.kernel_size[0] - 1) * self.conv.dilation[0] + 1
        padding_total = kernel - stride
        frames = math.ceil((length - kernel + padding_total) / stride + 1) - 1
        extra = frames * stride + kernel - padding_total - length
        right = 0 if self.causal else padding_total // 2
        hidden_states = self._pad1d(hidden_states, (padding_total - right, right + extra), mode=self.pad_mode)
        hidden_states = self.conv(hidden_states)
        return self.norm(hidden_states) if self.norm_type == "time_group_norm" else hidden_states


def int_padded(codec_model: torch.nn.Module) -> torch.nn.Module:
    """``codec_model`` with its padded convolutions reckoned in Python ints (``_IntPaddedConv1d``), in place."""
    for module in codec_model.modules():
        if type(module) is EncodecConv1d:
            module.__class__ = _IntPaddedConv1d
    return codec_model


def codec(model: torch.nn.Module, compile_mode: "str | None" = None) -> torch.nn.Module:
    """EnCodec in bfloat16: a copy kept with ``model``, its padding in ints (``int_padded``), its SEANet decoder
    compiled with ``compile_mode`` (if any) as one graph."""
    kept = getattr(model, CODEC_ATTRIBUTE, None)
    if kept is None:
        kept = int_padded(copy.deepcopy(model.audio_encoder).to(torch.bfloat16))
        if compile_mode is not None:
            allow_recompiles()
            torch._dynamo.config.allow_rnn = True  # trace its LSTM: else 9 graph breaks around it
            kept.decoder = torch.compile(kept.decoder, mode=compile_mode, dynamic=False)
        setattr(model, CODEC_ATTRIBUTE, kept)
    return kept


def to_host(audio: torch.Tensor) -> torch.Tensor:
    """``audio`` on the CPU: from a GPU through pinned memory (one direct copy, no staging through pageable memory),
    from the CPU as it is."""
    if audio.device.type != "cuda":
        return audio.cpu()
    host = torch.empty(audio.shape, dtype=audio.dtype, pin_memory=True)
    host.copy_(audio, non_blocking=True)
    torch.cuda.current_stream(audio.device).synchronize()
    return host
