import json

import pandas as pd
import pytest

from mgbench.concepts.audioset import audioset_labels, label_index
from mgbench.concepts.concept_set import load_concepts, pair_type
from mgbench.errors import ConfigError, UnknownNameError

# Table 1 as AudioSet indices (shared/paper/README.md); the first label is the odds label.
TABLE1 = {
    "guitar": [140, 143, 141, 142, 139], "piano": [153, 154, 152], "trumpet": [187, 185],
    "violin": [191, 190, 189], "classical": [237], "jazz": [235, 226], "pop": [216],
    "rock": [219, 224, 223, 221], "edm": [245, 239, 241, 243, 242, 240], "hiphop": [217],
}


def test_labels_match_the_shipped_csv(concepts):
    table = audioset_labels()
    assert len(table) == 527 and table.loc[140, "display_name"] == "Guitar"
    assert {c.name: list(c.label_indices) for c in concepts.concepts} == TABLE1
    assert {c.name: c.odds_label for c in concepts.concepts} == {k: v[0] for k, v in TABLE1.items()}


def test_reference_prompt_order(concepts):
    guitar = concepts.prompts("guitar")
    assert len(guitar) == 100 and len(set(guitar)) == 100
    assert guitar[:2] == ["Compose a emotional rock piece, with a guitar melody. Use a fast tempo.",
                          "Compose a emotional rock piece, with a guitar melody. Use a medium tempo."]
    # genre outermost, then mood, then tempo: 25 prompts per genre; 100 stop before 'classical'
    assert guitar[25].startswith("Compose a emotional pop piece") and guitar[5].startswith("Compose a passionate rock")
    assert not any("classical" in p for p in guitar)
    edm = concepts.prompts("edm")
    assert edm[0] == "Compose a emotional electronic piece, with a guitar melody. Use a fast tempo."
    assert edm[5] == "Compose a emotional electronic piece, with a piano melody. Use a fast tempo."
    assert edm[25].startswith("Compose a passionate electronic piece, with a guitar")
    assert all("electronic" in p for p in edm)
    first = "Compose a emotional hiphop piece, with a guitar melody. Use a fast tempo."
    assert concepts.prompts("hiphop", 1) == [first]


def test_pair_types(concepts):
    assert pair_type(concepts.get("guitar"), concepts.get("jazz")) == "instrument->genre"
    assert pair_type(concepts.get("rock"), concepts.get("pop")) == "genre->genre"


def test_unknown_concept_is_a_clear_error(concepts):
    with pytest.raises(UnknownNameError, match="unknown concept 'drums'.*guitar, piano"):
        concepts.get("drums")
    with pytest.raises(ConfigError, match="only 125 prompts"):
        concepts.prompts("guitar", 200)


def test_user_defined_concepts(tmp_path):
    raw = json.loads((load_concepts.__globals__["resources"].files("mgbench.data") / "concepts.json").read_text())
    raw["concepts"].append({"name": "flute", "category": "instrument", "slot": "instrument", "word": "flute",
                            "labels": ["Flute", "Wind instrument, woodwind instrument"]})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(raw))
    cset = load_concepts(path)
    woodwind = label_index("Wind instrument, woodwind instrument")
    assert cset.get("flute").label_indices == (label_index("Flute"), woodwind)
    assert cset.prompts("flute", 1) == ["Compose a emotional rock piece, with a flute melody. Use a fast tempo."]
    raw["concepts"][-1]["labels"] = ["Flutes"]
    path.write_text(json.dumps(raw))
    with pytest.raises(UnknownNameError, match="AudioSet label 'Flutes'.*Flute"):
        load_concepts(path)
    path.write_text("{}")
    with pytest.raises(ConfigError, match="malformed"):
        load_concepts(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_concepts(tmp_path / "missing.json")


def test_vocabulary_covers_every_prompt_word(concepts):
    vocab = set(concepts.vocabulary())
    words = {w.strip(".,").lower() for c in concepts.names for p in concepts.prompts(c) for w in p.split()}
    assert words <= vocab
    assert isinstance(audioset_labels(), pd.DataFrame)


def test_a_selection_names_each_concept_once(concepts):
    assert [c.name for c in concepts.select(["piano", "guitar"])] == ["piano", "guitar"]
    with pytest.raises(ConfigError, match="concept 'guitar' is named more than once; name each concept once"):
        concepts.select(["guitar", "piano", "guitar"])
