"""The localization benchmark's parts against independent computations: AUROC as the Mann-Whitney fraction, Spearman
from ranks, attribution patching against the exact patch of a hand-made model (exact where the model is linear in the
site), the faithfulness area by hand, the planted entries of the shipped two-entry world, and isolation's rates."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mgbench.concepts.concept_set import load_concepts
from mgbench.engine.sites import Site, all_sites
from mgbench.experiments import attribution, localization, patching, rankings

TOY_SPLIT = Path(__file__).parent.parent / "mgbench" / "data" / "toy" / "worlds" / "toy-split" / "planted.json"


def mann_whitney(labels, scores) -> float:
    """The fraction of (entry, other) pairs the scores order correctly, ties half."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def pair_scores(rng: np.random.Generator, pairs, entry: Site, boost: float) -> pd.DataFrame:
    sites = all_sites(4)
    rows = [(o, d, s.layer, s.component, rng.normal() + (boost if s == entry else 0.0)) for o, d in pairs
            for s in sites]
    return pd.DataFrame(rows, columns=[*rankings.KEYS, "score"])


def test_auroc_is_the_mann_whitney_fraction_and_catches_a_reversed_ranking():
    concepts = load_concepts()
    planted = json.loads(TOY_SPLIT.read_text())
    pairs = [("guitar", "piano"), ("jazz", "rock"), ("guitar", "jazz")]
    scores = pair_scores(np.random.default_rng(0), pairs, Site(1, "cross_attn"), 3.0)
    labels = rankings.entry_labels(scores, planted, concepts)
    got = rankings.pair_aurocs(scores, labels)
    for (o, d), value in got.items():
        rows = scores[(scores.original == o) & (scores.desired == d)]
        assert value == pytest.approx(mann_whitney(labels[rows.index], rows.score))
    reversed_ = rankings.pair_aurocs(scores.assign(score=-scores.score), labels)
    assert np.allclose(reversed_, 1 - got)
    assert rankings.mean_and_se(reversed_)[0] < 0.5 < rankings.mean_and_se(got)[0]


def test_entry_labels_follow_the_pairs_categories():
    concepts, planted = load_concepts(), json.loads(TOY_SPLIT.read_text())
    scores = pd.DataFrame([(o, d, s.layer, s.component, 0.0) for o, d in
                           [("guitar", "piano"), ("jazz", "rock"), ("guitar", "jazz")] for s in all_sites(4)],
                          columns=[*rankings.KEYS, "score"])
    entries = scores[rankings.entry_labels(scores, planted, concepts) == 1]
    got = {(o, d): sorted(str(Site(int(lay), c)) for lay, c in zip(g.layer, g.component))
           for (o, d), g in entries.groupby(["original", "desired"])}
    assert got == {("guitar", "piano"): ["L1.cross_attn"], ("jazz", "rock"): ["L3.cross_attn"],
                   ("guitar", "jazz"): ["L1.cross_attn", "L3.cross_attn"]}


def test_site_spearman_is_the_correlation_of_ranks():
    rng = np.random.default_rng(1)
    a = pair_scores(rng, [("guitar", "piano"), ("piano", "guitar")], Site(2, "cross_attn"), 5.0)
    b = a.assign(score=a.score + rng.normal(scale=0.5, size=len(a)))
    x, y = rankings.site_means(a).rank(), rankings.site_means(b).rank()
    assert rankings.site_spearman(a, b) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert rankings.site_spearman(a, a.assign(score=-a.score)) == pytest.approx(-1.0)


def test_lens_gains_are_differences_of_recognition_rates():
    lens = pd.DataFrame({"category": ["instrument"] * 8, "layer": [0, 0, 1, 1, 2, 2, 3, 3],
                         "recognized": [False, True, True, True, True, True, False, True]})
    gains = rankings.lens_gains(lens, 4, {"instrument": 0.25})
    assert gains.gain.tolist() == pytest.approx([0.5 - 0.25, 1.0 - 0.5, 0.0, 0.5 - 1.0])


