"""Edits in a compiled decoder step: edit slots (``mgbench/engine/slots.py``) against per-batch hooks.

``torch.compile`` silently skips forward hooks registered after compiling, so a compiled run with per-batch
edit hooks would equal the plain run with no error (the silent-hook trap). Edit slots are installed before
compiling and driven by tensors set in place. Here: uncompiled, slots give the per-batch hooks' clips bit for
bit; compiled (inductor, on this CPU ~30 s per graph), an edited run differs from the plain one and equals the
uncompiled edited run within float32 rounding, also when the step was compiled before any edit; captures and
cuts run the same compiled step (``taps.py``); and the trap is real: per-batch hooks passed off as persistent are
skipped by the compiled steps.
"""

import contextlib

import pytest
import torch
from torch._dynamo.utils import counters

from mgbench.engine.decode import compiled_decoder
from mgbench.engine.hooks import ADD, REPLACE, Capture, RowEdit, installed
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site
from mgbench.engine.slots import EditSlots
from mgbench.zoo.loading import load_musicgen

SETTINGS = GenerationSettings(seconds=0.5, seed=3)


def _edits(loaded, dtype):
    hidden = loaded.model.decoder.config.hidden_size
    gen = torch.Generator().manual_seed(5)
    vec = lambda: torch.randn(hidden, generator=gen, dtype=dtype) * 2  # noqa: E731
    return [RowEdit(Site(1, "mlp"), REPLACE, vec(), vec()), None,
            RowEdit(Site(0, "self_attn"), ADD, vec()), RowEdit(Site(1, "cross_attn"), ADD, vec(), vec())]


def test_slots_give_the_per_batch_hooks_clips_bit_for_bit(prompts):
    """Uncompiled, both edit routes give identical clips; installed but empty slots change nothing."""
    loaded = load_musicgen("tiny", dtype=torch.float64)  # its own copy: slots stay on the model they are put on
    runner = MusicgenRunner(loaded, SETTINGS, cache="static")
    edits = _edits(loaded, torch.float64)
    plain, hooked = runner.generate(prompts), runner.generate(prompts, edits=edits)
    slots = EditSlots.on(loaded.decoder_layers)
    assert EditSlots.on(loaded.decoder_layers) is slots
    assert torch.equal(runner.generate(prompts), plain)
    with slots.applied(edits):
        slotted = runner.generate(prompts)
    assert torch.equal(slotted, hooked)
    assert not torch.equal(hooked, plain)
    assert torch.equal(runner.generate(prompts), plain)  # cleared after the block
    with pytest.raises(RuntimeError, match="boom"), slots.applied(edits):
        raise RuntimeError("boom")
    assert not slots.mask.any()


@pytest.fixture(scope="module")
def compiled_pair():
    """A float32 tiny model's compiled runner (compiled on its first, plain call) and an uncompiled one."""
    loaded = load_musicgen("tiny", dtype=torch.float32)
    return (MusicgenRunner(loaded, SETTINGS, cache="static", compile_mode="default"),
            MusicgenRunner(loaded, SETTINGS, cache="static"))


def test_a_compiled_edited_run_differs_from_the_plain_one_as_uncompiled(compiled_pair, prompts):
    compiled, eager = compiled_pair
    edits = _edits(compiled.loaded, torch.float32)
    plain_c = compiled.generate(prompts)  # compiles before any edit exists
    graphs = counters["stats"]["unique_graphs"]
    edited_c = compiled.generate(prompts, edits=edits)
    assert counters["stats"]["unique_graphs"] == graphs  # one graph for the batch size, edits or not
    plain_e, edited_e = eager.generate(prompts), eager.generate(prompts, edits=edits)
    effect = (edited_e - plain_e).abs().amax(dim=1)
    assert (effect[[0, 2, 3]] > 1e-2).all() and effect[1] == 0  # the edits matter, the unedited prompt is alone
    torch.testing.assert_close(plain_c, plain_e, atol=1e-4, rtol=0)
    torch.testing.assert_close(edited_c, edited_e, atol=1e-4, rtol=0)
    assert compiled.generate(prompts, edits=[None] * len(prompts)).sub(plain_c).abs().max() < 1e-4


def test_hooks_registered_after_compiling_are_skipped_silently():
    """The trap the slots avoid (dynamo's eager backend, same guards, no inductor): a hook registered on a module
    that had none when the decoder compiled leaves the compiled output unchanged, without any error."""
    loaded = load_musicgen("tiny", dtype=torch.float32)
    decoder, config = loaded.model.decoder, loaded.model.decoder.config
    states = torch.randn(2, 5, config.hidden_size, generator=torch.Generator().manual_seed(0))
    inputs = dict(input_ids=torch.full((2 * config.num_codebooks, 3), config.bos_token_id),
                  encoder_hidden_states=states)
    shift = torch.randn(config.hidden_size, generator=torch.Generator().manual_seed(1))  # not constant: LayerNorm
    step = torch.compile(decoder, backend="eager", dynamic=False)
    plain = step(**inputs).logits
    with installed([(loaded.decoder_layers[0].fc2, lambda module, args, output: output + shift)]):
        hooked, eager = step(**inputs).logits, decoder(**inputs).logits
    assert torch.equal(hooked, plain)
    assert (eager - plain).abs().max() > 1e-2


