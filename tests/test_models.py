import json

import pytest
import torch

from mgbench.classify.loading import load_classifier
from mgbench.classify.passt import load_passt_folder, passt_checkpoint_path
from mgbench.errors import MissingWeightsError, UnknownNameError
from mgbench.model import tiny as tiny_module
from mgbench.model.loading import is_available, load_musicgen
from mgbench.paths import tiny_folder


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_tiny_musicgen_round_trips_and_is_deterministic(fresh_home, tiny):
    rebuilt = load_musicgen("tiny")  # built afresh in a new home, saved, and loaded with from_pretrained
    folder = tiny_folder("musicgen", 0)
    assert folder.parent.parent == fresh_home and (folder / "model.safetensors").is_file()
    ours, theirs = rebuilt.model.state_dict(), tiny.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert rebuilt.identity == folder.name and rebuilt.num_layers == 4 and rebuilt.frame_rate == 50
    assert rebuilt.sample_rate == 32000 and rebuilt.num_codebooks == 4
    tokens = rebuilt.processor(text=["Compose a happy jazz piece, with a piano melody."]).input_ids[0]
    assert 2 not in tokens  # every word is in the tiny vocabulary (2 is <unk>)


def test_tiny_passt_round_trips(fresh_home):
    classifier = load_classifier("tiny")
    audio = torch.randn(3, 32000 * 2) * 0.1
    logits = classifier.logits(audio, 32000)
    assert logits.shape == (3, 527) and torch.isfinite(logits).all()
    folder = tiny_folder("passt", 0)
    again = load_passt_folder(folder).logits(audio, 32000)
    torch.testing.assert_close(logits, again)
    assert json.loads((folder / "config.json").read_text())["classifier"] == "passt"
    # resampling: 16 kHz input is brought to PaSST's 32 kHz
    assert classifier.logits(audio[:, ::2], 16000).shape == (3, 527)


def test_interrupted_build_leaves_nothing(fresh_home, monkeypatch):
    def broken(folder, seed):
        (folder / "half-written").write_text("x")
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny_module, "_build_musicgen", broken)
    with pytest.raises(KeyboardInterrupt):
        tiny_module.tiny_musicgen_folder(seed=5)
    assert not list((fresh_home / "tiny").iterdir())


def test_missing_weights_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr("mgbench.model.loading.cached_snapshot", lambda repo: None)
    with pytest.raises(MissingWeightsError, match="'facebook/musicgen-small' are not in the local Hugging Face cache"
                                                  ".*hf download facebook/musicgen-small"):
        load_musicgen("small")
    assert not is_available("large") and is_available("tiny")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert str(tmp_path) in str(passt_checkpoint_path())
    with pytest.raises(MissingWeightsError, match="PaSST weights are not cached at .*passt-s-f128-p16-s10-ap.476"):
        load_classifier("passt")
    with pytest.raises(MissingWeightsError, match="cannot load MusicGen from folder"):
        load_musicgen(str(tmp_path))


def test_unknown_names_are_clear_errors():
    with pytest.raises(UnknownNameError, match="unknown model 'huge'; valid: tiny, small, medium, large"):
        load_musicgen("huge")
    with pytest.raises(UnknownNameError, match="unknown classifier 'ast'; valid: passt, tiny"):
        load_classifier("ast")


def test_half_precision_decoder_runs_with_edits_and_captures():
    from mgbench.model.hooks import ADD, Capture, RowEdit
    from mgbench.model.runner import GenerationSettings, MusicgenRunner
    from mgbench.model.sites import Site

    loaded = load_musicgen("tiny", dtype=torch.bfloat16)
    assert next(loaded.model.decoder.parameters()).dtype == torch.bfloat16
    assert next(loaded.model.text_encoder.parameters()).dtype == torch.float32
    capture = Capture([Site(1, "mlp")])
    audio = MusicgenRunner(loaded, GenerationSettings(seconds=0.5)).generate(
        ["Compose a happy jazz piece.", "Compose a groovy pop piece."],
        edits=[RowEdit(Site(1, "mlp"), ADD, torch.ones(64)), None], capture=capture)
    assert audio.shape == (2, 16000) and torch.isfinite(audio).all()
    assert capture.row_means(Site(1, "mlp")).dtype == torch.float32
