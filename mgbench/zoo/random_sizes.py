"""Real-size MusicGen with random weights: the published small, medium and large configurations, built offline.

``small-random``, ``medium-random`` and ``large-random`` have the architecture of ``facebook/musicgen-{size}``
(T5-base text encoder, the 32 kHz EnCodec, the size's decoder; MusicGen's generation defaults) with
weights drawn by transformers' own initialisation from a fixed seed. They need no hub access and run
every experiment at the real cost, so they serve speed and GPU checks where the checkpoints are
absent; their numbers are meaningless. The text is tokenised with the tiny model's word-level
tokenizer (T5's SentencePiece model is on the hub): the prompt words get ids below T5's 32,128.

A model is built on first use and saved under ``mgbench_home()/random`` (small: about 10 s and 2.4 GB;
medium 6 GB and large 14 GB of weights, and as much RAM while building).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import unknown
from ..paths import build_folder_once, random_folder
from ..quiet import quiet_transformers
from .architectures import REAL_SIZES, SHAPES
from .tiny import build_tiny_tokenizer, save_random_musicgen

#: model name -> published size whose architecture it has
RANDOM_SIZES = {f"{size}-random": size for size in REAL_SIZES}
T5_BASE_VOCAB = 32128


def published_config(size: str):
    """The ``MusicgenConfig`` of ``facebook/musicgen-{size}`` (text encoder T5-base, audio encoder EnCodec 32 kHz)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    if size not in REAL_SIZES:
        raise unknown("published MusicGen size", size, REAL_SIZES)
    shape = SHAPES[size]
    text = T5Config(vocab_size=T5_BASE_VOCAB, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
                    num_heads=12, feed_forward_proj="relu", dropout_rate=0.1)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, normalize=False, num_filters=64, hidden_size=128,
                          upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], codebook_size=shape.vocab,
                          use_causal_conv=False, use_conv_shortcut=False)
    decoder = MusicgenDecoderConfig(vocab_size=shape.vocab, num_codebooks=shape.codebooks, hidden_size=shape.hidden,
                                    ffn_dim=shape.ffn, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                                    max_position_embeddings=2048, pad_token_id=shape.vocab, bos_token_id=shape.vocab,
                                    decoder_start_token_id=shape.vocab)
    with quiet_transformers():  # MusicGen's special tokens (2048) lie outside the codebooks, as published
        return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def random_musicgen_folder(name: str, seed: int = 0) -> Path:
    """Folder of the real-size random MusicGen ``name`` (see ``RANDOM_SIZES``), built on first use."""
    if name not in RANDOM_SIZES:
        raise unknown("random model", name, tuple(RANDOM_SIZES))

    def build(tmp: Path) -> None:
        from transformers import MusicgenForConditionalGeneration

        config = published_config(RANDOM_SIZES[name])
        with quiet_transformers(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MusicgenForConditionalGeneration(config).eval()
            save_random_musicgen(model, build_tiny_tokenizer(), seed, tmp)

    return build_folder_once(random_folder(name, seed), build)
