"""Text-defined concepts (issue 16, part 4): concepts with their own labels and texts, read by either recognizer."""

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from mgbench.concepts.audioset import label_index, label_names
from mgbench.concepts.concept_set import load_concepts
from mgbench.concepts.recognition import CLAP_TEMPLATE, clap_text, recognition
from mgbench.errors import ConfigError, UnknownNameError
from mgbench.experiments.metrics import ndcg


def test_the_shipped_concepts_are_defined_as_before(concepts):
    """No shipped concept has a text, so each definition (what the cache key hashes) has the fields it had."""
    assert all(c.text is None for c in concepts.concepts)
    assert [c.definition() for c in concepts.concepts] == [
        {"name": c.name, "category": c.category, "slot": c.slot, "word": c.word, "labels": c.labels}
        for c in concepts.concepts]


def test_a_concept_names_labels_a_text_or_both(concept_file, cello):
    harp = {"name": "harp", "category": "instrument", "slot": "instrument", "word": "harp", "text": "a harp solo"}
    cset = load_concepts(concept_file(cello, harp))
    loaded = cset.get("cello")
    assert loaded.label_indices == (label_index("Cello"), label_index("Bowed string instrument"))
    assert loaded.definition() == {**cello, "labels": tuple(cello["labels"])} and cset.get("harp").labels == ()
    assert cset.prompts("cello", 1) == ["Compose a emotional rock piece, with a cello melody. Use a fast tempo."]
    assert clap_text(loaded) == "a cello melody" and clap_text(cset.get("harp")) == "a harp solo"
    assert clap_text(cset.get("guitar")) == CLAP_TEMPLATE.format("Guitar") == "This is a sound of Guitar."


@pytest.mark.parametrize("change, error, message", [
    ({"labels": [], "text": None}, ConfigError, "concept 'cello' in {path} has neither \"labels\" nor \"text\"; give "
                                                "AudioSet labels (for --recognizer passt), a text (for --recognizer "
                                                "clap), or both"),
    ({"labels": ["Celo"]}, UnknownNameError, "unknown AudioSet label 'Celo'; valid: Cello"),
    ({"text": "  "}, ConfigError, "concept 'cello' has text '  '; give a non-empty description"),
    ({"labels": "Cello"}, ConfigError, "concept 'cello' has labels ['C', 'e', 'l', 'l', 'o']; give a list of AudioSet "
                                       "display names such as [\"Cello\", \"Bowed string instrument\"]"),
])
def test_bad_concept_definitions_are_clear_errors(concept_file, cello, change, error, message):
    concept = {k: v for k, v in {**cello, **change}.items() if v is not None}
    path = concept_file(concept)
    with pytest.raises(error) as raised:
        load_concepts(path)
    assert message.format(path=path) in str(raised.value)


def test_passt_reads_the_audioset_labels(concepts):
    seen = recognition(concepts, "passt")
    assert seen.classes == tuple(label_names())
    for c in concepts.concepts:
        assert seen.relevant(c) == c.label_indices and seen.odds_column(c) == c.odds_label
    logits = torch.zeros(527)
    logits[concepts.get("piano").odds_label] = 1.0
    logits[label_index("Acoustic guitar")] = 2.0  # a guitar label, but not its odds label
    assert seen.recognized(logits, concepts.get("piano")) and not seen.recognized(logits, concepts.get("guitar"))
    assert seen.top(logits[None], 2) == ["Acoustic guitar | Piano"]


def test_clap_reads_one_text_per_concept(concept_file, cello):
    cset = load_concepts(concept_file(cello))
    seen = recognition(cset, "clap")
    assert seen.classes == (*(f"This is a sound of {c.labels[0]}." for c in cset.concepts[:-1]), "a cello melody")
    assert [seen.relevant(c) for c in cset.concepts] == [(i,) for i in range(11)]
    scores = torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 4.0])  # piano, jazz, cello
    assert seen.recognized(scores, cset.get("cello"))  # among the instruments; jazz is a genre
    assert not seen.recognized(scores, cset.get("piano")) and seen.recognized(scores, cset.get("jazz"))
    assert seen.top(scores[None], 3) == ["This is a sound of Jazz. | a cello melody | This is a sound of Piano."]


def test_clap_ndcg_ranks_the_concepts_as_sklearn_does(concept_file, cello):
    """With CLAP, NDCG ranks the set's concepts for a clip, the intended one the only relevant one."""
    cset = load_concepts(concept_file(cello))
    seen = recognition(cset, "clap")
    scores = torch.randn(6, len(seen.classes), generator=torch.Generator().manual_seed(1))
    for concept in cset.concepts:
        relevance = np.zeros((1, len(seen.classes)))
        relevance[0, seen.relevant(concept)] = 1.0
        for row in scores:
            assert ndcg(row, seen.relevant(concept)).item() == pytest.approx(
                ndcg_score(relevance, row[None].numpy()), abs=1e-6)


def test_recognizer_errors(concept_file, cello):
    harp = {"name": "harp", "category": "instrument", "slot": "instrument", "word": "harp", "text": "a harp solo"}
    path = concept_file(harp)
    with pytest.raises(ConfigError, match=f"concept 'harp' in {path} has no AudioSet labels, which --recognizer passt "
                                          "scores; add \"labels\" or use --recognizer clap"):
        recognition(load_concepts(path), "passt")
    with pytest.raises(UnknownNameError, match="unknown recognizer 'clip'; valid: passt, clap"):
        recognition(load_concepts(path), "clip")
    twin = {**cello, "text": "a harp solo"}
    with pytest.raises(ConfigError, match="concepts 'harp' and 'cello' have the same CLAP text 'a harp solo'"):
        recognition(load_concepts(concept_file(harp, twin)), "clap")
