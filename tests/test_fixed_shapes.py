"""Fixed shapes (``mgbench/engine/workspace.py``): a sweep compiles its step once and keeps its addresses.

A sweep of prompts of mixed token lengths, with a short last batch and every kind of pass (plain, edited,
captured, cut), compiles its graphs on the first batch and none after (dynamo's counters), and every tensor a
CUDA graph would replay in place (KV caches, edit slots, capture taps, cut gates, the in-graph sampler's
buffers) keeps its address, so no graph is recorded twice. Each of the three causes of recompiles and
re-recordings is put back on purpose to show the checks see it. Compiling uses dynamo's eager backend: the
same tracing and guards as inductor, without its minutes of code generation.
"""

import pandas as pd
import pytest
import torch
from torch._dynamo.utils import counters

from mgbench.engine import runner as runner_module
from mgbench.engine.decode import new_cache
from mgbench.engine.hooks import ADD, Capture, RowEdit
from mgbench.engine.levers import Levers
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site, all_sites
from mgbench.engine.taps import install
from mgbench.engine.workspace import Workspace, fixed_text
from mgbench.experiments.resume import OomBackoff
from mgbench.zoo.loading import load_musicgen

SETTINGS = GenerationSettings(seconds=0.2, seed=3)
SHORT, LONG = "rock", "an edm track with a heavy bass drop, a bright synth lead and a crowd cheering at the end"


def _sweep(loaded):
    """(prompts, kwargs) per batch: short prompts first, then longer ones, edited, captured, cut, and a short last
    batch."""
    hidden = loaded.model.decoder.config.hidden_size
    edit = RowEdit(Site(1, "mlp"), ADD, torch.ones(hidden))
    return [([SHORT, "jazz piano", "a guitar"], {}),
            (["a piano", SHORT, "guitar"], {"edits": [edit, None, edit]}),
            ([LONG, "jazz", SHORT], {"capture": Capture(all_sites(loaded.num_layers, ("mlp", "resid")))}),
            (["violin solo", LONG, "pop"], {"cut": 2}),
            ([SHORT, "a trumpet"], {})]


def _addresses(loaded) -> set[int]:
    """The data pointers of every tensor the compiled step reads or writes in place."""
    slots, taps, gates = install(loaded.decoder_layers)
    work = Workspace.on(loaded.model)
    tensors = [gates.live, *taps._sized.values(), *(t for ts in slots._sized.values() for t in ts),
               *(t for ts in work.buffers.values() for t in ts)]
    for kv in work.caches.values():
        for part in (kv.self_attention_cache, kv.cross_attention_cache):
            tensors += [t for layer in part.layers for t in (layer.keys, layer.values, layer.cumulative_length)]
    return {t.data_ptr() for t in tensors}


@pytest.fixture
def eager_backend(monkeypatch):
    """torch.compile with dynamo's eager backend, dynamo's caches and counters cleared."""
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: real(fn, backend="eager",
                                                                                   dynamic=dynamic))
    torch._dynamo.reset()
    counters.clear()


def _graphs() -> int:
    return counters["stats"]["unique_graphs"]


LEVERS = Levers(filled_attention=4, conditional_cross=True, sampler_in_graph=True)


@pytest.mark.parametrize("levers, broken", [(Levers(), None), (LEVERS, None), (Levers(), "text not bucketed"),
                                            (Levers(), "last batch not padded"), (Levers(), "a new cache per batch")])
def test_a_sweep_compiles_once_and_keeps_its_addresses(eager_backend, levers, broken, monkeypatch):
    """Warm-up compiles one graph (with the filled-part attention one per length bucket: 0.2 s clips are 13 steps,
    the buckets of 4 frames give 4 graphs), the rest of the sweep none, and nothing moves."""
    loaded = load_musicgen("tiny", dtype=torch.float32)  # its own copy: the compiled step stays with its model
    runner = MusicgenRunner(loaded, SETTINGS, cache="static", compile_mode="default", levers=levers,
                            batch_size=None if broken == "last batch not padded" else 3)
    sweep = _sweep(loaded)
    if broken == "text not bucketed":
        monkeypatch.setattr(runner_module, "TEXT_BUCKET", 1)
    else:
        runner.fit_text([p for prompts, _ in sweep for p in prompts])  # what a session does
    if broken == "a new cache per batch":  # as the loop did before: a StaticCache made for every call
        def fresh(self, rows, length, text, cross):
            self.caches[rows, length, text, cross] = kv = new_cache(self.model, "static", length, text)
            return kv

        monkeypatch.setattr(Workspace, "cache", fresh)
    runner.generate(*sweep[0][:1], **sweep[0][1])  # warm-up: compiles (one graph per attention bucket)
    graphs, addresses = _graphs(), _addresses(loaded)
    assert graphs == (4 if levers.filled_attention else 1)
    for prompts, kwargs in sweep[1:]:
        runner.generate(prompts, **kwargs)
    new_graphs, moved = _graphs() - graphs, _addresses(loaded) != addresses
    if broken in (None, "a new cache per batch"):
        assert new_graphs == 0
    if broken is None:
        assert not moved
    elif broken == "a new cache per batch":
        assert moved  # a CUDA graph would be recorded again for every batch
    else:
        assert new_graphs > 0


