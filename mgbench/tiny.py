"""Tiny randomly initialised models, built offline and deterministically from a seed.

They have the real architectures (MusicGen: T5 text encoder, 32 kHz EnCodec at 50 frames/s with 4
codebooks of 2048 codes, a small decoder; PaSST: hear21passt's model and mel front end) at a small
size, are saved once under ``mgbench_home()/tiny`` and are loaded back through the same
``from_pretrained`` paths as the real checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .concepts import load_concepts
from .models import quiet_transformers
from .paths import build_folder_once, mgbench_home

#: Bump when the tiny architecture or its build changes: cached folders of older versions are ignored.
TINY_VERSION = 3

TINY_DECODER = dict(hidden_size=64, ffn_dim=256, num_hidden_layers=4, num_attention_heads=4)
TINY_PASST = dict(embed_dim=32, depth=2, num_heads=2)


def tiny_folder(kind: str, seed: int) -> Path:
    return mgbench_home() / "tiny" / f"{kind}-s{seed}-v{TINY_VERSION}"


def tiny_musicgen_folder(seed: int = 0) -> Path:
    """Folder of the tiny MusicGen (built on first use), loadable with ``from_pretrained``."""
    return build_folder_once(tiny_folder("musicgen", seed), lambda tmp: _build_musicgen(tmp, seed))


def tiny_passt_folder(seed: int = 0) -> Path:
    """Folder of the tiny PaSST classifier (built on first use), loadable with ``load_classifier``."""
    from .classifiers import passt_wrapper, save_passt

    def build(tmp: Path) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            wrapper = passt_wrapper(dict(TINY_PASST))
            for module in wrapper.net.modules():  # a larger init than timm's 0.02, so logits depend on the audio
                if isinstance(module, torch.nn.Linear):
                    torch.nn.init.normal_(module.weight, std=0.3)
            save_passt(tmp, dict(TINY_PASST), wrapper)

    return build_folder_once(tiny_folder("passt", seed), build)


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


def _build_musicgen(folder: Path, seed: int) -> None:
    from transformers import (EncodecConfig, EncodecFeatureExtractor, MusicgenConfig, MusicgenDecoderConfig,
                              MusicgenForConditionalGeneration, MusicgenProcessor, T5Config)

    tokenizer = build_tiny_tokenizer()
    text = T5Config(vocab_size=len(tokenizer), d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16)
    audio = EncodecConfig(hidden_size=16, num_filters=4, codebook_size=2048, codebook_dim=16, num_lstm_layers=1,
                          upsampling_ratios=[8, 5, 4, 4], sampling_rate=32000, target_bandwidths=[2.2],
                          audio_channels=1, normalize=False)
    # A larger init scale than transformers' 0.02 so that the prompt visibly shapes the tokens.
    decoder = MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, max_position_embeddings=2048,
                                    pad_token_id=2048, bos_token_id=2048, decoder_start_token_id=2048,
                                    initializer_factor=0.2, **TINY_DECODER)
    # Narrow EnCodec (4 filters): the codec stays cheap next to the decoder, as it is in the real models.
    config = MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
        for layer in model.audio_encoder.quantizer.layers:  # EnCodec's codebooks start at zero: give them codes
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)
            layer.codebook.inited.fill_(1.0)
    # MusicGen's published generation defaults (facebook/musicgen-* generation_config.json).
    model.generation_config.update(do_sample=True, top_k=250, temperature=1.0, guidance_scale=3.0, max_length=1500,
                                   decoder_start_token_id=2048, pad_token_id=2048, bos_token_id=2048)
    with quiet_transformers():
        model.save_pretrained(folder)
    MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(sampling_rate=32000),
                      tokenizer=tokenizer).save_pretrained(folder)