def test_ranked_sites_break_ties_in_decoder_order():
    scores = pd.DataFrame([("a", "b", s.layer, s.component, 1.0 if s.layer == 2 else 0.0) for s in all_sites(4)],
                          columns=[*rankings.KEYS, "score"])
    assert [str(s) for s in rankings.ranked_sites(scores, "a", "b")[:4]] == [
        "L2.self_attn", "L2.cross_attn", "L2.mlp", "L0.self_attn"]


class Toy(torch.nn.Module):
    """Two sites: ``a = W1 x`` then ``b = W2 tanh(a)`` (or ``W2 a`` when linear); the metric per row is ``v . b``
    summed over positions."""

    def __init__(self, linear: bool):
        super().__init__()
        torch.manual_seed(0)
        self.first, self.a, self.b = torch.nn.Identity(), torch.nn.Linear(3, 4).double(), torch.nn.Linear(4, 2).double()
        self.v, self.linear = torch.randn(2, dtype=torch.float64), linear

    def forward(self, x):
        a = self.a(self.first(x))
        return self.b(a if self.linear else torch.tanh(a)) @ self.v


def exact_patch(model: Toy, x: torch.Tensor, site: str, value: torch.Tensor) -> torch.Tensor:
    handle = getattr(model, site).register_forward_hook(lambda m, args, out: value.expand_as(out))
    try:
        return model(x).sum(-1)
    finally:
        handle.remove()


def estimates(outputs, grads, site: Site, value: torch.Tensor) -> torch.Tensor:
    return torch.tensor([attribution.estimate(value if value.dim() == 1 else value[i], outputs[site][i],
                                              grads[site][i]) for i in range(2)], dtype=torch.float64)


@pytest.mark.parametrize("linear", [True, False])
def test_attribution_equals_the_exact_patch_where_the_model_is_linear(linear):
    model, x = Toy(linear), torch.randn(2, 5, 3, dtype=torch.float64)
    sites = {Site(0, "mlp"): model.a, Site(1, "mlp"): model.b}
    metric, outputs, grads = attribution.site_gradients(lambda: model(x).sum(-1), sites, model.first)
    assert torch.allclose(metric, model(x).detach().sum(-1))
    for site, name in ((Site(0, "mlp"), "a"), (Site(1, "mlp"), "b")):
        mean = outputs[site].mean((0, 1)) + torch.randn(outputs[site].shape[-1], dtype=torch.float64)
        exact = exact_patch(model, x, name, mean) - metric
        if linear or name == "b":  # the metric is linear in the site: the estimate is the exact patched change
            assert torch.allclose(estimates(outputs, grads, site, mean), exact, rtol=1e-9, atol=1e-12)
        else:  # through tanh it is not, for a patch this large ...
            assert not torch.allclose(estimates(outputs, grads, site, mean), exact, rtol=1e-2)
            small = outputs[site] + 1e-6 * torch.randn_like(outputs[site])  # ... but it is to first order
            exact = exact_patch(model, x, name, small) - metric
            assert torch.allclose(estimates(outputs, grads, site, small), exact, rtol=1e-4, atol=1e-12)


def test_curve_area_by_trapezoids():
    x, y = np.array([1, 2, 3, 6, 12]) / 12, np.array([0.2, 0.5, 0.9, 1.0, 1.0])
    by_hand = sum((x[i + 1] - x[i]) * (y[i] + y[i + 1]) / 2 for i in range(4)) / (x[-1] - x[0])
    assert patching.curve_area(x[::-1], y[::-1]) == pytest.approx(by_hand)
    assert patching.curve_area(x, np.ones(5)) == pytest.approx(1.0)


