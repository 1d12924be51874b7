"""`mgbench toy build`: a (very short) build writes a folder the loaders read, with the planted truth read off the
weights; the shipped toy world is that folder, trained."""

import json

import pytest

from mgbench.classify.loading import load_classifier
from mgbench.cli import main
from mgbench.paths import toy_folder
from mgbench.toy.checks import TARGETS
from mgbench.toy.checks import planted_truth as read_planted
from mgbench.toy.musicgen import PLANTED_LAYER
from mgbench.zoo.loading import load_musicgen, planted_truth

ROLES = {"L0.self_attn": "through_codes", "L0.cross_attn": "no_path", "L0.mlp": "through_codes",
         "L1.self_attn": "through_codes", "L1.cross_attn": "no_path", "L1.mlp": "through_codes",
         "L2.self_attn": "through_codes", "L2.cross_attn": "entry", "L2.mlp": "downstream",
         "L3.self_attn": "downstream", "L3.cross_attn": "no_path", "L3.mlp": "downstream"}


def test_a_short_build_writes_a_loadable_folder_and_names_the_missed_targets(tmp_path, capsys):
    out = tmp_path / "toy"
    steps = ["--codec-steps", "2", "--classifier-steps", "2", "--classifier-clips", "16", "--musicgen-steps", "2"]
    assert main(["toy", "build", "--out", str(out), *steps]) == 1  # two steps of training reach no target
    captured = capsys.readouterr()
    assert "below target: classifier_accuracy instrument" in captured.err
    record = json.loads((out / "build.json").read_text())
    assert set(record["classifier_accuracy"]) == set(record["prompt_following"]) == {"instrument", "genre"}
    assert record["plan"]["musicgen_steps"] == 2
    loaded = load_musicgen(str(out / "musicgen"))
    assert planted_truth(str(out / "musicgen"))["sites"] == ROLES == read_planted(loaded.model)["sites"]
    assert load_classifier(str(out / "classifier")).logits is not None
    assert main(["toy", "build", "--out", str(out)]) == 2  # never overwrites a folder
    assert "exists" in capsys.readouterr().err


def test_the_planted_truth_needs_exactly_one_open_cross_attention():
    loaded = load_musicgen("toy")
    layer = loaded.decoder_layers[0].encoder_attn.out_proj
    layer.weight.data.fill_(0.1)  # a second way in for the text: no single entry any more
    with pytest.raises(ValueError, match=r"exactly one open cross-attention; this one has \[0, 2\]"):
        read_planted(loaded.model)


def test_the_shipped_toy_world_is_what_its_build_record_says():
    folder = toy_folder()
    record = json.loads((folder / "build.json").read_text())
    assert json.loads((folder / "musicgen" / "planted.json").read_text()) == planted_truth("toy")
    assert planted_truth("toy")["entry_layer"] == PLANTED_LAYER and planted_truth("toy")["sites"] == ROLES
    assert read_planted(load_musicgen("toy").model) == planted_truth("toy")  # the file says what the weights do
    for check, target in TARGETS.items():
        assert min(record[check].values()) >= target, (check, record[check])
