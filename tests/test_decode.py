"""mgbench's own decode loop against transformers' ``generate`` (the reference) on the same inputs.

On the CPU both engines give bit-identical clips for the tiny model in float64 and the trained toy
model, with either KV cache: plain sampling, greedy decoding, replace and add (adjust) edits on
conditional and unconditional rows and a DecoderLens cut. All-site capture sums are bit-identical with
the dynamic cache; the static cache attends over its whole preallocated length (future positions
masked), which changes float64 activations in the last bits (measured: 1.4e-13 absolute on sums of
size ~300, i.e. ~5e-16 relative), not the codes.
"""

import contextlib

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mgbench.engine import decode
from mgbench.engine.decode import CACHES, compiled_decoder, decode_codes, delay_pattern, new_cache
from mgbench.engine.hooks import ADD, REPLACE, Capture, RowEdit, edit_hooks, installed
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site, all_sites
from mgbench.zoo.loading import load_musicgen


@pytest.fixture(scope="module", params=["tiny", "toy"])
def exact_model(request):
    return load_musicgen(request.param, dtype=torch.float64)


def _runners(loaded, **settings):
    settings = GenerationSettings(seconds=0.5, seed=3, **settings)
    return (MusicgenRunner(loaded, settings, engine="generate"),
            *(MusicgenRunner(loaded, settings, engine="own", cache=c) for c in ("dynamic", "static")))


def _edits(loaded):
    hidden = loaded.model.decoder.config.hidden_size
    gen = torch.Generator().manual_seed(5)
    vec = lambda: torch.randn(hidden, generator=gen, dtype=torch.float64) * 2  # noqa: E731
    return [RowEdit(Site(1, "mlp"), REPLACE, vec(), vec()), None,
            RowEdit(Site(0, "self_attn"), ADD, vec()), RowEdit(Site(1, "mlp"), ADD, vec(), vec())]


@pytest.mark.parametrize("kind", ["plain", "greedy", "edits", "cut"])
def test_own_loop_gives_generates_clips(exact_model, prompts, kind):
    reference, *own = _runners(exact_model, greedy=kind == "greedy")
    kwargs = {"edits": _edits(exact_model)} if kind == "edits" else {"cut": 1} if kind == "cut" else {}
    expected = reference.generate(prompts, **kwargs)
    for runner in own:
        assert torch.equal(runner.generate(prompts, **kwargs), expected), runner.cache
    if kwargs:  # the edit or cut did something, so equality above is not trivially the plain clip
        assert not torch.equal(expected, reference.generate(prompts))


def test_own_loop_captures_each_frame_once_like_generate(exact_model, prompts):
    sites = all_sites(exact_model.num_layers)
    captures = []
    for runner in _runners(exact_model):
        captures.append(Capture(sites))
        runner.generate(prompts, capture=captures[-1])
    reference, *own = captures
    dynamic, static = own
    assert dynamic.steps == static.steps == reference.steps
    assert all(torch.equal(dynamic.sums[s], reference.sums[s]) for s in sites)
    for s in sites:
        torch.testing.assert_close(static.sums[s], reference.sums[s], rtol=1e-13, atol=1e-12)


def test_one_decoder_forward_per_frame(tiny, runner, prompts):
    calls = []
    decoder = tiny.model.decoder.model.decoder
    handle = decoder.register_forward_pre_hook(lambda m, a, k: calls.append(k["input_ids"].shape[-1]),
                                               with_kwargs=True)
    try:
        MusicgenRunner(tiny, runner.settings, engine="own").generate(prompts)
    finally:
        handle.remove()
    assert calls == [1] * runner.max_new_tokens


def test_static_cache_is_sized_up_front(tiny, prompts):
    inputs = tiny.processor(text=prompts, padding=True, return_tensors="pt")
    cache = new_cache(tiny.model, "static", 20, inputs["input_ids"].shape[1])
    codes = decode_codes(tiny.model, inputs["input_ids"], inputs["attention_mask"], 20, 3.0, cache="static")
    assert codes.shape == (len(prompts), tiny.num_codebooks, 20 - tiny.num_codebooks + 1)
    assert {layer.max_cache_len for layer in cache.self_attention_cache.layers} == {20}
    with pytest.raises(ValueError, match="unknown KV cache"):
        new_cache(tiny.model, "paged", 20, 5)
    with pytest.raises(ValueError, match="unknown engine"):
        MusicgenRunner(tiny, engine="vllm")