def test_isolation_rows_and_rates():
    from scipy.stats import beta

    rate, lo, hi, n = patching.recognized_rate([True] * 7 + [False])
    assert (rate, n) == (7 / 8, 8)
    assert lo == pytest.approx(beta.ppf(0.025, 7, 2)) and hi == pytest.approx(beta.ppf(0.975, 8, 1))
    iso = pd.DataFrame([dict(steered="instrument", site="L1.cross_attn", measured="genre", edit=e, value=v, lo=0.0,
                             hi=1.0, n=n) for e, v, n in (("without", 1.0, 8), ("with", 0.75, 24))])
    rows = {r["metric"]: r for r in localization._isolation(iso)}
    assert rows["isolation_difference"]["value"] == pytest.approx(-0.25)
    assert rows["isolation_with"]["n"] == 24


def test_prompt_concept_reads_the_slot_word():
    class Named:
        concepts = load_concepts()

    for concept, p in itertools.product(["guitar", "jazz"], range(3)):
        named = patching.prompt_concept(Named, concept, p, "genre")
        assert Named.concepts.get(named).word in Named.concepts.prompts(concept, p + 1)[p]


def test_attribution_cost_and_the_cases_of_a_world():
    forwards, sequences = attribution.attribution_forwards(concepts=10, originals=10, prompts=2)
    assert (forwards, sequences) == (60, 600)
    assert localization._cases("tiny", load_concepts(), 4) == []
    cases = [c.id for c in localization._cases("toy", load_concepts(), 4)]
    assert cases[0] == "toy-localization-attribution_cheaper" and len(cases) == 4  # and 3 site-level AUROCs


def test_localization_runs_only_when_named():
    from mgbench.backends import get_backend
    from mgbench.experiments import catalog

    defaults = catalog.default_experiments(get_backend("transformers"))
    assert "localization" not in defaults and "interventions" in defaults
    assert "localization" in catalog.names()


def test_faithfulness_is_the_top_sites_share_of_the_whole_patch(monkeypatch):
    entry, calls = Site(2, "cross_attn"), []

    def effect(session, o, d, p, sites):  # the entry carries 8 of the whole patch's 10
        calls.append((p, frozenset(sites)))
        return 8.0 * (entry in sites) + 2.0 * len(sites) / 12

    monkeypatch.setattr(patching, "patched_effect", effect)

    class Config:
        prompts = 2

    class Fake:
        config = Config

    good = pd.DataFrame([("a", "b", s.layer, s.component, float(s == entry)) for s in all_sites(4)],
                        columns=[*rankings.KEYS, "score"])
    ceiling = pd.DataFrame({"original": ["a", "a"], "desired": ["b", "b"], "effect": [4.0, 6.0]})
    curve = patching.faithfulness_rows(Fake, {"good": good, "bad": good.assign(score=-good.score)}, [("a", "b")],
                                       ceiling)
    good_curve, bad_curve = curve[curve.method == "good"], curve[curve.method == "bad"]
    assert good_curve.k.tolist() == [1, 2, 3, 6, 12] and (curve.ceiling == 5.0).all()
    assert good_curve.faithfulness.tolist() == pytest.approx([(8 + 2 * k / 12) / 10 for k in (1, 2, 3, 6)] + [1.0])
    assert bad_curve.faithfulness.iloc[0] == pytest.approx(2 / 12 / 10)  # the entry ranked last
    assert len(calls) == len(set(calls)) == 2 * (4 + 4 + 1)  # the all-sites patch once per prompt for both
    assert patching.curve_area(good_curve.fraction_sites, good_curve.faithfulness) > 0.8 > patching.curve_area(
        bad_curve.fraction_sites, bad_curve.faithfulness)


