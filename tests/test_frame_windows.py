"""Issue 16, part 2: edits limited to a window of generated frames [t0, t1), counted as decode steps."""

import pytest
import torch

from mgbench.engine.hooks import ADD, REPLACE, FrameClock, RowEdit, edit_hooks, installed
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site
from mgbench.zoo.loading import load_musicgen

SITE = Site(1, "mlp")
SETTINGS = GenerationSettings(seconds=0.5, seed=3)


@pytest.fixture(scope="module")
def exact_tiny():
    return load_musicgen("tiny", dtype=torch.float64)


def _vector(loaded, seed: int = 5) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(loaded.model.decoder.config.hidden_size, generator=gen, dtype=torch.float64) * 2


def _per_frame(runner, prompts, edits, layer: int = SITE.layer) -> list[torch.Tensor]:
    """The residual output of ``layer`` at every decoder call (clones), and the clip, for ``edits``."""
    outputs = []
    hook = lambda m, a, out: outputs.append(out[0].detach().clone())  # noqa: E731
    with installed([(runner.loaded.decoder_layers[layer], hook)]):
        audio = runner.generate(prompts, edits=edits)
    return outputs, audio


def test_the_hook_edits_only_inside_the_window(tiny):
    clock, value = FrameClock(), torch.full((64,), 2.0)
    edits = [RowEdit(SITE, ADD, value, frames=(2, 4)), RowEdit(SITE, REPLACE, value)]
    (module, hook), = edit_hooks(tiny.decoder_layers, edits, guided=False, clock=clock)
    h = torch.randn(2, 1, 64)
    for frame in range(6):
        clock.frame = frame
        out = h.clone()
        hook(module, None, out)
        inside = 2 <= frame < 4
        assert torch.equal(out[0], h[0] + value if inside else h[0]), frame  # outside: the very same bits
        assert torch.equal(out[1], value.expand(1, 64))  # an edit without a window edits every frame
    with pytest.raises(ValueError, match="FrameClock"):
        edit_hooks(tiny.decoder_layers, edits, guided=False)


@pytest.mark.parametrize("engine", ["own", "generate"])
def test_frames_outside_the_window_are_bit_identical_to_the_baseline(exact_tiny, prompts, engine):
    runner = MusicgenRunner(exact_tiny, SETTINGS, engine=engine)
    vector, (t0, t1) = _vector(exact_tiny), (4, 9)
    first = 1 if engine == "generate" else 0  # generate calls the decoder twice for frame 0
    base, base_audio = _per_frame(runner, prompts, None)
    windowed, audio = _per_frame(runner, prompts, [RowEdit(SITE, ADD, vector, frames=(t0, t1))] * len(prompts))
    from_t0, _ = _per_frame(runner, prompts, [RowEdit(SITE, ADD, vector, frames=(t0, 10_000))] * len(prompts))
    assert len(base) == len(windowed) == runner.max_new_tokens + first
    for call in range(first + t0):  # before the window: every frame's activations exactly the baseline's
        assert torch.equal(windowed[call], base[call]), call
    assert not torch.equal(windowed[first + t0], base[first + t0])  # the edit starts at frame t0, not later
    for call in range(first + t1):  # a window ending at t1 equals one running on up to t1 ...
        assert torch.equal(windowed[call], from_t0[call]), call
    assert not torch.equal(windowed[first + t1], from_t0[first + t1])  # ... and stops editing at frame t1
    assert not torch.equal(audio, base_audio)


def test_a_window_means_the_same_frames_on_both_engines(exact_tiny, prompts):
    vector = _vector(exact_tiny)
    edits = [RowEdit(SITE, ADD, vector, frames=(3, 7)), None, RowEdit(Site(0, "self_attn"), REPLACE, vector,
                                                                     vector, frames=(0, 2)), None]
    own, generate = (MusicgenRunner(exact_tiny, SETTINGS, engine=e).generate(prompts, edits=edits)
                     for e in ("own", "generate"))
    assert torch.equal(own, generate)
    shifted = [RowEdit(SITE, ADD, vector, frames=(4, 8)), None, RowEdit(Site(0, "self_attn"), REPLACE, vector,
                                                                       vector, frames=(1, 3)), None]
    assert not torch.equal(own, MusicgenRunner(exact_tiny, SETTINGS).generate(prompts, edits=shifted))


def test_a_window_after_the_clip_changes_nothing(exact_tiny, prompts):
    runner = MusicgenRunner(exact_tiny, SETTINGS)
    steps = runner.max_new_tokens
    edits = [RowEdit(SITE, REPLACE, _vector(exact_tiny), frames=(steps, steps + 5))] * len(prompts)
    assert torch.equal(runner.generate(prompts, edits=edits), runner.generate(prompts))


def test_windows_are_refused_by_the_compiled_path(prompts):
    loaded = load_musicgen("tiny")  # its own copy: edit slots stay on the model they are put on
    runner = MusicgenRunner(loaded, SETTINGS, cache="static", compile_mode="default")
    with pytest.raises(ValueError, match="edits limited to frames run uncompiled only"):
        runner.generate(prompts[:1], edits=[RowEdit(SITE, ADD, torch.ones(64), frames=(0, 2))])
    with pytest.raises(ValueError, match="edit slots edit every frame"):
        with runner.slots.applied([RowEdit(SITE, ADD, torch.ones(64), frames=(0, 2))]):
            pass


def test_a_window_must_not_run_backwards():
    with pytest.raises(ValueError, match="0 <= t0 <= t1"):
        RowEdit(SITE, ADD, torch.ones(64), frames=(5, 2))
