"""The per-token, category-block text side of worlds with restricted entries: isolation exact by construction.

Its text encoder is a T5 with no layers: each token's state is the final RMSNorm of its embedding alone
(no token sees another), as wide as the decoder (so MusicGen has no ``enc_to_dec_proj``: the states go to
the cross-attentions as they are). The state's dimensions are cut into blocks, one per category of the
concept set and one (``OTHER``) for every other word; a word's embedding is non-zero only in its
category's block, and RMSNorm keeps zero coordinates zero. At each entry, the key and value projections'
columns outside the blocks that reach it (``Recipe.blocks``) are zero. So a word of another category gives
exactly the same key and value (zero) as a template word: the entry's output is bit-identical whichever
word of another category the prompt holds. The masks are applied after every optimizer step, so the zeros
stay exact.

One thing still reaches every entry from every word: how many tokens the prompt has (the softmax over
the tokens sums over all of them). Every word of a category has the same number of tokens (checked), so
the count depends on the template's other slots (tempo: ``slow to medium`` is 3 tokens), never on which
instrument or genre the prompt names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..concepts.concept_set import ConceptSet
from ..errors import ConfigError
from .recipe import OTHER, Recipe
from .world import ToyWorld


@dataclass(frozen=True)
class TextLayout:
    """Per block (each category, then ``OTHER``): its token ids and its dimensions of the text state."""

    tokens: dict[str, tuple[int, ...]]
    dims: dict[str, range]

    def embedding_mask(self, vocab_size: int, width: int) -> torch.Tensor:
        """``(vocab, width)``: 1 where a token's embedding may be non-zero (its block's dimensions)."""
        mask = torch.zeros(vocab_size, width)
        for block, tokens in self.tokens.items():
            for token in tokens:
                mask[token, self.dims[block].start:self.dims[block].stop] = 1
        return mask

    def column_mask(self, blocks: "tuple[str, ...]", width: int) -> torch.Tensor:
        """``(width,)``: 1 on the dimensions of ``blocks``."""
        mask = torch.zeros(width)
        for block in blocks:
            mask[self.dims[block].start:self.dims[block].stop] = 1
        return mask


def category_tokens(concepts: ConceptSet, tokenizer) -> dict[str, list[list[int]]]:
    """Per category, the token ids of each word its slot can hold (the toy world's words of that slot)."""
    world = ToyWorld.from_concepts(concepts)
    return {category: [tokenizer(word, add_special_tokens=False).input_ids
                       for word in world.words[concepts.members(category)[0].slot]] for category in concepts.categories}


def text_layout(concepts: ConceptSet, tokenizer, width: int) -> TextLayout:
    """The blocks of a ``width``-wide text state: ``width // (categories + 2)`` dimensions per category, the rest
    for ``OTHER``. One-line errors when a token belongs to two categories or a category's words differ in their
    number of tokens (then isolation would not be exact)."""
    words = category_tokens(concepts, tokenizer)
    tokens: dict[str, tuple[int, ...]] = {}
    for category, ids in words.items():
        if len({len(word) for word in ids}) > 1:
            raise ConfigError(f"the {category} words have different numbers of tokens; a restricted entry's isolation "
                              "is exact only when every word of a category is as many tokens long")
        tokens[category] = tuple(sorted({t for word in ids for t in word}))
    flat = [t for ids in tokens.values() for t in ids]
    if len(flat) != len(set(flat)):
        raise ConfigError("a token belongs to two categories' words; their blocks would share it")
    tokens[OTHER] = tuple(t for t in range(len(tokenizer)) if t not in flat and t != tokenizer.pad_token_id)
    size = width // (len(words) + 2)
    dims = {category: range(i * size, (i + 1) * size) for i, category in enumerate(words)}
    dims[OTHER] = range(len(words) * size, width)
    return TextLayout(tokens, dims)


def block_text_config(vocab_size: int, width: int):
    """A T5 with no layers and ``width``-wide states: each token's state is RMSNorm(its embedding)."""
    from transformers import T5Config

    return T5Config(vocab_size=vocab_size, d_model=width, d_ff=width, num_layers=0, num_heads=1, d_kv=width)


def isolation_masks(model: torch.nn.Module, recipe: Recipe,
                    layout: TextLayout) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, mask) pairs whose zeros make the isolation exact: the text embedding (each token in its block)
    and each entry's key and value projections (columns of the blocks that reach it)."""
    embedding = model.text_encoder.get_input_embeddings().weight
    width = embedding.shape[1]
    pairs = [(embedding, layout.embedding_mask(*embedding.shape))]
    layers = model.decoder.model.decoder.layers
    for entry in recipe.entries:
        attention = layers[entry.site.layer].encoder_attn
        columns = layout.column_mask(recipe.blocks(entry), width)[None, :]
        pairs += [(attention.k_proj.weight, columns.expand_as(attention.k_proj.weight)),
                  (attention.v_proj.weight, columns.expand_as(attention.v_proj.weight))]
    return pairs


@torch.no_grad()
def apply_masks(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Zero every masked coordinate (exactly)."""
    for parameter, mask in pairs:
        parameter.mul_(mask.to(parameter.dtype))
