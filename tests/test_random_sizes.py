"""The real-size random models: published configurations (checked on the meta device, no weights allocated) and
``small-random`` built, loaded and run by name."""

import pytest
import torch

from mgbench.errors import UnknownNameError
from mgbench.experiments.session import RunConfig
from mgbench.paths import random_folder
from mgbench.zoo.architectures import SHAPES
from mgbench.zoo.loading import MODEL_NAMES, is_available, load_musicgen, resolve_source
from mgbench.zoo.random_sizes import RANDOM_SIZES, published_config, random_musicgen_folder

T5_BASE_ENCODER_PARAMETERS = 109_628_544  # transformers' T5EncoderModel of t5-base
ENCODEC_32KHZ_PARAMETERS = 56_884_674  # facebook/encodec_32khz (no conv shortcuts)


def decoder_parameters(size: str) -> int:
    """MusicGen's decoder (with codebook embeddings and heads) counted by hand from the published shapes."""
    s = SHAPES[size]
    d, f, k, v = s.hidden, s.ffn, s.codebooks, s.vocab
    per_layer = 4 * d * d + 4 * d * d + 2 * d * f + 3 * 2 * d  # self-attn, cross-attn, MLP, three layer norms
    return s.layers * per_layer + k * (v + 1) * d + 2 * d + k * v * d  # + embeddings (pad id), final norm, heads


def on_meta(size: str):
    from transformers import MusicgenForConditionalGeneration

    with torch.device("meta"):
        return MusicgenForConditionalGeneration(published_config(size))


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_published_configurations_have_the_published_shapes(size):
    model = on_meta(size)  # no memory for weights: a configuration check only
    shape, cfg = SHAPES[size], model.config.decoder
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.ffn_dim, cfg.num_attention_heads) == (
        shape.layers, shape.hidden, shape.ffn, shape.heads)
    assert count(model.decoder) == decoder_parameters(size)
    assert count(model.text_encoder) == T5_BASE_ENCODER_PARAMETERS
    assert count(model.audio_encoder) == ENCODEC_32KHZ_PARAMETERS
    assert model.config.audio_encoder.frame_rate == 50 and model.config.audio_encoder.sampling_rate == 32000


def test_random_models_are_known_by_name_and_available_without_building(tmp_path, monkeypatch):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path))
    assert set(RANDOM_SIZES) == {"small-random", "medium-random", "large-random"} and set(RANDOM_SIZES) <= set(
        MODEL_NAMES)
    assert all(is_available(name) for name in RANDOM_SIZES) and not (tmp_path / "random").exists()
    for name in RANDOM_SIZES:
        config = RunConfig(model=name)
        assert config.classifier_name == "tiny" and config.resolved_dtype == "float32"
    with pytest.raises(UnknownNameError, match="small-random, medium-random, large-random"):
        random_musicgen_folder("huge-random")
    with pytest.raises(UnknownNameError, match="valid: toy, toy-early, toy-split, tiny, small, medium, large, "
                                               "small-random"):
        resolve_source("small-randon")
    with pytest.raises(UnknownNameError, match="valid: small, medium, large"):
        published_config("tiny")


def test_small_random_builds_loads_and_generates_at_the_published_size():
    """Built on first use (about 10 s, 2.4 GB under the mgbench home; later runs load it)."""
    from mgbench.engine.hooks import ADD, RowEdit
    from mgbench.engine.runner import GenerationSettings, MusicgenRunner
    from mgbench.engine.sites import Site

    loaded = load_musicgen("small-random")
    assert resolve_source("small-random") == str(random_folder("small-random", 0))
    assert count(loaded.model.decoder) == decoder_parameters("small") and loaded.num_layers == 24
    assert count(loaded.model.text_encoder) == T5_BASE_ENCODER_PARAMETERS
    weights = loaded.decoder_layers[0].fc1.weight
    assert abs(weights.std().item() - 0.02) < 0.002  # transformers' init of the published initializer_factor
    assert loaded.identity == load_musicgen("small-random").identity  # the same saved folder
    runner = MusicgenRunner(loaded, GenerationSettings(seconds=0.04))  # 2 frames + the delay pattern's 3 steps
    edit = RowEdit(Site(3, "mlp"), ADD, torch.ones(1024))
    audio = runner.generate(["Compose a happy jazz piece, with a piano melody."], edits=[edit])
    assert audio.shape[0] == 1 and torch.isfinite(audio).all()
