"""Recipes of planted toy worlds: parsing and its one-line errors, and the roles they give every site."""

import pytest

from mgbench.cli import main
from mgbench.engine.sites import Site
from mgbench.errors import ConfigError
from mgbench.toy.recipe import OTHER, Recipe, site_roles

CATEGORIES = ("instrument", "genre")


def parse(*texts):
    return Recipe.parse(list(texts), CATEGORIES, 4)


def test_a_recipe_reads_sites_and_categories_and_writes_them_back():
    split = parse("L3.cross_attn:genre", "L1.cross_attn:instrument")
    assert split.restricted and split.texts == ["L1.cross_attn:instrument", "L3.cross_attn:genre"]  # decoder order
    assert split.entries_of("instrument") == [Site(1, "cross_attn")] and split.entries_of(OTHER) == []
    assert parse(*split.texts) == split
    both = parse("L0.cross_attn:genre,instrument")  # categories come back in the concept set's order
    assert both.texts == ["L0.cross_attn:instrument,genre"] and both.blocks(both.entries[0]) == CATEGORIES
    mixed = parse("L2.cross_attn:instrument", "L0.cross_attn")  # an entry without categories: what is unclaimed
    assert mixed.blocks(mixed.entries[0]) == ("genre", OTHER)
    plain = parse("L0.cross_attn")
    assert not plain.restricted and plain.blocks(plain.entries[0]) == (*CATEGORIES, OTHER)


@pytest.mark.parametrize("texts, message", [
    ((), "needs at least one --entry"),
    (("L4.cross_attn",), "an entry is a cross-attention site, L0.cross_attn to L3.cross_attn"),
    (("L1.mlp",), "an entry is a cross-attention site"),
    (("cross_attn",), "an entry is a cross-attention site"),
    (("L1.cross_attn:tempo",), "unknown category 'tempo'; valid: instrument, genre"),
    (("L1.cross_attn:",), "unknown category ''"),
    (("L1.cross_attn:genre,genre",), "names a category twice"),
    (("L1.cross_attn:genre", "L2.cross_attn:genre"),
     "category 'genre' is in two entries (L1.cross_attn, L2.cross_attn)"),
    (("L1.cross_attn", "L1.cross_attn:genre"), "site L1.cross_attn is given twice"),
])
def test_bad_recipes_are_one_line_errors(texts, message):
    with pytest.raises(ConfigError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")) as error:
        parse(*texts)
    assert "\n" not in str(error.value)


def test_the_command_line_names_a_bad_entry_in_one_line(tmp_path, capsys):
    assert main(["toy", "build", "--out", str(tmp_path / "w"), "--entry", "L1.self_attn"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mgbench: error: entry 'L1.self_attn'") and "\n" not in err
    assert not (tmp_path / "w").exists()


def test_roles_follow_the_order_of_a_decoding_step():
    entries = [Site(1, "cross_attn")]
    open_sites = entries + [Site(3, "cross_attn")]
    roles = site_roles(entries, open_sites, 4)
    assert roles["L1.cross_attn"] == "entry" and roles["L0.cross_attn"] == roles["L2.cross_attn"] == "no_path"
    assert roles["L1.self_attn"] == roles["L0.mlp"] == "through_codes"  # before the entry in the step
    assert roles["L1.mlp"] == roles["L3.cross_attn"] == roles["L2.self_attn"] == "downstream"  # L3: another's entry
    nowhere = site_roles([], open_sites, 4)  # a category whose words enter nowhere
    assert set(nowhere.values()) == {"through_codes", "no_path"} and nowhere["L3.cross_attn"] == "through_codes"


def _with(concept_file, **extra):
    from mgbench.concepts.concept_set import load_concepts

    return load_concepts(concept_file({"category": "genre", "slot": "genre", "labels": ["Hip hop music"], **extra}))


def test_a_restricted_world_needs_equally_long_words_and_disjoint_categories(concept_file, concepts):
    from mgbench.toy.text import text_layout
    from mgbench.zoo.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    layout = text_layout(concepts, tokenizer, 64)
    assert [layout.dims[b] for b in ("instrument", "genre", OTHER)] == [range(0, 16), range(16, 32), range(32, 64)]
    assert tokenizer.convert_ids_to_tokens(list(layout.tokens["instrument"])) == sorted(
        ["guitar", "piano", "trumpet", "violin", "flute"], key=tokenizer.convert_tokens_to_ids)
    with pytest.raises(ConfigError, match="the genre words have different numbers of tokens"):
        text_layout(_with(concept_file, name="rap", word="hip hop"), tokenizer, 64)  # 2 tokens
    with pytest.raises(ConfigError, match="a token belongs to two categories"):
        text_layout(_with(concept_file, name="fiddle", category="instrument", slot="instrument", word="jazz",
                          labels=["Violin, fiddle"]), tokenizer, 64)


def test_prompt_following_is_judged_only_where_a_category_enters():
    from mgbench.toy.build import missed_targets

    record = {"classifier_accuracy": {"instrument": 1.0, "genre": 0.95},
              "prompt_following": {"instrument": 0.9, "genre": 0.2}}
    assert missed_targets(record, {"entry_layers": {"instrument": 1, "genre": 3}}) == ["prompt_following genre"]
    assert missed_targets(record, {"entry_layers": {"instrument": 1, "genre": None}}) == []
