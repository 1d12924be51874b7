"""CLAP, the zero-shot recognizer: the tiny CLAP built offline, its loader, and its scores against transformers'."""

import pytest
import torch
import torchaudio.functional as AF
from transformers import ClapModel, ClapProcessor, RobertaTokenizer

from mgbench.classify.clap import CLAP_HUB, clap_folder, load_clap
from mgbench.errors import MissingWeightsError, UnknownNameError
from mgbench.paths import mgbench_home

TEXTS = ("This is a sound of Guitar.", "a cello melody", "This is a sound of Jazz.")


@pytest.fixture(scope="module")
def scorer():
    return load_clap("tiny", TEXTS)


@pytest.fixture(scope="module")
def clips():
    """Three 1 s clips at 32 kHz (MusicGen's rate) of different loudness, in float64 as the tiny MusicGen makes them."""
    noise = torch.randn(3, 32000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return noise * torch.tensor([[0.05], [0.5], [1.0]], dtype=torch.float64)


def test_tiny_clap_is_built_offline_and_round_trips(scorer):
    folder = clap_folder("tiny")
    assert folder.parent == mgbench_home() / "tiny" and folder.name.startswith("clap-s0-")
    processor = ClapProcessor.from_pretrained(folder)
    assert isinstance(processor.tokenizer, RobertaTokenizer) and processor.feature_extractor.sampling_rate == 48000
    # byte-level: any text, words never seen included, becomes tokens without <unk>
    ids = processor.tokenizer("a cello melody, très vite")["input_ids"]
    assert processor.tokenizer.unk_token_id not in ids and processor.tokenizer.decode(ids[1:-1]) == \
        "a cello melody, très vite"
    again = load_clap(str(folder), TEXTS)  # the saved folder through the same loader
    assert again.identity == scorer.identity and scorer.identity.startswith("sha256:")


def test_scores_are_claps_logits_per_audio(scorer, clips):
    """Against transformers' own forward pass on the processor's inputs: exp(logit_scale_a) * cosine similarity."""
    folder = clap_folder("tiny")
    model, processor = ClapModel.from_pretrained(folder).eval(), ClapProcessor.from_pretrained(folder)
    audio = AF.resample(clips.float(), 32000, 48000)
    inputs = processor(text=list(TEXTS), audio=list(audio.numpy()), sampling_rate=48000, return_tensors="pt",
                       padding=True)
    with torch.no_grad():
        expected = model(**inputs).logits_per_audio
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        sound = model.get_audio_features(input_features=inputs["input_features"], is_longer=inputs["is_longer"])
    cosine = torch.nn.functional.cosine_similarity(sound.pooler_output[:, None], text.pooler_output[None], dim=-1)
    got = scorer.logits(clips, 32000)
    assert got.shape == (3, len(TEXTS)) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, model.logit_scale_a.exp().detach() * cosine, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got[0], got[2], atol=1e-3)  # the scores depend on the clip
    stereo = torch.stack([clips, clips], dim=1)  # (batch, channels, samples): scored as its mono mix
    torch.testing.assert_close(scorer.logits(stereo, 32000), got)


def test_long_clips_are_scored_on_their_first_ten_seconds(scorer):
    long = torch.randn(1, 32000 * 11, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(scorer.logits(long, 32000), scorer.logits(long[:, :320000], 32000))
    torch.testing.assert_close(scorer.logits(long, 32000), scorer.logits(long, 32000))  # no random crop


def test_clap_names_and_missing_weights():
    with pytest.raises(UnknownNameError, match="unknown CLAP model 'clip'; valid: clap, tiny. Or pass a folder or a "
                                               "hub id of a ClapModel"):
        clap_folder("clip")
    with pytest.raises(MissingWeightsError, match="CLAP weights 'mgbench-tests/no-such-clap' are not in the local "
                                                  "Hugging Face cache.*hf download mgbench-tests/no-such-clap"):
        clap_folder("mgbench-tests/no-such-clap")
    assert CLAP_HUB == "laion/clap-htsat-unfused"


def test_the_hub_name_is_the_default_clap(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: the error names the hub checkpoint
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="CLAP weights 'laion/clap-htsat-unfused' are not in the local"):
        clap_folder("clap")