def test_compiling_installs_the_slots_first(prompts):
    loaded = load_musicgen("tiny", dtype=torch.float32)
    compiled_decoder(loaded.model, "default")
    assert all(m._forward_hooks for m in EditSlots.on(loaded.decoder_layers).modules)


def test_compiled_runner_captures_and_cuts_with_its_own_step(compiled_pair, prompts):
    """Captures and cuts run the compiled step too (capture taps and cut gates, ``taps.py``): a captured batch gives
    the compiled plain batch's clips exactly, its means and its cut clips are the uncompiled ones within float32
    rounding, and a cut differs from the full decoder."""
    compiled, eager = compiled_pair
    captures = [Capture([Site(0, "mlp"), Site(1, "resid")]) for _ in range(2)]
    audio = [runner.generate(prompts, capture=capture) for runner, capture in zip((compiled, eager), captures)]
    assert torch.equal(audio[0], compiled.generate(prompts))
    for site in captures[0].sites:
        assert captures[0].steps[site] == captures[1].steps[site] == compiled.max_new_tokens
        torch.testing.assert_close(captures[0].row_means(site), captures[1].row_means(site), atol=1e-4, rtol=1e-5)
    cut = compiled.generate(prompts, cut=1)
    torch.testing.assert_close(cut, eager.generate(prompts, cut=1), atol=1e-4, rtol=0)
    assert (cut - audio[0]).abs().max() > 1e-2


def test_compiled_rows_are_stored_apart_from_eager_ones(tmp_path):
    """``--compile`` picks the static cache and is part of the store key, with the batch size every batch is padded
    to (its kernels round differently, and by shape) and a mark that every pass runs the compiled step (a store of
    the compiled runs from before, whose baselines came from the eager step, is not read); off, the key is the
    eager run's."""
    from mgbench.experiments.session import RunConfig, Session

    configs = [RunConfig(model="tiny", prompts=1, cache=str(tmp_path), compile_mode=m, batch_size=4)
               for m in (None, "default")]
    eager, compiled = (Session(c) for c in configs)
    assert "compile" not in eager.key()
    assert compiled.key() == {**eager.key(), "compile": {"mode": "default", "passes": "one step", "batch": 4}}
    assert compiled.runner.batch_size == 4 and compiled.runner.fixed
    assert (compiled.runner.cache, compiled.runner.compile_mode) == ("static", "default")
    assert (eager.runner.cache, eager.runner.compile_mode) == ("dynamic", None)


def test_the_compiled_step_is_one_graph_without_breaks(prompts, monkeypatch):
    """The position table's resize branch (an ``if`` on the static cache's length) would split the step into
    graphs; read presized, the step is one graph. Checked with dynamo's eager backend (same tracing, no inductor)."""
    from mgbench.engine import decode

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, mode, dynamic: real_compile(module, backend="eager",
                                                                                      dynamic=dynamic))
    loaded = load_musicgen("tiny", dtype=torch.float32)
    runner = MusicgenRunner(loaded, SETTINGS, cache="static", compile_mode="default")
    breaks = []
    for patch in (False, True):
        if patch:  # break it on purpose: the transformers table, branch and all
            monkeypatch.setattr(decode, "presized_positions", lambda model, length: contextlib.nullcontext())
        torch._dynamo.reset()
        counters.clear()
        runner.generate(prompts)
        breaks.append(sum(counters["graph_break"].values()))
        if not patch:
            assert counters["stats"]["unique_graphs"] == 1
    assert breaks[0] == 0 and breaks[1] > 0


def test_presized_positions_give_transformers_values(tiny):
    """Same table values as transformers' own forward, grown to the length asked for, restored afterwards."""
    from mgbench.engine.decode import presized_positions

    positions = tiny.model.decoder.model.decoder.embed_positions
    ids = torch.zeros(2, 4, 1, dtype=torch.long)
    kind, size = type(positions), positions.weights.size(0)
    expected = [positions(ids, n) for n in (0, 7, size - 1)]
    with presized_positions(tiny.model, size + 5):
        assert type(positions) is not kind and positions.weights.size(0) == size + 5
        got = [positions(ids, n) for n in (0, 7, size - 1)] + [positions(ids, size + 4)]
    assert type(positions) is kind
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert torch.equal(got[-1], positions(ids, size + 4))  # transformers' own table, now that long
