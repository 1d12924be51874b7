"""The speed levers (``mgbench/engine/levers.py``), each against today's eager loop on the CPU in float64.

Every lever that touches the decoder (filled-part attention, no cross-attention for the unconditional rows,
guidance and sampler inside the step) must give today's clips bit for bit: same codes, so the same audio. The
EnCodec lever leaves the codes alone and changes the audio by bfloat16 rounding (its SNR is checked, and
measured on a GPU by bench/gpu_check.py). Each check is also shown to fail when the lever is broken.
"""

import copy
from dataclasses import replace

import pytest
import torch

from mgbench.engine import levers as levers_module
from mgbench.engine.decode import filled_length
from mgbench.engine.levers import Levers, conditional_cross, filled_sdpa, to_host
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.perf.cost import kv_read_ratio, steps
from mgbench.zoo.architectures import SHAPES
from mgbench.zoo.loading import load_musicgen

SETTINGS = GenerationSettings(seconds=0.3, seed=3)
PROMPTS = ["a jazz piano tune", "rock", "an edm track with a heavy bass drop and a bright synth lead"]
DECODER_LEVERS = {"filled_attention": Levers(filled_attention=4), "conditional_cross": Levers(conditional_cross=True),
                  "sampler_in_graph": Levers(sampler_in_graph=True),
                  "all": Levers(filled_attention=4, conditional_cross=True, sampler_in_graph=True)}


@pytest.fixture(scope="module")
def exact():
    return load_musicgen("tiny", dtype=torch.float64)


@pytest.fixture(scope="module")
def today(exact):
    """Today's eager clips (dynamic KV cache), sampled and greedy."""
    return {greedy: MusicgenRunner(exact, GenerationSettings(seconds=0.3, seed=3, greedy=greedy)).generate(PROMPTS)
            for greedy in (False, True)}


@pytest.mark.parametrize("name", DECODER_LEVERS)
@pytest.mark.parametrize("greedy", [False, True])
def test_each_decoder_lever_gives_todays_clips(exact, today, name, greedy):
    settings = GenerationSettings(seconds=0.3, seed=3, greedy=greedy)
    runner = MusicgenRunner(exact, settings, levers=DECODER_LEVERS[name], batch_size=4)  # 3 prompts padded to 4
    assert torch.equal(runner.generate(PROMPTS), today[greedy])


def test_the_equality_check_sees_a_broken_lever(exact, today, monkeypatch):
    """Broken on purpose: a filled-part attention that drops the newest key changes the clips."""
    def short(module, query, key, value, mask, filled=0, **kwargs):
        return filled_sdpa(module, query, key, value, mask, max(1, filled - 1), **kwargs)

    monkeypatch.setattr(levers_module, "filled_sdpa", short)  # registered when the lever is pulled
    runner = MusicgenRunner(exact, SETTINGS, levers=Levers(filled_attention=1), batch_size=4)
    assert not torch.equal(runner.generate(PROMPTS), today[False])


def test_filled_attention_reads_only_the_filled_part(exact):
    """NaN in the cache past the filled positions: SDPA over the whole cache (masked) returns NaN, the filled-part
    attention never reads them and gives the exact attention over the filled keys."""
    self_attn = exact.decoder_layers[0].self_attn
    gen = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 4, 1 if i == 0 else 10, 16, generator=gen, dtype=torch.float64)
                         for i in range(3))
    key[:, :, 6:], value[:, :, 6:] = float("nan"), float("nan")
    mask = (torch.arange(10) < 6).expand(2, 1, 1, 10)
    full, _ = filled_sdpa(self_attn, query, key, value, mask)
    filled, _ = filled_sdpa(self_attn, query, key, value, mask, filled=6)
    expected = torch.softmax(query @ key[:, :, :6].transpose(-1, -2) / 4, dim=-1) @ value[:, :, :6]
    assert full.isnan().all() and not filled.isnan().any()
    torch.testing.assert_close(filled, expected.transpose(1, 2), rtol=1e-12, atol=1e-12)
    assert [filled_length(f, 4, 10) for f in (1, 4, 5, 9, 10)] == [4, 4, 8, 10, 10]


def test_conditional_cross_refuses_a_cross_attention_with_bias(exact):
    """With a bias the unconditional rows' output is not 0 (it would be the bias): refused, with the layers named."""
    layer = exact.decoder_layers[1].encoder_attn
    layer.out_proj.bias = torch.nn.Parameter(torch.zeros(layer.embed_dim, dtype=torch.float64))
    try:
        with pytest.raises(ValueError, match=r"without bias \(layers \[1\]"), conditional_cross(exact.model):
            pass
    finally:
        layer.out_proj.bias = None


