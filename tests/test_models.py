import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mgbench.classify.loading import load_classifier
from mgbench.classify.passt import load_passt_folder, passt_checkpoint_path
from mgbench.errors import MissingWeightsError, UnknownNameError
from mgbench.experiments.session import RunConfig, Session
from mgbench.paths import tiny_folder
from mgbench.zoo import tiny as tiny_module
from mgbench.zoo.loading import is_available, load_musicgen


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
    assert rebuilt.identity == tiny.identity and rebuilt.identity.startswith("sha256:")
    assert rebuilt.num_layers == 4 and rebuilt.frame_rate == 50
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
    monkeypatch.setattr("mgbench.zoo.loading.cached_snapshot", lambda repo: None)
    with pytest.raises(MissingWeightsError, match="'facebook/musicgen-small' are not in the local Hugging Face cache"
                                                  ".*hf download facebook/musicgen-small"):
        load_musicgen("small")
    assert not is_available("large") and is_available("tiny")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    assert str(tmp_path) in str(passt_checkpoint_path())
    with pytest.raises(MissingWeightsError, match="PaSST weights are not cached at .*passt-s-f128-p16-s10-ap.476"):
        load_classifier("passt")
    with pytest.raises(MissingWeightsError, match="holds no MusicGen model"):
        load_musicgen(str(tmp_path))


def test_unknown_names_are_clear_errors():
    with pytest.raises(UnknownNameError, match="unknown model 'huge'; valid: toy, toy-early, toy-split, tiny, small, "
                                                    "medium, large"):
        load_musicgen("huge")
    with pytest.raises(UnknownNameError, match="unknown classifier 'ast'; valid: passt, toy, tiny"):
        load_classifier("ast")


def test_half_precision_decoder_runs_with_edits_and_captures():
    from mgbench.engine.hooks import ADD, Capture, RowEdit
    from mgbench.engine.runner import GenerationSettings, MusicgenRunner
    from mgbench.engine.sites import Site

    loaded = load_musicgen("tiny", dtype=torch.bfloat16)
    assert next(loaded.model.decoder.parameters()).dtype == torch.bfloat16
    assert next(loaded.model.text_encoder.parameters()).dtype == torch.float32
    capture = Capture([Site(1, "mlp")])
    audio = MusicgenRunner(loaded, GenerationSettings(seconds=0.5)).generate(
        ["Compose a happy jazz piece.", "Compose a groovy pop piece."],
        edits=[RowEdit(Site(1, "mlp"), ADD, torch.ones(64)), None], capture=capture)
    assert audio.shape == (2, 16000) and torch.isfinite(audio).all()
    assert capture.row_means(Site(1, "mlp")).dtype == torch.float32


def test_a_models_identity_is_its_content(tmp_path, tiny):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_folder("musicgen", 0), copy)
    assert load_musicgen(str(copy)).identity == tiny.identity  # another folder, the same weights
    before = Session(RunConfig(model=str(copy), classifier="tiny", cache=str(tmp_path / "cache"))).store.dir
    weights = load_file(copy / "model.safetensors")
    name = "decoder.model.decoder.layers.0.fc2.weight"
    weights[name] = weights[name] * 1.001  # edited in place: a new model, whose cached numbers do not apply
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    edited = load_musicgen(str(copy))
    assert edited.identity != tiny.identity
    after = Session(RunConfig(model=str(copy), classifier="tiny", cache=str(tmp_path / "cache"))).store.dir
    assert after != before


CAPABILITIES = ["default", "avx2"] + (["avx512"] if "avx512f" in Path("/proc/cpuinfo").read_text() else [])
PROBE = """
import hashlib, torch
from mgbench.classify.loading import load_classifier
from mgbench.zoo.loading import load_musicgen
control = torch.empty(4096).normal_(generator=torch.Generator().manual_seed(0))  # torch's own, CPU-dependent
print(load_musicgen("tiny").identity, load_classifier("tiny").identity,
      hashlib.sha256(control.numpy().tobytes()).hexdigest()[:16])
"""


@pytest.mark.skipif(platform.machine() != "x86_64", reason="ATEN_CPU_CAPABILITY names x86 vector units")
def test_tiny_models_are_the_same_on_every_cpu(tmp_path):
    seen = {}
    for capability in CAPABILITIES:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "MGBENCH_HOME": str(tmp_path / capability)}
        out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
        seen[capability] = out.stdout.split()
    models = {tuple(v[:2]) for v in seen.values()}
    controls = {v[2] for v in seen.values()}
    assert len(models) == 1, seen  # the same tiny MusicGen and PaSST, bit for bit, on every vector unit
    assert len(controls) > 1, seen  # while torch's normal_ does differ: the switch took effect
