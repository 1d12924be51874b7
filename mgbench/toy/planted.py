"""The planted truth of a toy MusicGen, read off its weights (what ``planted.json`` holds).

- The *open* cross-attentions are those whose output projection (no bias) is not zero; every other one
  outputs exactly 0 for every input.
- Which words reach an open cross-attention: with a per-token text side (a T5 with no layers,
  ``toy.text``), a word reaches it when its text state (the encoder run on its tokens alone) is non-zero
  on a column of the cross-attention's key or value projection; with a T5 that mixes its tokens, every
  word reaches every open cross-attention.
- From those: the entries and their categories, the roles of every site per category and for the text
  as a whole (``recipe.site_roles``), and a statement in words.
"""

from __future__ import annotations

import torch

from ..concepts.concept_set import ConceptSet, load_concepts
from ..engine.sites import Site
from .recipe import OTHER, Entry, site_roles
from .text import category_tokens


def _states(model: torch.nn.Module, tokens: list[int]) -> torch.Tensor:
    """The text states ``(len(tokens), width)`` the decoder's cross-attentions read for these tokens, each alone."""
    ids = torch.tensor(tokens)[:, None]
    with torch.no_grad():
        states = model.text_encoder(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[:, 0]
        projection = getattr(model, "enc_to_dec_proj", None)
        return projection(states) if projection is not None else states


def _reach(model: torch.nn.Module, open_sites: list[Site], blocks: dict[str, list[int]]) -> dict[str, list[Site]]:
    """Per block of tokens, the open cross-attentions its tokens reach."""
    if model.text_encoder.config.num_layers > 0:  # the encoder mixes tokens: every word reaches every entry
        return {block: list(open_sites) for block in blocks}
    layers = model.decoder.model.decoder.layers
    reach = {}
    for block, tokens in blocks.items():
        support = _states(model, tokens).ne(0).any(0) if tokens else torch.zeros(0, dtype=torch.bool)
        reach[block] = []
        for site in open_sites:
            attention = layers[site.layer].encoder_attn
            columns = attention.k_proj.weight.ne(0).any(0) | attention.v_proj.weight.ne(0).any(0)
            if tokens and (support & columns).any():
                reach[block].append(site)
    return reach


def planted_truth(model: torch.nn.Module, tokenizer=None, concepts: "ConceptSet | None" = None) -> dict:
    """The planted truth of a toy ``model`` (``tokenizer`` and ``concepts``: the toy world's by default)."""
    if tokenizer is None:
        from ..zoo.tiny import build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
    concepts = concepts or load_concepts()
    layers = model.decoder.model.decoder.layers
    open_sites = [Site(i, "cross_attn") for i, layer in enumerate(layers) if layer.encoder_attn.out_proj.weight.any()]
    if not open_sites:
        raise ValueError("no open cross-attention: every output projection is zero, so the text reaches no site")
    words = category_tokens(concepts, tokenizer)
    blocks = {category: sorted({t for word in ids for t in word}) for category, ids in words.items()}
    named = {t for ids in blocks.values() for t in ids}
    blocks[OTHER] = [t for t in range(len(tokenizer)) if t not in named and t != tokenizer.pad_token_id]
    reach = _reach(model, open_sites, blocks)
    isolated = any(len(sites) < len(open_sites) for sites in reach.values())
    uneven = [c for c, ids in words.items() if len({len(w) for w in ids}) > 1]
    if isolated and uneven:
        raise ValueError(f"the {uneven[0]} words differ in their numbers of tokens: the softmax at the other entries "
                         "would depend on which one the prompt holds, so the isolation is not exact")
    categories = [c for c in words]
    entries = [{"site": str(site), "categories": [c for c in categories if site in reach[c]],
                "other_words": site in reach[OTHER]} for site in open_sites]
    recipe = [str(Entry(site, () if e["other_words"] else tuple(e["categories"])))
              for site, e in zip(open_sites, entries)]
    num_layers = len(layers)
    return {"entry_layer": open_sites[0].layer, "sites": site_roles(open_sites, open_sites, num_layers),
            "statement": statement(open_sites, reach, categories),
            "recipe": recipe, "entries": entries,
            "entry_layers": {c: (reach[c][0].layer if reach[c] else None) for c in categories},
            "roles_by_category": {c: site_roles(reach[c], open_sites, num_layers) for c in categories}}


def statement(open_sites: list[Site], reach: dict[str, list[Site]], categories: list[str]) -> str:
    """The planted mechanism in words."""
    zero = "every other cross-attention's output projection is zero (its output is exactly 0 for every input)"
    if all(reach[block] == open_sites for block in reach):
        return f"the prompt's text enters the decoder only through {' and '.join(map(str, open_sites))}; {zero}"
    parts = [f"{c} words only through {' and '.join(map(str, reach[c]))}" if reach[c] else f"{c} words through "
             "no site" for c in categories]
    other = (f"the template's other words (mood, tempo, ...) through {' and '.join(map(str, reach[OTHER]))}"
             if reach[OTHER] else "the template's other words (mood, tempo, ...) through no site")
    return (f"{'; '.join(parts)}; {other} (each word's text state lies in its category's block of dimensions, and "
            f"each entry's key and value projections read only its blocks: exact for any decoder state); {zero}")
