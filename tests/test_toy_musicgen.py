"""The toy MusicGen's planted mechanism holds by construction, before and after training."""

import numpy as np
import pytest
import torch

from mgbench.engine.hooks import REPLACE, Capture, RowEdit
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site
from mgbench.toy.musicgen import PAD, PLANTED_LAYER, batch_tensors, delay, toy_config, train_musicgen
from mgbench.toy.world import ToyWorld
from mgbench.zoo.loading import LoadedMusicgen
from mgbench.zoo.tiny import build_tiny_tokenizer


@pytest.fixture(scope="module")
def toy(concepts):
    from transformers import EncodecFeatureExtractor, MusicgenForConditionalGeneration, MusicgenProcessor

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    model = MusicgenForConditionalGeneration(toy_config(len(tokenizer))).eval()
    model.generation_config.update(decoder_start_token_id=PAD, pad_token_id=PAD, bos_token_id=PAD)
    train_musicgen(model, ToyWorld.from_concepts(concepts), concepts, tokenizer, steps=2, seed=0, batch=4, frames=10)
    processor = MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(sampling_rate=32000), tokenizer=tokenizer)
    return LoadedMusicgen("toy-test", model, processor, "test")


def test_training_keeps_the_unplanted_cross_attention_at_exactly_zero(toy):
    for i, layer in enumerate(toy.decoder_layers):
        weight = layer.encoder_attn.out_proj.weight
        assert weight.abs().max() > 0 if i == PLANTED_LAYER else not weight.any()


def _codes(runner, prompts, edits=None):
    calls = []
    decoder = runner.loaded.model.decoder.model.decoder
    handle = decoder.register_forward_pre_hook(lambda m, a, kw: calls.append(kw["input_ids"].clone()), with_kwargs=True)
    try:
        runner.generate(prompts, edits=edits)
    finally:
        handle.remove()
    return torch.cat(calls, dim=-1)


def test_unplanted_sites_carry_nothing_and_editing_them_with_their_means_changes_nothing(toy, concepts):
    runner = MusicgenRunner(toy, GenerationSettings(seconds=0.2, seed=1))
    prompts = concepts.prompts("guitar", 2)
    sites = [Site(i, "cross_attn") for i in range(toy.num_layers)]
    capture = Capture(sites)
    runner.generate(prompts, capture=capture)
    for site in sites:
        means = capture.row_means(site)
        assert means.abs().max() > 0 if site.layer == PLANTED_LAYER else not means.any()
    baseline = _codes(runner, prompts)
    other = Capture(sites)
    runner.generate(concepts.prompts("jazz", 2), capture=other)
    for site in sites:
        if site.layer == PLANTED_LAYER:  # the text's path: an edit there reaches the codes
            vector = torch.randn(toy.model.decoder.config.hidden_size) * 10
            assert not torch.equal(_codes(runner, prompts, [RowEdit(site, REPLACE, vector)] * 2), baseline)
        else:  # the interchange with another concept's mean (exactly 0 there) changes nothing, bit for bit
            mean = other.half_means(site, 2)[0]
            assert torch.equal(_codes(runner, prompts, [RowEdit(site, REPLACE, mean)] * 2), baseline)


def test_training_batches_follow_the_delay_pattern(concepts):
    world = ToyWorld.from_concepts(concepts)
    b = batch_tensors(world, concepts, build_tiny_tokenizer(), batch=6, frames=12, rng=np.random.default_rng(3))
    labels, inputs = b["labels"], b["decoder_input_ids"].view(6, 4, -1)
    assert labels.shape == inputs.shape == (6, 4, 15)
    for c in range(4):
        assert (labels[:, c, :c] == -100).all() and (labels[:, c, c + 12:] == -100).all()
    assert (inputs[:, :, 0] == PAD).all()  # the decoder starts from the start token
    asked = labels != -100
    assert (inputs[:, :, 1:][asked[:, :, :-1]] < PAD).all()  # inputs hold codes where labels ask for codes
    assert torch.equal(delay(torch.arange(8).view(1, 2, 4))[0], torch.tensor([[0, 1, 2, 3, PAD], [PAD, 4, 5, 6, 7]]))
    assert (asked.sum((1, 2)) == 4 * 12).all()  # every frame of every codebook is asked for, swapped or not
    swapped = (inputs[:, :, 1:] != labels[:, :, :-1]) & asked[:, :, :-1]
    assert 0 < swapped.float().mean() < 0.9  # some input frames come from other clips, their labels do not
