"""Paper estimates of MusicGen's generation cost, and the hardware limit they imply.

Per generated frame, every decoder row (a prompt's conditional and unconditional halves) runs each
layer's self-attention, cross-attention and MLP projections (2 FLOPs per weight) and reads its KV
cache. A batch reads the decoder weights once per step and every row's KV cache once per step, so
the limit is the larger of compute time and memory time. See docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..zoo.architectures import DecoderShape

#: Dense peak (FLOP/s, 16-bit tensor cores) and memory bandwidth (bytes/s) from the vendors' data sheets.
GPU_PEAKS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12), "L40S": (362e12, 0.864e12)}


def steps(seconds: float, frame_rate: int = 50, codebooks: int = 4) -> int:
    return round(seconds * frame_rate) + codebooks - 1


def flops_per_clip(shape: DecoderShape, seconds: float) -> float:
    """FLOPs of one clip's decoder work (both CFG halves), attention scores included."""
    n = steps(seconds)
    matmuls = 2 * (shape.weights * n + shape.cross_kv_weights * shape.text_tokens)
    attention = 4 * shape.layers * shape.hidden * (n * (n + 1) / 2 + n * shape.text_tokens)
    return 2 * (matmuls + attention)


def flops_per_step(shape: DecoderShape, position: int) -> float:
    """FLOPs of one decode step (both CFG halves) at ``position`` (1-based: the cache then holds ``position`` frames);
    a clip's steps sum to ``flops_per_clip`` less the cross-attention keys and values computed once per text."""
    return 2 * (2 * shape.weights + 4 * shape.layers * shape.hidden * (position + shape.text_tokens))


def bytes_per_clip(shape: DecoderShape, seconds: float, dtype_bytes: int = 2) -> float:
    """KV-cache bytes one clip (both halves) reads over its generation: sum over steps of its cache size."""
    n = steps(seconds)
    per_position = 2 * 2 * shape.layers * shape.hidden * dtype_bytes  # halves x (K, V) x layers x hidden
    return per_position * (n * (n + 1) / 2 + n * shape.text_tokens)


def kv_read_ratio(shape: DecoderShape, seconds: float, bucket: int = 0) -> float:
    """How many times the KV cache bytes that ``bytes_per_clip`` counts (each step reads the frames so far) a clip
    reads when every step's self-attention reads its static cache in buckets of ``bucket`` frames (0: the whole
    preallocated cache, as the loop does without ``levers.Levers.filled_attention``). The memory time of the limit
    grows by this factor, so its inverse caps the fraction of the limit a loop can reach."""
    n = steps(seconds)
    length = n + 1  # the cache holds the start frame and every generated one
    read = [min(length, -(-t // bucket) * bucket) if bucket else length for t in range(1, n + 1)]  # step t: t frames
    return sum(r + shape.text_tokens for r in read) / (n * (n + 1) / 2 + n * shape.text_tokens)


def hardware_limit(shape: DecoderShape, seconds: float, gpu: str, batch: int = 512) -> float:
    """Clips per second at the GPU's peak: max(compute, memory) time for a batch, weights read once per step."""
    flops, bandwidth = GPU_PEAKS[gpu]
    weight_bytes = 2 * shape.weights * steps(seconds)
    compute = batch * flops_per_clip(shape, seconds) / flops
    memory = (batch * bytes_per_clip(shape, seconds) + weight_bytes) / bandwidth
    return batch / max(compute, memory)


def gpu_kind(device_name: str) -> "str | None":
    """The GPU_PEAKS key for a CUDA device name ('NVIDIA H100 80GB HBM3' -> 'H100')."""
    return next((k for k in GPU_PEAKS if k in device_name), None)


@dataclass(frozen=True)
class DeviceProfile:
    """A GPU that is not here: its memory and the fraction of its hardware limit mgbench's loop reached on it, by
    (decoder dtype, compile mode), measured or borrowed (``source`` says which)."""

    gpu: str  # a GPU_PEAKS key
    memory_gib: float
    fractions: dict[tuple[str, str], float]
    source: str

    def fraction(self, dtype: str, compile_mode: "str | None") -> tuple[float, str]:
        """The fraction of the limit for a run's dtype and compile mode (float16 as bfloat16; a mode not measured
        as eager), with what it was measured on."""
        key = ("bfloat16" if dtype == "float16" else dtype, compile_mode or "eager")
        key = key if key in self.fractions else (key[0], "eager")
        key = key if key in self.fractions else ("float32", "eager")
        return self.fractions[key], f"{key[0]} {key[1]}"


#: what the H100 reached (docs/gpu/h100-2026-11-26-run2.csv: small-random, 1 s clips, float32 at batch 64, bfloat16 at
#: batch 256; fraction_of_limit column); the H200 has not been measured: the H100's fractions applied to its limit
_H100_FRACTIONS = {("float32", "eager"): 0.0111, ("float32", "default"): 0.0326, ("float32", "reduce-overhead"): 0.0353,
                   ("bfloat16", "eager"): 0.0589, ("bfloat16", "reduce-overhead"): 0.0859}
DEVICE_PROFILES = {
    "H100": DeviceProfile("H100", 80, _H100_FRACTIONS, "measured on an H100 (docs/gpu/h100-2026-11-26-run2.csv)"),
    "H200": DeviceProfile("H200", 141, _H100_FRACTIONS, "measured on an H100 (no H200 rows yet)"),
}


def projected_rate(profile: DeviceProfile, shape: DecoderShape, seconds: float, batch: int, dtype: str,
                   compile_mode: "str | None") -> tuple[float, str]:
    """Clips per second on ``profile``'s GPU: its measured fraction of the hardware limit times the limit for this
    shape, clip length and batch (assumed to hold at other sizes and lengths); and how it was projected."""
    fraction, measured = profile.fraction(dtype, compile_mode)
    limit = hardware_limit(shape, seconds, profile.gpu, batch)
    return fraction * limit, (f"{fraction:.1%} of the {profile.gpu}'s limit of {limit:.1f} clips/s at batch {batch}, "
                              f"the fraction {profile.source} for {measured}")
