"""The tiny MusicGen: randomly initialised, built offline and deterministically from a seed.

It has the real architecture (T5 text encoder, 32 kHz EnCodec at 50 frames/s with 4 codebooks of
2048 codes, a small decoder), is saved once under ``mgbench_home()/tiny`` and is loaded back through
the same ``from_pretrained`` path as the real checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..concepts.concept_set import load_concepts
from ..paths import build_folder_once, tiny_folder
from ..quiet import quiet_transformers
from ..seeding import portable_normal, redraw_
from .architectures import SHAPES


def tiny_musicgen_folder(seed: int = 0) -> Path:
    """Folder of the tiny MusicGen (built on first use), loadable with ``from_pretrained``."""
    def build(tmp: Path) -> None:
        with quiet_transformers():  # MusicGen's special tokens (2048) lie outside the codebooks, as published
            _build_musicgen(tmp, seed)

    return build_folder_once(tiny_folder("musicgen", seed), build)


def build_tiny_tokenizer():
    """A word-level T5-style tokenizer over the prompt vocabulary (pad 0, eos 1, unk 2)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in load_concepts().vocabulary():
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _init_std(name: str, tensor: torch.Tensor) -> float:
    """The tiny MusicGen's init scale: 0.2 in the decoder (transformers' initializer_factor 0.2, larger than the
    published 0.02 so that the prompt visibly shapes the tokens), 1/sqrt(fan-in) elsewhere."""
    if name.startswith("decoder."):
        return 0.2
    return tensor[0].numel() ** -0.5 if tensor.dim() > 1 else 0.1


def tiny_config(vocab_size: int):
    """The tiny MusicGen's ``MusicgenConfig`` (its text encoder over ``vocab_size`` words)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    shape = SHAPES["tiny"]
    text = T5Config(vocab_size=vocab_size, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16)
    audio = EncodecConfig(hidden_size=16, num_filters=4, codebook_size=2048, codebook_dim=16, num_lstm_layers=1,
                          upsampling_ratios=[8, 5, 4, 4], sampling_rate=32000, target_bandwidths=[2.2],
                          audio_channels=1, normalize=False)
    # A larger init scale than transformers' 0.02 so that the prompt visibly shapes the tokens.
    decoder = MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, max_position_embeddings=2048,
                                    pad_token_id=2048, bos_token_id=2048, decoder_start_token_id=2048,
                                    initializer_factor=0.2, hidden_size=shape.hidden, ffn_dim=shape.ffn,
                                    num_hidden_layers=shape.layers, num_attention_heads=shape.heads)
    # Narrow EnCodec (4 filters): the codec stays cheap next to the decoder, as it is in the real models.
    with quiet_transformers():  # MusicGen's special tokens (2048) lie outside the codebooks, as published
        return MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)


def _build_musicgen(folder: Path, seed: int) -> None:
    from transformers import MusicgenForConditionalGeneration

    tokenizer = build_tiny_tokenizer()
    config = tiny_config(len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
    redraw_(model, seed, _init_std)  # the same weights on every CPU (mgbench.seeding)
    save_random_musicgen(model, tokenizer, seed, folder)


def save_random_musicgen(model, tokenizer, seed: int, folder: Path) -> None:
    """Give a freshly initialised MusicGen random codebooks (EnCodec's start at zero) and the published generation
    defaults, and save it with a processor around ``tokenizer`` so that ``from_pretrained`` loads the folder."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    with torch.no_grad():
        for i, layer in enumerate(model.audio_encoder.quantizer.layers):
            layer.codebook.embed.copy_(portable_normal(layer.codebook.embed.shape, seed, f"codebook.{i}"))
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)
            layer.codebook.inited.fill_(1.0)
    # MusicGen's published generation defaults (facebook/musicgen-* generation_config.json).
    model.generation_config.update(do_sample=True, top_k=250, temperature=1.0, guidance_scale=3.0, max_length=1500,
                                   decoder_start_token_id=2048, pad_token_id=2048, bos_token_id=2048)
    model.save_pretrained(folder)
    MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(sampling_rate=model.config.audio_encoder.sampling_rate),
                      tokenizer=tokenizer).save_pretrained(folder)