@pytest.mark.parametrize("text_padding", ["masked", "audiocraft"])
def test_padding_text_and_batch_keeps_the_clips(text_padding):
    """Fixed shapes (eager, float64): text padded to a bucket well past the longest prompt, 3 prompts padded to a
    batch of 5: the clips of today's loop, under either text padding; and the check sees a wrong mask."""
    loaded = load_musicgen("tiny", dtype=torch.float64)
    prompts = [SHORT, "jazz piano", "a guitar"]
    today = MusicgenRunner(loaded, SETTINGS, text_padding).generate(prompts)
    fixed = MusicgenRunner(loaded, SETTINGS, text_padding, fixed_shapes=True, batch_size=5)
    fixed.fit_text([LONG])
    assert fixed.text_tokens >= 2 * loaded.processor(text=prompts, padding=True, return_tensors="pt")[
        "input_ids"].shape[1]
    assert torch.equal(fixed.generate(prompts), today)
    other = MusicgenRunner(loaded, SETTINGS, "audiocraft" if text_padding == "masked" else "masked").generate(prompts)
    assert not torch.equal(other, today)  # the two paddings differ, so equality above is the padding's own


def test_fixed_text_masks():
    ids, mask = torch.tensor([[5, 6, 7], [8, 1, 1]]), torch.tensor([[1, 1, 1], [1, 0, 0]])
    padded, padded_mask, cross = fixed_text(ids, mask, 5, 1, "masked")
    assert padded.tolist() == [[5, 6, 7, 1, 1], [8, 1, 1, 1, 1]] and cross is None
    assert padded_mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]
    assert fixed_text(ids, mask, 5, 1, "audiocraft")[2].tolist() == [[1, 1, 1, 0, 0]] * 2
    with pytest.raises(ValueError, match="cannot pad 3 tokens to 2"):
        fixed_text(ids, mask, 2, 1)


def test_a_shapes_cache_is_reset_in_place(tiny):
    work = Workspace(tiny.model)
    kv = work.cache(8, 10, 16, 8)
    kv.self_attention_cache.update(torch.ones(8, 4, 1, 16), torch.ones(8, 4, 1, 16), 0)
    assert work.cache(8, 10, 16, 8) is kv and not kv.self_attention_cache.layers[0].keys.any()
    assert int(kv.self_attention_cache.layers[0].cumulative_length) == 0
    assert work.cache(8, 10, 16, 4) is not kv


def test_out_of_memory_shrinks_the_compiled_batch(tiny, monkeypatch):
    """A batch that runs out of memory is halved by the backoff; the runner then pads to the halves, not back to
    the size that did not fit."""
    sizes = []

    def fixed_codes(model, ids, *args, **kwargs):
        sizes.append(ids.shape[0])
        if ids.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.zeros(ids.shape[0], 4, 10, dtype=torch.long)

    monkeypatch.setattr(runner_module, "fixed_codes", fixed_codes)
    runner = MusicgenRunner(tiny, SETTINGS, fixed_shapes=True, batch_size=4)
    done = []
    OomBackoff(lambda batch: runner.generate(list(batch.prompt)), done.append)(pd.DataFrame({"prompt": list("abcd")}))
    assert sizes == [4, 2, 2] and runner.batch_size == 2 and [len(a) for a in done] == [2, 2]


@pytest.mark.parametrize("levers", [Levers(), LEVERS], ids=["today", "levers"])
@pytest.mark.parametrize("broken", [False, True])
def test_the_fixed_shape_steps_read_nothing_on_the_host(levers, broken, monkeypatch):
    """Inside the steps of the fixed-shape loop (the decoder step, or the in-graph sampler's frame steps), with
    edits, capture taps and a cut, nothing is read back to the host: on a GPU no step waits for the queue. Broken on
    purpose: transformers' position table, which checks the static cache's length on the host at every step."""
    import contextlib

    from test_decode import HostReads

    from mgbench.engine import decode, stepper

    reads = HostReads()

    def counted(step):
        def run(*args, **kwargs):
            with reads:
                return step(*args, **kwargs)
        return run

    monkeypatch.setattr(decode, "_decode_steps", counted(decode._decode_steps))
    monkeypatch.setattr(stepper, "frame_step", counted(stepper.frame_step))
    monkeypatch.setattr(stepper, "compiled_frame_step", lambda model, mode: stepper.frame_step)
    monkeypatch.setattr(stepper, "compiled_decoder", lambda model, mode: model.decoder)  # the eager step, traced
    if broken:
        monkeypatch.setattr(decode, "presized_positions", lambda model, length: contextlib.nullcontext())
    loaded = load_musicgen("tiny", dtype=torch.float32)
    runner = MusicgenRunner(loaded, SETTINGS, cache="static", compile_mode="default", levers=levers, batch_size=3)
    (prompts, _), (edited, kwargs) = _sweep(loaded)[:2]
    runner.generate(prompts, capture=Capture(all_sites(loaded.num_layers, ("mlp",))), cut=2)
    runner.generate(edited, **kwargs)
    assert (reads.count >= runner.max_new_tokens) if broken else (reads.count == 0), reads.count
