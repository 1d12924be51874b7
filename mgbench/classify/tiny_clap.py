"""The tiny CLAP: transformers' ``ClapModel`` (RoBERTa text tower, HTSAT audio tower) at a small size, random
weights from a seed, with a byte-level RoBERTa tokenizer (every byte a token, no merges: any text, no download) and
CLAP's own feature extractor. Saved once under ``mgbench_home()/tiny`` and loaded through ``from_pretrained``."""

from __future__ import annotations

from pathlib import Path

import torch

from ..paths import build_folder_once, tiny_folder
from ..quiet import quiet_transformers
from ..seeding import redraw_

PROJECTION = 16


def build_byte_tokenizer():
    """A RoBERTa tokenizer whose vocabulary is the 256 byte symbols of byte-level BPE and no merges."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import RobertaTokenizer

    vocab = {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *sorted(ByteLevel.alphabet()),
                                                 "<mask>"])}
    return RobertaTokenizer(vocab=vocab, merges=[])


def _init_std(name: str, tensor: torch.Tensor) -> float:
    """1/sqrt(fan-in) for weight matrices and kernels (so that embeddings depend on the clip), 0.02 elsewhere."""
    return tensor[0].numel() ** -0.5 if tensor.dim() > 1 else 0.02


def tiny_clap_folder(seed: int = 0) -> Path:
    """Folder of the tiny CLAP (built on first use), loadable with ``ClapModel``/``ClapProcessor.from_pretrained``."""
    def build(tmp: Path) -> None:
        from transformers import (
            ClapAudioConfig,
            ClapConfig,
            ClapFeatureExtractor,
            ClapModel,
            ClapProcessor,
            ClapTextConfig,
        )

        tokenizer = build_byte_tokenizer()
        text = ClapTextConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=258, projection_dim=PROJECTION)
        audio = ClapAudioConfig(patch_embeds_hidden_size=16, hidden_size=32, depths=[1, 1], num_attention_heads=[2, 2],
                                projection_dim=PROJECTION)
        config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=PROJECTION)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = ClapModel(config).eval()
        redraw_(model, seed, _init_std)  # the same weights on every CPU (mgbench.seeding)
        with quiet_transformers():
            model.save_pretrained(tmp)
        # rand_trunc, as laion/clap-htsat-unfused's extractor: one mel channel (fusion makes four)
        ClapProcessor(feature_extractor=ClapFeatureExtractor(truncation="rand_trunc"),
                      tokenizer=tokenizer).save_pretrained(tmp)

    return build_folder_once(tiny_folder("clap", seed), build)
