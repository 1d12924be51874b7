"""Random numbers that are the same on every machine, for building models offline from a seed.

torch's ``normal_`` takes a vectorised path whose results depend on the CPU's vector unit (AVX2,
AVX-512 or none; ``ATEN_CPU_CAPABILITY`` selects it), so a model initialised with it differs in the
last bits between machines. ``torch.rand`` (Mersenne Twister, then an exact scaling) does not, and a
sum of 12 uniforms added one at a time (Irwin-Hall: mean 6, variance 1, an approximately normal
shape) uses only exactly rounded additions: the same bits everywhere.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import torch


def portable_normal(shape: "tuple[int, ...] | torch.Size", seed: int, name: str) -> torch.Tensor:
    """Approximately standard normal float64 numbers, a pure function of (``seed``, ``name``) and the shape."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    uniforms = torch.rand((12, *shape), generator=generator, dtype=torch.float64)
    total = uniforms[0].clone()
    for u in uniforms[1:]:  # one addition at a time: no reduction whose order could depend on the CPU
        total += u
    return total - 6.0


def redraw_(module: torch.nn.Module, seed: int, std_for: Callable[[str, torch.Tensor], "float | None"]) -> None:
    """Replace every random tensor of ``module``'s state (floating, not all one value) with
    ``portable_normal * std_for(name, tensor)``, in place; ``std_for`` returning None keeps a tensor."""
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point() or bool((tensor == tensor.flatten()[0]).all()):
                continue
            std = std_for(name, tensor)
            if std is not None:
                tensor.copy_(portable_normal(tensor.shape, seed, name) * std)
