"""The tuned lens: its objective against scipy, its hook against a hand-written translation, its training, its
file, and the toy world's ground truth (chance before the entry layer, the full model's recognition at it)."""

import pytest
import torch
from safetensors.torch import save_file
from scipy.stats import entropy, fisher_exact

from mgbench.engine.hooks import cut_decoder, installed
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.errors import ConfigError
from mgbench.experiments.pipeline import run_selection
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.tunedlens import tuned_lens, write_lens
from mgbench.lens.training import LensTraining, fit_lens, kl_to_final, record_states
from mgbench.lens.translators import TunedLens, load_lens
from mgbench.suite.ground_truth import Check, judge, lens_check, recognition
from mgbench.suite.planted import planted_truth
from mgbench.zoo.loading import load_musicgen


@pytest.fixture(scope="module")
def toy():
    return load_musicgen("toy", dtype=torch.float64)


def _random_lens(hidden: int, layers: int, seed: int = 0) -> TunedLens:
    lens = TunedLens(hidden, layers).double()
    gen = torch.Generator().manual_seed(seed)
    for p in lens.parameters():
        p.data = torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1
    return lens


def test_kl_objective_equals_scipy():
    gen = torch.Generator().manual_seed(1)
    target, lens = (torch.randn(4, 6, 9, generator=gen, dtype=torch.float64).log_softmax(-1) for _ in range(2))
    expected = sum(entropy(target[c, r].exp().numpy(), lens[c, r].exp().numpy())
                   for c in range(4) for r in range(6)) / 6  # summed over codebooks, mean over rows
    assert kl_to_final(target, lens).item() == pytest.approx(expected, rel=1e-12)


def _final_norm_input(toy, cut: int, hooks: list) -> torch.Tensor:
    """The input of the decoder's final norm in one forward of the toy decoder cut after ``cut`` layers."""
    decoder, seen = toy.model.decoder.model.decoder, []
    codes = torch.randint(0, 64, (2 * toy.num_codebooks, 3), generator=torch.Generator().manual_seed(2))
    text = torch.randn(2, 5, toy.model.decoder.config.hidden_size, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(3))
    pre = [(decoder.layer_norm, lambda module, args, kwargs: seen.append(args[0].clone()))]
    with torch.no_grad(), installed(hooks, pre), cut_decoder(decoder, cut):
        toy.model.decoder(input_ids=codes, encoder_hidden_states=text)
    return seen[0]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_lens_hook_translates_the_cut_layers_output(toy, layer):
    """Under a cut after ``layer``, the final norm reads h + W h + b (h: the plain cut's state, W and b: the
    layer's translator, computed by hand); an untrained lens is the identity (the plain DecoderLens cut)."""
    hidden, layers = toy.model.decoder.config.hidden_size, toy.num_layers
    module = toy.decoder_layers[layer]
    plain = _final_norm_input(toy, layer + 1, [])
    untrained = TunedLens(hidden, layers).double()
    assert torch.equal(_final_norm_input(toy, layer + 1, [(module, untrained.hook(layer))]), plain)
    lens = _random_lens(hidden, layers)
    w, b = lens.translators[layer].weight, lens.translators[layer].bias
    translated = _final_norm_input(toy, layer + 1, [(module, lens.hook(layer))])
    torch.testing.assert_close(translated, plain + plain @ w.T + b, rtol=1e-12, atol=1e-12)
    assert not torch.equal(translated, plain)


def test_fit_starts_at_the_cut_and_lowers_every_layers_kl(toy):
    """``record_states`` keeps every row at the chosen frames of each layer; the fit's ``kl_cut`` is the plain
    cut's KL to the final layer (computed here by hand through the final norm and heads), and training lowers it
    at every layer."""
    runner = MusicgenRunner(toy, GenerationSettings(seconds=0.5))
    prompts = ["jazz with piano", "rock with guitar", "edm with violin"]
    states = record_states(runner, prompts, batch_size=2, frames_per_clip=5)
    assert states.shape == (toy.num_layers, 2 * len(prompts) * 5, toy.model.decoder.config.hidden_size)
    lens, fit = fit_lens(toy, states, LensTraining(steps=40, batch_rows=64))
    norm, heads = toy.model.decoder.model.decoder.layer_norm, toy.model.decoder.lm_heads
    with torch.no_grad():
        probs = lambda h: torch.stack([head(norm(h)) for head in heads]).softmax(-1)  # noqa: E731
        final = probs(states[-1])
        for layer in range(toy.num_layers - 1):
            cut = probs(states[layer])
            by_hand = sum(entropy(final[c, r].numpy(), cut[c, r].numpy())
                          for c in range(final.shape[0]) for r in range(final.shape[1])) / final.shape[1]
            assert fit.kl_cut[layer] == pytest.approx(by_hand, rel=1e-3, abs=1e-5)  # fitted in float32
    assert (fit.kl_tuned < fit.kl_cut).all(), fit