def test_the_cost_formula_counts_the_decoder_calls(tmp_path):
    """A pre-hook on the decoder counts its calls: a clip is ``max_new_tokens`` of them, attribution patching one
    teacher-forced call per original prompt (its backward, counted as two forwards, makes no call)."""
    from mgbench.engine.decode import undelayed
    from mgbench.engine.runner import GenerationSettings
    from mgbench.experiments.session import RunConfig, Session

    session = Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.3),
                                cache=str(tmp_path / "cache")))
    pairs = [("guitar", "jazz"), ("jazz", "guitar")]
    for c in ("guitar", "jazz"):
        session.concept_pass(session.concepts.get(c))
    decoder, calls = session.musicgen.model.decoder, []
    handle = decoder.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs["input_ids"].shape),
                                               with_kwargs=True)
    try:
        session.runner.generate(["a jazz piece"])
        assert len(calls) == session.runner.max_new_tokens
        calls.clear()
        rows = attribution.attribution_rows(session, pairs)
    finally:
        handle.remove()
    codebooks = session.musicgen.model.decoder.num_codebooks
    teacher_forced = [shape for shape in calls if shape[1] > 1]  # the codes' generation is one row per frame
    assert len(teacher_forced) == 2 * 2  # two originals x two prompts
    assert all(shape == (2 * codebooks, session.runner.max_new_tokens) for shape in teacher_forced)
    forwards, sequences = attribution.attribution_forwards(concepts=2, originals=2, prompts=2)
    assert forwards == len(teacher_forced) * (1 + attribution.BACKWARD_FORWARDS) and sequences == 2 * forwards
    assert len(rows) == len(pairs) * 2 * 12
    model = session.musicgen.model
    codes = attribution.generated_codes(session, session.prompts("guitar"))
    sequence, pattern = attribution.delayed(model, codes)
    assert torch.equal(undelayed(model, sequence), codes)  # the delay pattern put back exactly
    assert ((sequence == model.generation_config.pad_token_id) == (pattern != -1)).all()


@pytest.mark.parametrize("leak", [False, True])
def test_isolation_counts_the_other_categorys_recognition(monkeypatch, leak):
    """Steering instruments at L1 on a fake two-entry world: the clips' genre stays recognized, unless the edit leaks
    (then every clip steered towards piano loses its genre)."""
    from mgbench.concepts.recognition import recognition

    concepts = load_concepts()
    seen = recognition(concepts)

    def logits_for(genre: str) -> torch.Tensor:
        out = torch.zeros(1, 527)
        out[0, seen.odds_column(concepts.get(genre))] = 10.0
        return out

    class Pass:
        def __init__(self, concept):
            self.logits = torch.cat([logits_for(patching.prompt_concept(Fake, concept, p, "genre")) for p in range(2)])

    class Config:
        prompts = 2

    class Fake:
        config = Config

        def prompts(name):
            return concepts.prompts(name, 2)

        def concept_pass(concept):
            return Pass(concept.name)

    Fake.concepts, Fake.recognition = concepts, seen
    monkeypatch.setattr(patching, "make_edit", lambda session, technique, o, d, site: (o, d))
    prompt_ids = {p: (c.name, i) for c in concepts.concepts for i, p in enumerate(concepts.prompts(c.name, 2))}

    def patched(session, prompt, edits):
        o, d = edits[0]
        genre = patching.prompt_concept(Fake, *prompt_ids[prompt], "genre")
        return logits_for("edm" if leak and d == "piano" and genre != "edm" else genre)

    monkeypatch.setattr(patching, "patched_logits", patched)
    planted = json.loads(TOY_SPLIT.read_text())
    rows = patching.isolation_rows(Fake, planted)
    genre = rows[rows.measured == "genre"].set_index("edit")
    assert genre.n.to_dict() == {"without": 8, "with": 24}
    assert genre.value["without"] == 1.0
    steered_to_piano = 2 * 3  # guitar, trumpet, violin x 2 prompts
    leaked = sum(patching.prompt_concept(Fake, o, p, "genre") != "edm" for o in ("guitar", "trumpet", "violin")
                 for p in range(2))
    assert genre.value["with"] == pytest.approx(1 - leaked / 24 if leak else 1.0)
    assert 0 < leaked <= steered_to_piano
    assert set(rows.steered) == {"instrument", "genre"}