def test_compiling_refuses_hooks_instead_of_dropping_them(tiny, prompts):
    """torch.compile silently skips hooks registered after compiling (an edited run would equal the plain one):
    the own loop refuses to compile a decoder with per-batch hooks (compiled edits go through edit slots,
    ``tests/test_compiled_edits.py``) and a compiled step needs the static cache."""
    with installed(edit_hooks(tiny.decoder_layers, _edits(tiny)[:1] + [None] * 3)):
        with pytest.raises(RuntimeError, match="silently drop"):
            compiled_decoder(tiny.model, "default")
    with pytest.raises(ValueError, match="static KV cache"):
        decode_codes(tiny.model, torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 3), 5, 3.0, compile_mode="default")


def test_own_loop_handles_clips_shorter_than_the_delay_pattern(exact_model, prompts):
    """Fewer steps than 2 * codebooks - 1: transformers builds no delay pattern; both engines still agree."""
    settings = GenerationSettings(seconds=0.04, seed=3)
    reference, own = (MusicgenRunner(exact_model, settings, engine=e) for e in ("generate", "own"))
    assert torch.equal(own.generate(prompts), reference.generate(prompts))


class HostReads(TorchDispatchMode):
    """Counts the operations that read a tensor's values on the host (``bool``, ``item``, ``nonzero``, masked
    selects): on a GPU each one waits for the queue (a sync)."""

    READS = ("aten._local_scalar_dense", "aten.is_nonzero", "aten.nonzero", "aten.masked_select", "aten.equal")

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += str(func.overloadpacket) in self.READS
        return func(*args, **(kwargs or {}))


def _host_reads_in_steps(loaded, prompts, cache: str, monkeypatch) -> int:
    """Host reads inside the decode loop's steps (after the set-up: text encoding, the delay pattern)."""
    reads, steps = HostReads(), decode._decode_steps

    def counted(*args):
        with reads:
            steps(*args)

    monkeypatch.setattr(decode, "_decode_steps", counted)
    inputs = loaded.processor(text=prompts, padding=True, return_tensors="pt")
    pick = MusicgenRunner(loaded, GenerationSettings(seconds=0.5, seed=3)).sampler(prompts).sample
    decode_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"], 10, 3.0, pick, cache)
    return reads.count


@pytest.mark.parametrize("cache", CACHES)
@pytest.mark.parametrize("broken", [None, "mask per step", "positions resized"])
def test_decode_steps_read_nothing_on_the_host(tiny, prompts, cache, broken, monkeypatch):
    """The steps (decoder, guidance, sampler, delay pattern) read nothing on the host, so a step never waits
    for the GPU. Broken on purpose, as transformers' step does it: a cross-attention mask built in every step
    (its padding checked on the host), and the position table's resize check on the static cache's length (a
    tensor)."""
    if broken == "mask per step":
        monkeypatch.setattr(decode, "cross_attention_mask", lambda model, states, mask: mask)
    if broken == "positions resized":
        monkeypatch.setattr(decode, "presized_positions", lambda model, length: contextlib.nullcontext())
    reads = _host_reads_in_steps(tiny, prompts, cache, monkeypatch)
    if broken == "positions resized" and cache == "dynamic":
        broken = None  # the dynamic cache's length is a Python int: its resize check reads nothing
    assert (reads >= 9) if broken else (reads == 0), reads  # broken: at least one read in each of the 9 steps


@pytest.mark.parametrize("batch", [1, 3])
def test_delay_pattern_equals_transformers_for_the_batch(tiny, batch):
    """One prompt's pattern tiled over the batch equals transformers' pattern built for the whole batch."""
    model, start = tiny.model, tiny.model.generation_config.decoder_start_token_id
    first = torch.full((batch * model.decoder.num_codebooks, 1), start, dtype=torch.long)
    expected = model.decoder.build_delay_pattern_mask(first, pad_token_id=start, max_length=21)[1]
    assert torch.equal(delay_pattern(model, batch, 20, torch.device("cpu")), expected)
