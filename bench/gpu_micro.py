"""The GPU check's micro-benchmarks (``bench/gpu_check.py``): single-query attention and EnCodec, one row each.

Timed with ``mgbench.perf.benchmark.interleaved`` like everything else: warm-ups first, the variants interleaved
over rounds, CUDA events; a kernel of a few microseconds is timed as ``REPEAT`` calls in a row.
"""

from __future__ import annotations

import copy

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from mgbench.engine.levers import int_padded
from mgbench.perf.benchmark import interleaved

REPEAT = 20
BACKENDS = {"math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION}


def _sdpa(backend: SDPBackend, q, k, v, mask=None):
    def call():
        with sdpa_kernel(backend):
            for _ in range(REPEAT):
                torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    return call


def _flex(q, k, v, length: int):
    """FlexAttention over a static cache whose first ``length`` positions are filled (the rest skipped by blocks)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    blocks = create_block_mask(lambda b, h, q_idx, kv_idx: kv_idx < length, B=None, H=None, Q_LEN=1,
                               KV_LEN=k.shape[2], device=q.device)
    flex = torch.compile(flex_attention, dynamic=False)

    def call():
        for _ in range(REPEAT):
            flex(q, k, v, block_mask=blocks)

    return call


def attention_rows(rows: int, heads: int, head_dim: int, length: int, full: int, dtype: torch.dtype,
                   device: torch.device) -> list[dict]:
    """One query row per decoder row against a KV cache holding ``length`` frames (of ``full`` preallocated): SDPA with
    each backend over the filled part, SDPA over the whole static cache with the rest masked (what the loop did), and
    FlexAttention; per variant microseconds per call and the K/V bytes it must read per second."""
    gen = torch.Generator(device=device).manual_seed(0)
    q = torch.randn(rows, heads, 1, head_dim, generator=gen, device=device, dtype=dtype)
    k, v = (torch.randn(rows, heads, full, head_dim, generator=gen, device=device, dtype=dtype) for _ in range(2))
    mask = (torch.arange(full, device=device) < length).expand(rows, 1, 1, full)
    variants = {f"filled_{name}": (_sdpa(b, q, k[:, :, :length], v[:, :, :length]), length)
                for name, b in BACKENDS.items()}
    variants |= {f"static_masked_{name}": (_sdpa(BACKENDS[name], q, k, v, mask), full)
                 for name in ("math", "efficient", "cudnn")}
    variants["flex"] = (_flex(q, k, v, length), length)
    out, working = [], {}
    for name, (call, _) in variants.items():
        try:
            call()
            working[name] = call
        except Exception as e:  # noqa: BLE001 -- a backend that cannot run this shape is a row, not the end
            out.append(dict(variant=name, error=f"{type(e).__name__}: {e}"[:200]))
    if working:
        times = interleaved(working, device).groupby("config").call_ms.median()
        for name, ms in times.items():
            us = 1e3 * ms / REPEAT
            read = variants[name][1]
            kv_bytes = 2 * rows * heads * read * head_dim * k.element_size()
            out.append(dict(variant=name, us=us, gb_per_s=kv_bytes / (us * 1e-6) / 1e9, positions_read=read))
    return [dict(rows=rows, length=length, preallocated=full, **row) for row in out]


def codec_rows(codec: torch.nn.Module, clips: int, codebooks: int, frames: int, frame_rate: int,
               device: torch.device) -> list[dict]:
    """EnCodec decoding ``clips`` clips of random codes in float32 and in bfloat16 (a copy, as ``levers.codec`` makes
    it, uncompiled): milliseconds per second of audio, and bfloat16's SNR against float32 (dB)."""
    half = int_padded(copy.deepcopy(codec).to(torch.bfloat16))
    codes = torch.randint(0, codec.config.codebook_size, (1, clips, codebooks, frames), device=device)
    decode = {name: (lambda m=m: m.decode(codes, audio_scales=[None] * clips).audio_values)
              for name, m in (("float32", codec), ("bfloat16", half))}
    reference = decode["float32"]().float()
    times = interleaved(decode, device).groupby("config").call_ms.median()
    rows = []
    for name, ms in times.items():
        error = (decode[name]().float() - reference).pow(2).sum()
        snr = float("inf") if error == 0 else float(10 * torch.log10(reference.pow(2).sum() / error))
        rows.append(dict(variant=name, ms_per_clip_second=ms / (clips * frames / frame_rate), snr_db=snr,
                         clips=clips, seconds=frames / frame_rate))
    return rows
