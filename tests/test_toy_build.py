"""`mgbench toy build --from-scratch`: a (very short) build of everything writes a folder the loaders read, with the
planted truth read off the weights; the shipped toy world is that folder, trained. (Worlds built on the shipped
one from recipes: test_toy_worlds.py.)"""

import json

import pytest

from mgbench.classify.loading import load_classifier
from mgbench.cli import main
from mgbench.experiments.session import RunConfig
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
    steps = ["--codec-steps", "2", "--classifier-steps", "2", "--classifier-clips", "16", "--musicgen-steps", "2",
             "--check-prompts", "2"]
    assert main(["toy", "build", "--out", str(out), "--from-scratch", *steps]) == 1  # two steps reach no target
    captured = capsys.readouterr()
    assert "below target: classifier_accuracy instrument" in captured.err
    record = json.loads((out / "build.json").read_text())
    assert set(record["classifier_accuracy"]) == set(record["prompt_following"]) == {"instrument", "genre"}
    assert record["plan"]["musicgen_steps"] == 2 and record["from_scratch"] and record["recipe"] == ["L2.cross_attn"]
    loaded = load_musicgen(str(out / "musicgen"))
    assert planted_truth(str(out / "musicgen"))["sites"] == ROLES == read_planted(loaded.model)["sites"]
    assert load_classifier(str(out / "classifier")).logits is not None
    assert planted_truth(str(out / "musicgen"))["classifier"] == "../classifier"  # its own, beside the model
    assert RunConfig(model=str(out / "musicgen")).classifier_name == str((out / "classifier").resolve())
    assert record["prompt_following_settings"]["classifier"] == "../classifier"
    assert main(["toy", "build", "--out", str(out)]) == 2  # never overwrites a folder
    assert "exists" in capsys.readouterr().err


def test_the_planted_truth_is_read_off_the_open_cross_attentions():
    loaded = load_musicgen("toy")
    loaded.decoder_layers[0].encoder_attn.out_proj.weight.data.fill_(0.1)  # a second way in for the text
    planted = read_planted(loaded.model)
    assert planted["recipe"] == ["L0.cross_attn", "L2.cross_attn"] and planted["entry_layer"] == 0
    assert planted["sites"]["L1.cross_attn"] == "no_path" and planted["sites"]["L0.mlp"] == "downstream"
    for layer in loaded.decoder_layers:
        layer.encoder_attn.out_proj.weight.data.zero_()
    with pytest.raises(ValueError, match="no open cross-attention"):
        read_planted(loaded.model)


def test_the_shipped_toy_world_is_what_its_build_record_says():
    folder = toy_folder()
    record = json.loads((folder / "build.json").read_text())
    assert json.loads((folder / "musicgen" / "planted.json").read_text()) == planted_truth("toy")
    assert planted_truth("toy")["entry_layer"] == PLANTED_LAYER and planted_truth("toy")["sites"] == ROLES
    read = read_planted(load_musicgen("toy").model)  # the file says what the weights do, and names the classifier
    assert {**read, "classifier": "toy"} == planted_truth("toy")
    for check, target in TARGETS.items():
        assert min(record[check].values()) >= target, (check, record[check])
