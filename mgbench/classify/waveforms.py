"""Clips as a recognizer takes them: mono float32 at its sample rate, on its device."""

from __future__ import annotations

import torch


def mono_at_rate(waveforms: torch.Tensor, sample_rate: int, target_rate: int, device: torch.device) -> torch.Tensor:
    """``(batch, samples)`` or ``(batch, channels, samples)`` audio at ``sample_rate`` -> ``(batch, samples)`` mono
    float32 at ``target_rate`` on ``device``."""
    if waveforms.dim() == 3:
        waveforms = waveforms.mean(dim=1)
    waveforms = waveforms.to(device=device, dtype=torch.float32)
    if sample_rate != target_rate:
        import torchaudio.functional as AF

        waveforms = AF.resample(waveforms, sample_rate, target_rate)
    return waveforms
