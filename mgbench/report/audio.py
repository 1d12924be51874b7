"""Audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..paths import atomic_write_with


def write_wav(path: Path, audio: torch.Tensor, sample_rate: int) -> None:
    """Write mono audio in [-1, 1] as 16-bit PCM WAV (atomically)."""
    from scipy.io import wavfile

    pcm = (np.clip(torch.as_tensor(audio).float().numpy(), -1.0, 1.0) * 32767).astype(np.int16)
    atomic_write_with(Path(path), lambda tmp: wavfile.write(tmp, sample_rate, pcm))
