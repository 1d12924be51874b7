"""The toy MusicGen: transformers' MusicGen at the tiny size, trained on the toy world with a planted mechanism.

**The planted mechanism**: the prompt's text reaches the decoder only through the cross-attentions of
the recipe's entries (``toy.recipe``; the default world: layer ``PLANTED_LAYER``'s). Every other layer's
cross-attention output projection (which has no bias) is zero and frozen, so its output is exactly 0 for
every input: those sites have no causal path from the text. Concept information still travels through
the generated codes (self-attention and MLPs of any layer read them), so they may carry concepts too, but
only what the entries put into the codes.

Training is teacher forcing on clips of the toy world with MusicGen's delay pattern. Two tricks make
the text necessary (else the model reads the concept off the codes after a frame or two and ignores
the prompt): in two thirds of the rows each input frame is, with probability 1/2 or 9/10, swapped
for the same frame of a random other clip while the labels stay the clip's own codes (so the codes
so far do not say which words were asked for; the text does), with instrument and genre weighted
above mood and tempo in the loss (a single cross-attention learns the slots one after another, and
prompt following is judged on those two); and 20% of the rows are unconditional (text
states and mask zeroed, as ``generate`` builds the guidance rows), which classifier-free guidance needs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..concepts.concept_set import ConceptSet
from ..progress import progress
from ..zoo.architectures import SHAPES
from .codec import CODEC, random_fills
from .text import apply_masks
from .world import ToyWorld

PLANTED_LAYER = 2
PAD = 2048  # MusicGen's pad = bos = decoder start token, outside the codebooks
SWAP_RATES = (0.0, 0.5, 0.9)  # per training row, the fraction of its input frames taken from random other clips
#: loss weight per codebook: instrument and genre (what prompt following is judged on) first, mood and tempo less
CODEBOOK_WEIGHTS = (1.0, 1.0, 0.25, 0.25)
FRAMES = 50  # frames per training clip (1 s): the clip length the model knows, and its default run's


def toy_config(vocab_size: int, text_encoder=None):
    """MusicGen with the tiny shapes, the toy codec and a text encoder over ``vocab_size`` words (``text_encoder``:
    another T5 config, e.g. ``toy.text.block_text_config``'s)."""
    from transformers import EncodecConfig, MusicgenConfig, MusicgenDecoderConfig, T5Config

    shape = SHAPES["tiny"]
    text = text_encoder or T5Config(vocab_size=vocab_size, d_model=128, d_ff=256, num_layers=2, num_heads=4, d_kv=32)
    return MusicgenConfig(
        text_encoder=text, audio_encoder=EncodecConfig(**CODEC),
        decoder=MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, max_position_embeddings=2048,
                                      pad_token_id=PAD, bos_token_id=PAD, decoder_start_token_id=PAD,
                                      hidden_size=shape.hidden, ffn_dim=shape.ffn, num_hidden_layers=shape.layers,
                                      num_attention_heads=shape.heads))


def plant(model: torch.nn.Module, layer: int = PLANTED_LAYER) -> None:
    """Zero and freeze every cross-attention output projection but ``layer``'s: the text's only path."""
    plant_sites(model, (layer,))


def plant_sites(model: torch.nn.Module, layers: "tuple[int, ...]") -> None:
    """Zero and freeze every cross-attention output projection but those of ``layers`` (the entries)."""
    for i, decoder_layer in enumerate(model.decoder.model.decoder.layers):
        if i not in layers:
            weight = decoder_layer.encoder_attn.out_proj.weight
            assert decoder_layer.encoder_attn.out_proj.bias is None
            weight.data.zero_()
            weight.requires_grad_(False)


def delay(codes: torch.Tensor) -> torch.Tensor:
    """Codes ``(B, K, T)`` in MusicGen's delay pattern ``(B, K, T + K - 1)``: codebook c shifted by c, PAD elsewhere."""
    batch, k, frames = codes.shape
    out = torch.full((batch, k, frames + k - 1), PAD)
    for c in range(k):
        out[:, c, c:c + frames] = codes[:, c]
    return out


def batch_tensors(world: ToyWorld, concepts: ConceptSet, tokenizer, batch: int, frames: int,
                  rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One training batch: text, decoder inputs (with swapped frames) and labels (-100: not asked for)."""
    fills = random_fills(world, batch, rng)
    codes = torch.from_numpy(world.sample(fills, frames, rng))
    swap_rate = rng.choice(SWAP_RATES, size=(batch, 1))
    swapped = torch.from_numpy(rng.random((batch, frames)) < swap_rate)
    donors = codes[torch.from_numpy(rng.integers(batch, size=(batch, frames))), :, torch.arange(frames)]  # (B, T, K)
    inputs = delay(torch.where(swapped[:, None, :], donors.transpose(1, 2), codes))
    inputs = torch.cat([torch.full((batch, codes.shape[1], 1), PAD), inputs[:, :, :-1]], dim=-1)
    labels = delay(codes)
    labels[labels == PAD] = -100
    text = tokenizer([concepts.template.format(**f) for f in fills], padding=True, return_tensors="pt")
    unconditional = torch.from_numpy(rng.random(batch) < 0.2)
    return {"input_ids": text.input_ids, "attention_mask": text.attention_mask * ~unconditional[:, None],
            "unconditional": unconditional, "decoder_input_ids": inputs.reshape(-1, inputs.shape[-1]),
            "labels": labels}


def train_musicgen(model: torch.nn.Module, world: ToyWorld, concepts: ConceptSet, tokenizer, steps: int, seed: int,
                   batch: int = 32, frames: int = FRAMES, entries: "tuple[int, ...]" = (PLANTED_LAYER,),
                   masks: "list[tuple[torch.Tensor, torch.Tensor]]" = ()) -> torch.nn.Module:
    """Train the planted ``model`` on the toy world: every parameter that requires a gradient (the codec never),
    the cross-attention output projections of the ``entries``' layers only, and the coordinates that ``masks``
    (``toy.text.isolation_masks``) zero kept at exactly zero after every step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    plant_sites(model, entries)
    apply_masks(masks)
    model.audio_encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    weights = torch.tensor(CODEBOOK_WEIGHTS)[None, :, None]
    model.train()
    for _ in progress(range(steps), "toy musicgen", unit="step"):
        b = batch_tensors(world, concepts, tokenizer, batch, frames, rng)
        hidden = model.text_encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        hidden = hidden * ~b["unconditional"][:, None, None]  # the null condition, as generate builds it
        logits = model(encoder_outputs=(hidden,), attention_mask=b["attention_mask"],
                       decoder_input_ids=b["decoder_input_ids"]).logits
        labels = b["labels"]
        per_code = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                                   reduction="none").view(labels.shape)
        loss = (per_code * weights).sum() / ((labels >= 0) * weights).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        apply_masks(masks)
        schedule.step()
    return model.eval()