def test_lens_file_round_trips_and_refuses_other_files(tmp_path):
    lens = _random_lens(8, 3).float()
    lens.save(tmp_path / "lens.safetensors", {"model": "toy"})
    loaded, info = load_lens(tmp_path / "lens.safetensors")
    assert info == {"model": "toy"}
    assert all(torch.equal(a, b) for a, b in zip(lens.state_dict().values(), loaded.state_dict().values()))
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "lens.safetensors").read_bytes()[:100])
    for name in ("other", "cut", "missing"):
        with pytest.raises(ConfigError, match="is not a tuned lens saved by mgbench") as e:
            load_lens(tmp_path / f"{name}.safetensors")
        assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def toy_lens_run(tmp_path_factory):
    session = Session(RunConfig(model="toy", prompts=2, generation=GenerationSettings(seconds=1.0),
                                cache=str(tmp_path_factory.mktemp("cache"))))
    tables = run_selection(session, Selection(experiments=("decoderlens", "tunedlens")))
    return session, tables


def test_toy_tuned_lens_is_at_chance_before_the_entry_and_reaches_the_full_model_at_it(toy_lens_run):
    """The tuned lens on the toy world: the text enters at L2's cross-attention, so translators of L0 and L1 see no
    concept (the ground-truth check ``tuned_chance``) and L2's recognizes concepts above chance and not less often
    than the full model (a one-sided Fisher exact test); the same test at L1 fails, as it must."""
    session, tables = toy_lens_run
    planted = planted_truth("toy")
    categories = ("instrument", "genre")
    assert {planted.entry_layer(c) for c in categories} == {2}
    for layer, category in ((layer, category) for layer in (0, 1) for category in categories):
        assert judge(Check("tuned_chance", category=category, layer=layer), tables, planted).holds, (layer, category)

    def reaches_full_model(layer: int, category: str) -> bool:
        tuned, full = tables["tunedlens"], tables["decoderlens"]
        hits, n, _ = recognition(tuned, layer)[category]
        full_hits, full_n, _ = recognition(full, int(full.layer.max()))[category]
        fewer = fisher_exact([[hits, n - hits], [full_hits, full_n - full_hits]], alternative="less").pvalue
        return bool(lens_check(tuned, category, layer, at_chance=False).holds and fewer >= 0.01)

    assert all(reaches_full_model(2, category) for category in categories)
    assert not any(reaches_full_model(1, category) for category in categories)
    fit = tuned_lens(session)[1]
    assert list(fit.layer) == [0, 1, 2] and (fit.kl_tuned < fit.kl_cut).all()


def test_run_writes_the_translators_it_used(toy_lens_run, tmp_path):
    session, _ = toy_lens_run
    lens, _ = tuned_lens(session)
    loaded, info = load_lens(write_lens(session, tmp_path))
    assert info["model"] == "toy" and info["training"] == LensTraining().as_dict()
    assert all(torch.equal(a, b) for a, b in zip(lens.state_dict().values(), loaded.state_dict().values()))


def test_a_compiled_session_records_its_lens_states_uncompiled(tmp_path):
    """Compiled steps skip hooks registered after compiling: the lens records its states with the uncompiled step
    (a compiled session's own runner would refuse the recording hooks)."""
    session = Session(RunConfig(model="tiny", prompts=1, generation=GenerationSettings(seconds=0.3),
                                compile_mode="default", cache=str(tmp_path)))
    lens, fit = tuned_lens(session, LensTraining(prompts_per_concept=1, frames_per_clip=2, steps=2))
    assert list(fit.layer) == list(range(session.musicgen.num_layers - 1)) and (fit.states > 0).all()
