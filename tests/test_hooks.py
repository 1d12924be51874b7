import math

import pytest
import torch
import torch.nn.functional as F

from mgbench.engine.hooks import ADD, REPLACE, Capture, RowEdit, cut_decoder, edit_hooks, installed
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import TRANSFORMERS_SITES, Site, site_module


def _attention(attn, x, context, causal, context_mask=None):
    """Multi-head attention written out from the module's weights."""
    heads = attn.num_heads
    b, t, d = x.shape
    split = lambda y: y.view(b, y.shape[1], heads, d // heads).transpose(1, 2)  # noqa: E731
    q = split(x @ attn.q_proj.weight.T)
    k, v = split(context @ attn.k_proj.weight.T), split(context @ attn.v_proj.weight.T)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
    if context_mask is not None:
        scores = scores.masked_fill(~context_mask[:, None, None, :].bool(), float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
    return out @ attn.out_proj.weight.T


def manual_decoder_logits(model, input_ids, encoder_states, encoder_mask, patch=None):
    """MusicGen's decoder forward by hand; ``patch=(site, row, fn)`` rewrites one component output of one row."""
    dec = model.decoder.model.decoder
    k = dec.num_codebooks
    ids = input_ids.view(-1, k, input_ids.shape[-1])
    h = sum(dec.embed_tokens[c](ids[:, c]) for c in range(k)) + dec.embed_positions(ids, 0)

    def maybe_patch(layer, component, out):
        if patch and patch[0] == Site(layer, component):
            out = out.clone()
            out[patch[1]] = patch[2](out[patch[1]])
        return out

    def ln(mod, x):
        return F.layer_norm(x, mod.normalized_shape, mod.weight, mod.bias, mod.eps)

    for i, layer in enumerate(dec.layers):
        x = ln(layer.self_attn_layer_norm, h)
        h = h + maybe_patch(i, "self_attn", _attention(layer.self_attn, x, x, causal=True))
        x = ln(layer.encoder_attn_layer_norm, h)
        h = h + maybe_patch(i, "cross_attn", _attention(layer.encoder_attn, x, encoder_states, False, encoder_mask))
        x = ln(layer.final_layer_norm, h)
        h = h + maybe_patch(i, "mlp", F.gelu(x @ layer.fc1.weight.T) @ layer.fc2.weight.T)
    h = ln(dec.layer_norm, h)
    return torch.stack([head(h) for head in model.decoder.lm_heads], dim=1)


@pytest.fixture
def decoder_inputs(tiny):
    torch.manual_seed(1)
    k = tiny.num_codebooks
    input_ids = torch.randint(0, 2048, (2 * k, 6))
    encoder_states = torch.randn(2, 5, tiny.model.decoder.config.hidden_size)
    encoder_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    return input_ids, encoder_states, encoder_mask


@pytest.mark.parametrize("component", ["self_attn", "cross_attn", "mlp"])
@pytest.mark.parametrize("mode", [REPLACE, ADD])
def test_patched_equals_manual(tiny, decoder_inputs, component, mode):
    input_ids, states, mask = decoder_inputs
    site, vector = Site(2, component), torch.randn(tiny.model.decoder.config.hidden_size)
    with torch.no_grad():
        plain = manual_decoder_logits(tiny.model, input_ids, states, mask)
        fn = (lambda out: vector.expand_as(out)) if mode == REPLACE else (lambda out: out + vector)
        manual = manual_decoder_logits(tiny.model, input_ids, states, mask, patch=(site, 1, fn))
        with installed(edit_hooks(tiny.decoder_layers, [None, RowEdit(site, mode, vector)], guided=False)):
            hooked = tiny.model.decoder(input_ids=input_ids, encoder_hidden_states=states,
                                        encoder_attention_mask=mask, use_cache=False).logits
    hooked = hooked.view(2, tiny.num_codebooks, 6, -1)
    torch.testing.assert_close(hooked, manual, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(hooked[0], plain[0], atol=1e-4, rtol=1e-4)  # the other row is untouched
    assert (hooked[1] - plain[1]).abs().max() > 1e-3  # and the patch did change row 1


def test_idle_hooks_change_nothing_and_greedy_matches_transformers(tiny, runner, prompts):
    baseline = runner.generate(prompts)
    capture = Capture([Site(layer, c) for layer in range(tiny.num_layers) for c in TRANSFORMERS_SITES])
    hooked = runner.generate(prompts, edits=[None] * len(prompts), capture=capture)
    assert torch.equal(hooked, baseline)
    greedy = MusicgenRunner(tiny, GenerationSettings(seconds=0.5, greedy=True))
    ours = greedy.generate(prompts, edits=[None] * len(prompts), capture=Capture([Site(0, "mlp")]))
    inputs = tiny.processor(text=prompts, padding=True, return_tensors="pt")
    with torch.no_grad():
        plain = tiny.model.generate(**inputs, do_sample=False, guidance_scale=3.0,
                                    max_new_tokens=greedy.max_new_tokens)[:, 0]
    assert torch.equal(ours, plain)


def _generate_recording_tokens(runner, tiny, prompts, edits=None):
    """Generate, recording the audio codes fed back into the decoder (conditional rows) at every step."""
    decoder, k, steps = tiny.model.decoder.model.decoder, tiny.num_codebooks, []

    def record(module, args, kwargs):
        ids = kwargs["input_ids"].view(-1, k, kwargs["input_ids"].shape[-1])
        steps.append(ids[: len(prompts), :, -1].clone())

    handle = decoder.register_forward_pre_hook(record, with_kwargs=True)
    try:
        audio = runner.generate(prompts, edits=edits)
    finally:
        handle.remove()
    return audio, torch.stack(steps, dim=-1)


def test_common_random_numbers(tiny, runner, prompts):
    vec = torch.randn(tiny.model.decoder.config.hidden_size) * 3
    edits = [RowEdit(Site(1, "mlp"), REPLACE, vec), None, RowEdit(Site(0, "self_attn"), ADD, vec), None]
    batch_audio, batch_tokens = _generate_recording_tokens(runner, tiny, prompts, edits)
    for row in (1, 2):
        alone_audio, alone_tokens = _generate_recording_tokens(runner, tiny, [prompts[row]], [edits[row]])
        assert torch.equal(alone_tokens[0], batch_tokens[row])
        torch.testing.assert_close(alone_audio[0], batch_audio[row], atol=1e-5, rtol=0)
    # the same prompt in another batch position and batch size gets the same noise, hence the same clip
    shuffled_audio, shuffled_tokens = _generate_recording_tokens(runner, tiny, [prompts[3], prompts[1], prompts[1]])
    assert torch.equal(shuffled_tokens[1], batch_tokens[1]) and torch.equal(shuffled_tokens[2], batch_tokens[1])
    # and interventions do change the intervened rows
    assert not torch.equal(batch_tokens[0], _generate_recording_tokens(runner, tiny, prompts[:1])[1][0])


def _teacher_forced_outputs(tiny, runner, prompts, site):
    """Generate once, then run the decoder a second time over the whole generated sequence in one forward pass
    (no cache, no step counting): ``site``'s output at every generated frame, ``(2B, frames, hidden)``.
    ``runner``'s engine is ``generate`` or mgbench's own loop."""
    calls = []
    decoder = tiny.model.decoder.model.decoder
    record = lambda m, a, kwargs: calls.append({k: v for k, v in kwargs.items() if torch.is_tensor(v)})  # noqa: E731
    handle = decoder.register_forward_pre_hook(record, with_kwargs=True)
    capture = Capture([site])
    try:
        runner.generate(prompts, capture=capture)
    finally:
        handle.remove()
    # every call feeds one new frame; under generate the first two both feed frame 0 (transformers runs it twice)
    if runner.engine == "generate":
        assert len(calls) == runner.max_new_tokens + 1 and torch.equal(calls[0]["input_ids"], calls[1]["input_ids"])
        calls = calls[1:]
    assert len(calls) == runner.max_new_tokens
    sequence = torch.cat([c["input_ids"] for c in calls], dim=-1)
    outputs = []
    module = site_module(tiny.decoder_layers, site)
    with installed([(module, lambda m, a, o: outputs.append(o[0] if isinstance(o, tuple) else o))]), torch.no_grad():
        decoder(input_ids=sequence, encoder_hidden_states=calls[-1]["encoder_hidden_states"],
                encoder_attention_mask=calls[-1]["encoder_attention_mask"], use_cache=False)
    return capture, outputs[0]


@pytest.mark.parametrize("engine", ["own", "generate"])
@pytest.mark.parametrize("site", [Site(1, "cross_attn"), Site(0, "mlp"), Site(3, "resid")], ids=str)
def test_means_weight_every_frame_once_and_keep_halves_apart(tiny, runner, prompts, site, engine):
    runner = MusicgenRunner(tiny, runner.settings, engine=engine)
    capture, allout = _teacher_forced_outputs(tiny, runner, prompts, site)
    n = len(prompts)
    assert allout.shape[1] == capture.steps[site] == runner.max_new_tokens
    cond, uncond = capture.half_means(site, n)
    torch.testing.assert_close(capture.row_means(site), allout.mean(dim=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cond, allout[:n].mean(dim=(0, 1)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(uncond, allout[n:].mean(dim=(0, 1)), atol=1e-5, rtol=1e-5)
    assert (cond - uncond).abs().max() > 1e-4
    # counting frame 0 twice (what a capture without the restart hook does) is far outside that tolerance
    doubled = (allout[:n].sum(1) + allout[:n, 0]) / (allout.shape[1] + 1)
    assert (doubled.mean(0) - cond).abs().max() > 1e-4


def test_unconditional_edits_touch_unconditional_rows(tiny):
    site = Site(0, "mlp")
    hooks = edit_hooks(tiny.decoder_layers, [RowEdit(site, REPLACE, torch.ones(64), torch.full((64,), 2.0)), None])
    out = torch.zeros(4, 3, 64)
    hooks[0][1](None, None, out)
    assert torch.equal(out[0], torch.ones(3, 64)) and torch.equal(out[2], torch.full((3, 64), 2.0))
    assert not out[1].any() and not out[3].any()
    with pytest.raises(ValueError, match="guidance"):
        edit_hooks(tiny.decoder_layers, [RowEdit(site, REPLACE, torch.ones(64), torch.ones(64))], guided=False)


def test_hooks_removed_when_generation_raises(tiny, runner, prompts):
    modules = [tiny.decoder_layers[1].fc2, tiny.decoder_layers[0]]
    with pytest.raises(RuntimeError, match="boom"):
        def boom(module, args, output):
            raise RuntimeError("boom")
        capture = Capture([Site(0, "resid")])
        with installed([(modules[0], boom)] + capture.hooks(tiny.decoder_layers)):
            runner.generate(prompts)
    assert not modules[0]._forward_hooks and not modules[1]._forward_hooks
    with pytest.raises(ValueError, match="edits for"):
        runner.generate(prompts, edits=[None])


def test_decoder_cut(tiny, runner, prompts):
    decoder = tiny.model.decoder.model.decoder
    calls = []
    with installed([(layer, lambda m, a, o, i=i: calls.append(i)) for i, layer in enumerate(tiny.decoder_layers)]):
        cut = runner.generate(prompts, cut=2)
    assert set(calls) == {0, 1}
    assert len(decoder.layers) == tiny.num_layers
    assert torch.equal(runner.generate(prompts, cut=tiny.num_layers), runner.generate(prompts))
    assert not torch.equal(cut, runner.generate(prompts))
    with pytest.raises(ValueError, match="1..4"):
        with cut_decoder(decoder, 9):
            pass
