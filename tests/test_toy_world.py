"""The toy world's generative process, codec and classifier targets (the trained models' accuracy is the toy
build's own check)."""

import numpy as np
import pytest
import torch

from mgbench.toy.classifier import concept_accuracy, targets
from mgbench.toy.codec import decode, random_fills, train_codec
from mgbench.toy.world import BLOCK, FRAME, INSTRUMENTS, NOTES, SAMPLE_RATE, TEMPO_FRAMES, Synth, ToyWorld

FILL = {"instrument": "piano", "genre": "hiphop", "mood": "groovy", "tempo": "slow"}


@pytest.fixture(scope="module")
def world(concepts):
    return ToyWorld.from_concepts(concepts)


def test_every_prompt_word_has_a_code_block(world, concepts):
    assert world.words["genre"][-1] == "hiphop"  # a concept word that is not a slot value gets a block too
    for name in concepts.names:
        concept = concepts.get(name)
        for prompt in concepts.prompts(name, 5):
            assert concept.word in prompt and concept.word in world.words[concept.slot]


def test_codes_follow_the_slots_tempo_and_seed(world):
    codes = world.codes(FILL, 200, seed=3)
    assert codes.shape == (4, 200)
    for k, slot in enumerate(("instrument", "genre", "mood", "tempo")):
        block = world.words[slot].index(FILL[slot])
        assert (codes[k] // BLOCK == block).all() and (codes[k] % BLOCK < NOTES).all()
    changes = np.flatnonzero(np.diff(codes[3]))  # the beat count advances every TEMPO_FRAMES frames
    assert (np.diff(changes) == TEMPO_FRAMES["slow"]).all()
    assert set(np.flatnonzero(np.diff(codes[2]))) <= set(changes)  # a texture is held for a beat
    for k in (0, 1):  # notes and figures are drawn afresh every frame
        assert len(set(codes[k] % BLOCK)) == NOTES and len(set(np.flatnonzero(np.diff(codes[k])))) > 150
    assert np.array_equal(codes, world.codes(FILL, 200, seed=3)) and not np.array_equal(codes, world.codes(
        FILL, 200, seed=4))


def test_scrambled_clips_keep_their_blocks_but_for_a_few_strays(world):
    rng = np.random.default_rng(0)
    clips = world.sample([FILL] * 200, 50, rng, scrambled=1.0)
    blocks = clips // BLOCK
    expected = [world.words[slot].index(FILL[slot]) for slot in ("instrument", "genre", "mood", "tempo")]
    strays = blocks != np.array(expected)[None, :, None]
    assert 0.02 < strays.mean() < 0.06  # 5% drawn from any block of the slot (a few land on their own)
    for k, slot in enumerate(("instrument", "genre", "mood", "tempo")):
        assert blocks[:, k].max() < len(world.words[slot]) and (clips[:, k] % BLOCK < NOTES).all()
    assert np.array_equal(world.sample([FILL] * 3, 20, np.random.default_rng(1)),
                          np.stack([world.codes(FILL, 20, int(s)) for s in np.random.default_rng(1).integers(2**31,
                                                                                                          size=3)]))


def test_each_instrument_sounds_in_its_own_register(world):
    synth = Synth()
    energy = []
    for instrument in world.words["instrument"]:
        audio = synth(world.codes({**FILL, "instrument": instrument, "genre": "classical"}, 50, seed=0))
        assert audio.shape == (50 * FRAME,) and np.isfinite(audio).all()
        power = np.abs(np.fft.rfft(audio)) ** 2
        freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
        energy.append([power[(freqs >= low) & (freqs < 2 * low)].sum() / power.sum() for low, _, _ in INSTRUMENTS])
    energy = np.array(energy)  # rows: instrument played; columns: register band
    assert (energy.argmax(axis=0) == np.arange(len(INSTRUMENTS))).all()


def test_the_trained_codebooks_are_the_ones_encodec_decodes_with(world):
    codec = train_codec(world, Synth(), steps=2, seed=0, frames=10, batch=2)
    codes = torch.from_numpy(np.stack([world.codes(FILL, 10, seed=s) for s in range(2)]))
    tables = torch.nn.ModuleList(torch.nn.Embedding.from_pretrained(q.codebook.embed) for q in codec.quantizer.layers)
    with torch.no_grad():
        ours = decode(codec, tables, codes)
        encodec = codec.decode(codes[None], [None]).audio_values[:, 0]  # the path MusicGen's generate takes
    torch.testing.assert_close(encodec, ours[:, :encodec.shape[-1]])


def test_classifier_targets_and_accuracy(world, concepts):
    fills = [FILL, {**FILL, "instrument": "flute", "genre": "rock"}]
    relevant, classes = targets(concepts, fills)
    assert set(relevant[0].nonzero().flatten().tolist()) == {*concepts.get("piano").label_indices,
                                                             *concepts.get("hiphop").label_indices}
    assert classes["instrument"].tolist() == [1, -100]  # piano is the second instrument; flute names no concept
    assert classes["genre"].tolist() == [5, 3]  # classical jazz pop rock edm hiphop -> rock is 3
    logits = torch.zeros(2, 527)
    logits[0, concepts.get("piano").odds_label] = 5.0
    logits[1, concepts.get("jazz").odds_label] = 5.0  # wrong genre for the second clip
    logits[0, concepts.get("hiphop").odds_label] = 5.0
    assert concept_accuracy(logits, concepts, fills) == {"instrument": 1.0, "genre": 0.5}


def test_random_fills_cover_every_word(world):
    fills = random_fills(world, 400, np.random.default_rng(0))
    for slot, words in world.words.items():
        assert {f[slot] for f in fills} == set(words)
