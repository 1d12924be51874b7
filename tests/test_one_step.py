"""One step for every pass: a null edit's effect is exactly 0, compiled or not, in every dtype.

The toy world's no-path cross-attentions (L0, L1, L3; docs/toy-world.md) output exactly 0, so replacing their
output by a concept's mean (0) or adding the difference of two means (0) changes nothing: every effect there must
be exactly 0. That holds only if the baseline (the concept pass, which captures every site) and the edited batch
run the same decoder step, and only if a clip's audio and logits do not depend on the batch it is in (batches
padded to one size, the classifier called on chunks of one size). It failed before issue 28 with
``--compile``: captures ran the eager step, edits the compiled one, and in bfloat16 (``mgbench run --model toy
--compile default --dtype bfloat16 --experiments interventions --components cross_attn``) the no-path effects
reached 1.09. The last test puts that back on purpose. The compiled cases compile the toy decoder with inductor
(about 25 s each on two cores).
"""

import pytest
import torch

from mgbench.engine.hooks import installed
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site
from mgbench.experiments.interventions import InterventionRows, intervention_grid
from mgbench.experiments.pipeline import Selection, run_selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.zoo.loading import load_musicgen

CONCEPTS = ("guitar", "jazz", "piano")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """``get(dtype, compile_mode)``: one toy session per configuration, made once for the module."""
    made = {}

    def get(dtype: str, mode: "str | None") -> Session:
        if (dtype, mode) not in made:
            made[dtype, mode] = Session(RunConfig(
                model="toy", dtype=dtype, prompts=2, batch_size=4, compile_mode=mode,
                generation=GenerationSettings(seconds=0.3), cache=str(tmp_path_factory.mktemp(f"{dtype}-{mode}"))))
        return made[dtype, mode]

    return get


@pytest.mark.parametrize("dtype, mode", [
    ("float64", None), ("float32", None), ("bfloat16", None),
    pytest.param("float64", "default", marks=pytest.mark.slow),
    pytest.param("float32", "default", marks=pytest.mark.slow),
    pytest.param("bfloat16", "default", marks=pytest.mark.slow)])
def test_a_null_edit_has_effect_exactly_0(sessions, dtype, mode):
    session = sessions(dtype, mode)
    table = run_selection(session, Selection(experiments=("interventions",), concepts=CONCEPTS,
                                             components=("cross_attn",), layers=(0, 2)))["interventions"]
    largest = table.groupby("layer").effect.agg(lambda e: e.abs().max())
    assert largest[0] == 0, largest  # no path: exactly 0, both techniques, every pair and prompt
    assert largest[2] > 1, largest  # the entry: the edits do act (the sweep is no no-op)
    assert (table[table.layer == 0].precision == 0).all()


@pytest.mark.slow
def test_a_baseline_from_another_step_breaks_it(sessions, monkeypatch):
    """Broken on purpose, as before issue 28: the concept passes (baselines, captured means) run the eager step (a
    hook of their own sends them there), the edits the compiled one: the null edits now have effects."""
    session = sessions("bfloat16", "default")
    monkeypatch.setattr(session.store, "load_tensors", lambda *args, **kwargs: None)  # recompute the passes
    monkeypatch.setattr(session.store, "save_tensors", lambda *args, **kwargs: None)
    monkeypatch.setattr(session, "_passes", {})
    watcher = (session.musicgen.decoder_layers[0].fc1, lambda module, args, output: None)
    with installed([watcher]):
        for name in CONCEPTS:
            session.concept_pass(session.concepts.get(name))
    grid = intervention_grid(list(CONCEPTS), ["replace", "adjust"], [Site(0, "cross_attn")], 2)
    effects = torch.tensor([e for start in range(0, len(grid), 4)
                            for e in InterventionRows(session)(grid.iloc[start:start + 4]).effect])
    assert effects.abs().max() > 0


def test_a_pass_with_hooks_of_its_own_runs_the_eager_step():
    """A pass whose decoder carries a hook of its own (the tuned lens's translator under a DecoderLens cut) cannot run
    the compiled step, which would skip the hook without a word: it runs the eager step, with the same fixed shapes,
    so its clips are the eager runner's exactly (and the hook acts)."""
    settings, prompts = GenerationSettings(seconds=0.2, seed=3), ["jazz", "a rock song with drums", "piano"]
    tiny = load_musicgen("tiny")  # its own copy: the compiled runner's hooks stay on it
    compiled = MusicgenRunner(tiny, settings, cache="static", compile_mode="default", batch_size=4)
    eager = MusicgenRunner(tiny, settings, fixed_shapes=True, batch_size=4)
    shift = torch.randn(tiny.model.decoder.config.hidden_size, generator=torch.Generator().manual_seed(1))
    lens = (tiny.decoder_layers[0], lambda module, args, output: output + shift)  # not constant: LayerNorm
    with installed([lens]):
        translated = compiled.generate(prompts, cut=1)
        assert torch.equal(translated, eager.generate(prompts, cut=1))
    assert not torch.equal(translated, eager.generate(prompts, cut=1))
