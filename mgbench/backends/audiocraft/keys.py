"""Weight names between audiocraft's MusicGen language model and transformers' ``MusicgenForCausalLM``.

The correspondence is the one transformers' ``convert_musicgen_transformers.py`` uses to convert the published
checkpoints: audiocraft's fused ``in_proj_weight`` of each attention is the query, key and value projections
stacked in that order; the text conditioner's ``output_proj`` is transformers' ``enc_to_dec_proj`` (held by
``MusicgenForConditionalGeneration``, outside the causal LM). Here a key that has no counterpart is an error, in
both directions, so no weight is silently left behind. Pure tensor renaming: audiocraft need not be installed.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

#: audiocraft prefix -> transformers prefix of the causal LM's top-level modules
TOP_PREFIXES = {
    "emb.": "model.decoder.embed_tokens.",
    "transformer.layers.": "model.decoder.layers.",
    "out_norm.": "model.decoder.layer_norm.",
    "linears.": "lm_heads.",
}
#: audiocraft module -> transformers module inside one decoder layer
LAYER_MODULES = {
    "self_attn": "self_attn",
    "cross_attention": "encoder_attn",
    "linear1": "fc1",
    "linear2": "fc2",
    "norm1": "self_attn_layer_norm",
    "norm_cross": "encoder_attn_layer_norm",
    "norm2": "final_layer_norm",
}
#: audiocraft's projection of the text encoder's states into the decoder (transformers: ``enc_to_dec_proj``)
TEXT_PROJECTION = "condition_provider.conditioners.description.output_proj."
FUSED_QKV = "in_proj_weight"
QKV = ("q_proj.weight", "k_proj.weight", "v_proj.weight")

StateDict = Mapping[str, torch.Tensor]


def _rename(key: str, prefixes: Mapping[str, str], layer_modules: Mapping[str, str], source: str) -> str:
    for old, new in prefixes.items():
        if key.startswith(old):
            rest = key[len(old):]
            if old.endswith("layers."):  # "<layer>.<module>.<parameter...>"
                index, module, tail = (rest.split(".", 2) + ["", ""])[:3]
                if module not in layer_modules or not tail:
                    break
                rest = f"{index}.{layer_modules[module]}.{tail}"
            return new + rest
    raise KeyError(f"{source} weight {key!r} has no counterpart in the other library")


def audiocraft_to_transformers(state: StateDict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Rename an audiocraft ``LMModel`` state dict: ``(MusicgenForCausalLM state, enc_to_dec_proj state)``."""
    decoder: dict[str, torch.Tensor] = {}
    projection: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith(TEXT_PROJECTION):
            projection[key[len(TEXT_PROJECTION):]] = value
            continue
        name = _rename(key, TOP_PREFIXES, LAYER_MODULES, "audiocraft")
        if name.endswith(FUSED_QKV):
            base = name[:-len(FUSED_QKV)]
            decoder.update({base + part: chunk for part, chunk in zip(QKV, value.chunk(3, dim=0))})
        else:
            decoder[name] = value
    return decoder, projection


def transformers_to_audiocraft(decoder: StateDict, projection: StateDict) -> dict[str, torch.Tensor]:
    """The inverse of ``audiocraft_to_transformers``: one audiocraft ``LMModel`` state dict."""
    prefixes = {new: old for old, new in TOP_PREFIXES.items()}
    modules = {new: old for old, new in LAYER_MODULES.items()}
    state = {TEXT_PROJECTION + key: value for key, value in projection.items()}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in decoder.items():
        part = next((p for p in QKV if key.endswith("." + p)), None)
        if part is None:
            state[_rename(key, prefixes, modules, "transformers")] = value
        else:
            fused.setdefault(key[:-len(part)], {})[part] = value
    for base, parts in fused.items():
        if len(parts) != len(QKV):
            raise KeyError(f"transformers attention {base!r} lacks {sorted(set(QKV) - set(parts))}")
        state[_rename(base + FUSED_QKV, prefixes, modules, "transformers")] = torch.cat([parts[p] for p in QKV])
    return state
