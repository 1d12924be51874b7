"""An audiocraft MusicGen language model holding the same weights as a transformers MusicGen (needs audiocraft).

audiocraft is the library the paper ran MusicGen with; README "audiocraft" says how to install it (with
``--no-deps``). ``audiocraft_lm`` builds audiocraft's ``LMModel`` with MusicGen's architecture (delay pattern,
pre-norm layers without biases, GELU, sinusoidal positions, text by cross-attention) in the shape of a loaded
transformers model and copies its decoder weights over (``audiocraft_keys``); the text conditioner wraps the
loaded T5 encoder and tokenizer, so nothing is fetched from the hub. ``docs/backends.md`` says where the two
libraries agree and where they differ.
"""

from __future__ import annotations

import torch
from audiocraft.models.lm import LMModel
from audiocraft.modules.codebooks_patterns import DelayedPatternProvider
from audiocraft.modules.conditioners import ConditionFuser, ConditioningProvider, T5Conditioner, TextConditioner
from audiocraft.utils.autocast import TorchAutocast

from ...engine.sites import Site, site_module
from ...zoo.loading import LoadedMusicgen
from .keys import transformers_to_audiocraft
from .sites import AUDIOCRAFT_SITES

TEXT_CONDITION = "description"  # the attribute MusicGen's text prompt travels in


class LocalT5Conditioner(T5Conditioner):
    """audiocraft's T5 text conditioner around a T5 encoder and tokenizer already in memory.

    audiocraft's own ``__init__`` loads them from the hub by name; everything else (tokenizing, zeroing padded
    positions, the output projection) is audiocraft's code.
    """

    def __init__(self, t5: torch.nn.Module, tokenizer, output_dim: int):
        TextConditioner.__init__(self, t5.config.d_model, output_dim)
        self.device = str(t5.device)
        self.name = t5.config.name_or_path
        self.finetune = False
        self.word_dropout = 0.0
        self.normalize_text = False
        self.autocast = TorchAutocast(enabled=False)
        self.t5_tokenizer = tokenizer
        self.__dict__["t5"] = t5  # as audiocraft keeps it: outside the LM's state dict


def audiocraft_lm(loaded: LoadedMusicgen, cfg_coef: float = 3.0) -> LMModel:
    """audiocraft's ``LMModel`` with ``loaded``'s decoder, text projection, T5 encoder and tokenizer, in eval mode,
    in the dtype of ``loaded``'s decoder; ``cfg_coef`` is its default classifier-free guidance."""
    config = loaded.model.decoder.config
    if config.ffn_dim % config.hidden_size:
        raise ValueError(f"audiocraft needs an MLP width that is a multiple of the hidden size, "
                         f"not {config.ffn_dim} / {config.hidden_size}")
    conditioner = LocalT5Conditioner(loaded.model.text_encoder, loaded.processor.tokenizer, config.hidden_size)
    fuser = ConditionFuser({"cross": [TEXT_CONDITION], "prepend": [], "sum": [], "input_interpolate": []})
    lm = LMModel(DelayedPatternProvider(n_q=config.num_codebooks), ConditioningProvider({TEXT_CONDITION: conditioner}),
                 fuser, n_q=config.num_codebooks, card=config.vocab_size, dim=config.hidden_size,
                 num_heads=config.num_attention_heads, num_layers=config.num_hidden_layers,
                 hidden_scale=config.ffn_dim // config.hidden_size, norm="layer_norm", norm_first=True,
                 bias_proj=False, bias_ff=False, bias_attn=False, activation=config.activation_function,
                 positional_embedding="sin", causal=True, cross_attention=True, custom=True, dropout=0.0,
                 cfg_coef=cfg_coef)
    state = transformers_to_audiocraft(loaded.model.decoder.state_dict(), loaded.model.enc_to_dec_proj.state_dict())
    dtype = next(loaded.model.decoder.parameters()).dtype
    lm.to(device=loaded.device, dtype=dtype).load_state_dict(state, strict=True)
    return lm.eval()


def audiocraft_site_module(lm: LMModel, site: Site) -> torch.nn.Module:
    """The module of ``lm`` whose forward output is ``site``'s output: the paper's hook points."""
    return site_module(lm.transformer.layers, site, AUDIOCRAFT_SITES)