def test_bfloat16_codec_keeps_the_codes_and_states_its_audio_error(exact, today):
    """EnCodec in bfloat16: the decoder's work is untouched (same codes), the audio is close to float64's (an SNR far
    above the audible; measured per model on the GPU)."""
    audio = MusicgenRunner(exact, SETTINGS, levers=Levers(codec_bfloat16=True), batch_size=4).generate(PROMPTS)
    reference = today[False].to(audio.dtype)
    snr = 10 * torch.log10(reference.pow(2).sum() / (audio - reference).pow(2).sum())
    assert audio.dtype == torch.float32 and audio.shape == reference.shape
    assert 25 < snr < 80, snr  # bfloat16 rounding: neither exact nor another clip


def test_audio_leaves_the_device_only_when_asked(exact, today):
    runner = MusicgenRunner(exact, SETTINGS, levers=Levers(audio_on_device=True, sampler_in_graph=True), batch_size=4)
    audio = runner.generate(PROMPTS)
    assert audio.device == exact.device and torch.equal(audio, today[False].to(audio.dtype))
    assert torch.equal(to_host(audio), audio)


def test_levers_are_checked():
    with pytest.raises(ValueError, match="frames per bucket"):
        Levers(filled_attention=-1)


@pytest.mark.parametrize("bucket", [1, 4, 1000])
def test_the_cost_models_attention_reads_are_the_loops(exact, bucket, monkeypatch):
    """``cost.kv_read_ratio`` against the key lengths the self-attention really reads in the loop (bucket 1: the
    filled part exactly, the limit's assumption; 1000: the whole static cache, as without the lever)."""
    seen = []

    def probe(module, query, key, value, mask, filled=0, **kwargs):
        out = filled_sdpa(module, query, key, value, mask, filled, **kwargs)
        if module.is_causal and module.layer_idx == 0:
            seen.append(min(filled or key.shape[2], key.shape[2]))
        return out

    monkeypatch.setattr(levers_module, "filled_sdpa", probe)
    runner = MusicgenRunner(exact, SETTINGS, levers=Levers(filled_attention=bucket), batch_size=4)
    runner.fit_text(PROMPTS)
    runner.generate(PROMPTS)
    text = runner.text_tokens
    shape = replace(SHAPES["tiny"], text_tokens=text)
    assert len(seen) == steps(SETTINGS.seconds) == runner.max_new_tokens
    ideal = sum(t + text for t in range(1, len(seen) + 1))
    assert kv_read_ratio(shape, SETTINGS.seconds, bucket) == pytest.approx(sum(r + text for r in seen) / ideal)
    assert kv_read_ratio(shape, SETTINGS.seconds, 0) == kv_read_ratio(shape, SETTINGS.seconds, 1000) > 1
    # small at 4 s: 203 steps reading the whole 204-frame cache and 24 text tokens, instead of 102 frames on average
    assert kv_read_ratio(SHAPES["small"], 4.0) == pytest.approx((204 + 24) / (102 + 24))


@pytest.mark.parametrize("int_padding", [True, False])
def test_the_bfloat16_codec_is_one_graph_with_the_same_numbers(exact, int_padding, monkeypatch):
    """The codec lever's copy reckons its convolutions' padding in ints: the same audio as transformers' EnCodec, and
    compiled (dynamo's eager backend) one graph without breaks. Broken on purpose: transformers' tensor paddings
    break the graph (and read the host at every convolution)."""
    from torch._dynamo.utils import counters

    if not int_padding:
        monkeypatch.setattr(levers_module, "int_padded", lambda codec_model: codec_model)
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: real(fn, backend="eager",
                                                                                   dynamic=dynamic))
    monkeypatch.setattr(exact.model, levers_module.CODEC_ATTRIBUTE, None, raising=False)  # a copy of its own
    kept = levers_module.codec(exact.model, "default")
    codes = torch.randint(0, 2048, (1, 2, 4, 15), generator=torch.Generator().manual_seed(0))
    expected = copy.deepcopy(exact.model.audio_encoder).to(torch.bfloat16).decode(codes, [None] * 2).audio_values
    torch._dynamo.reset()
    counters.clear()
    with torch.no_grad():
        audio = kept.decode(codes, [None] * 2).audio_values
    assert torch.equal(audio, expected)
    graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
    assert (graphs, breaks) == (1, 0) if int_padding else graphs > 1
