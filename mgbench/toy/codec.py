"""The toy world's codec: a small EnCodec (transformers' architecture) whose decoder is trained to play the synth.

A random EnCodec makes nearly the same waveform for every code sequence, so no classifier could hear
a concept in it. Here the decoder and the codebooks learn, from clips of the toy world (a quarter of them
scrambled, as a sampling model may write them), to render each clip's codes as its synthesized sound
(a multi-resolution STFT loss: the spectra matter, not the phases). The encoder is never used:
MusicGen only decodes.
"""

from __future__ import annotations

import numpy as np
import torch

from ..progress import progress
from .world import SAMPLE_RATE, Synth, ToyWorld

CODEC = dict(hidden_size=32, num_filters=8, codebook_size=2048, codebook_dim=32, num_lstm_layers=1,
             upsampling_ratios=[8, 5, 4, 4], sampling_rate=SAMPLE_RATE, target_bandwidths=[2.2], audio_channels=1,
             normalize=False)


def random_fills(world: ToyWorld, n: int, rng: np.random.Generator) -> list[dict[str, str]]:
    """``n`` prompts' slot words, each slot drawn uniformly."""
    return [{slot: words[rng.integers(len(words))] for slot, words in world.words.items()} for _ in range(n)]


def spectral_loss(audio: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: log-magnitude and magnitude L1 at four window sizes."""
    loss = audio.new_zeros(())
    for n_fft in (256, 512, 1024, 2048):
        window = torch.hann_window(n_fft, device=audio.device)
        a, b = (torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True).abs() for x in (audio, target))
        loss = loss + (torch.log(a + 1e-4) - torch.log(b + 1e-4)).abs().mean() + (a - b).abs().mean()
    return loss


def decode(codec: torch.nn.Module, codebooks: torch.nn.ModuleList, codes: torch.Tensor) -> torch.Tensor:
    """Audio ``(batch, samples)`` of codes ``(batch, 4, frames)``: the codebooks' embeddings summed, decoded."""
    embedded = sum(table(codes[:, k]) for k, table in enumerate(codebooks)).transpose(1, 2)
    return codec.decoder(embedded)[:, 0]


def train_codec(world: ToyWorld, synth: Synth, steps: int, seed: int, frames: int = 50,
                batch: int = 8) -> torch.nn.Module:
    """A small EnCodec whose decoder and codebooks render the toy world's codes as ``synth`` does."""
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    codec = EncodecModel(EncodecConfig(**CODEC))
    quantizers = codec.quantizer.layers[:len(world.words)]
    codebooks = torch.nn.ModuleList(torch.nn.Embedding(CODEC["codebook_size"], CODEC["codebook_dim"])
                                    for _ in quantizers)
    params = [*codec.decoder.parameters(), *codebooks.parameters()]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    codec.train()
    for _ in progress(range(steps), "toy codec", unit="step"):
        fills = random_fills(world, batch, rng)
        codes = world.sample(fills, frames, rng, scrambled=0.25)
        target = torch.tensor(np.stack([synth(c) for c in codes]), dtype=torch.float32)
        audio = decode(codec, codebooks, torch.from_numpy(codes))[:, :target.shape[1]]
        loss = spectral_loss(audio, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():  # the trained tables become EnCodec's codebooks, as MusicGen decodes with them
        for quantizer, table in zip(quantizers, codebooks):
            quantizer.codebook.embed.copy_(table.weight)
            quantizer.codebook.embed_avg.copy_(table.weight)
            quantizer.codebook.cluster_size.fill_(1.0)
            quantizer.codebook.inited.fill_(1.0)
    return codec.eval()
