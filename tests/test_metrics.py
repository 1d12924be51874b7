import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist
from scipy.stats import entropy
from sklearn.metrics import ndcg_score

from mgbench.experiments.metrics import (
    intervention_effect,
    kl_divergence,
    log_odds,
    ndcg,
    precision,
    random_ranking_ndcg,
    self_similarity,
)

logit_vectors = arrays(np.float64, 12, elements=st.floats(-20, 20, allow_nan=False))


def test_ndcg_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=(3, 527))
        relevant = rng.choice(527, size=rng.integers(1, 7), replace=False)
        truth = np.zeros((3, 527))
        truth[:, relevant] = 1
        ours = ndcg(torch.tensor(logits), relevant.tolist()).numpy()
        theirs = [ndcg_score(truth[i:i + 1], logits[i:i + 1]) for i in range(3)]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)


@pytest.mark.parametrize(("relevant", "labels"), [(1, 527), (3, 527), (5, 40)])
def test_random_ranking_ndcg_is_the_mean_ndcg_of_random_scores(relevant, labels):
    rng = np.random.default_rng(relevant)
    truth = np.zeros((4000, labels))
    truth[:, :relevant] = 1
    scores = rng.random((4000, labels))  # a uniformly random ranking per row
    sampled = np.array([ndcg_score(truth[i:i + 1], scores[i:i + 1]) for i in range(4000)])
    standard_error = sampled.std() / np.sqrt(len(sampled))
    assert abs(random_ranking_ndcg(relevant, labels) - sampled.mean()) < 4 * standard_error


@given(logit_vectors, st.sets(st.integers(0, 11), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_ndcg_in_unit_interval_and_one_for_perfect_ranking(logits, relevant):
    value = ndcg(torch.tensor(logits), sorted(relevant)).item()
    assert -1e-6 <= value <= 1 + 1e-6
    perfect = np.zeros(12)
    perfect[sorted(relevant)] = 100.0 + np.arange(len(relevant))
    assert ndcg(torch.tensor(perfect), sorted(relevant)).item() == pytest.approx(1.0)


def test_effect_matches_hand_computation():
    rng = np.random.default_rng(1)
    before, after = rng.normal(size=527), rng.normal(size=527)

    def odds(logits, i):
        p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        return p[i] / (1 - p[i]), p[i]

    o_b, p_o_b = odds(before, 140)
    o_a, p_o_a = odds(after, 140)
    d_b, p_d_b = odds(before, 153)
    d_a, p_d_a = odds(after, 153)
    effect, eff_o, eff_d = intervention_effect(torch.tensor(before), torch.tensor(after), 140, 153)
    assert effect.item() == pytest.approx(np.log(o_b / o_a) - np.log(d_b / d_a))
    assert eff_o.item() == pytest.approx(np.log(o_b / o_a))
    assert eff_d.item() == pytest.approx(-np.log(d_b / d_a))
    prob_effect, _, _ = intervention_effect(torch.tensor(before), torch.tensor(after), 140, 153, kind="prob")
    assert prob_effect.item() == pytest.approx(np.log(p_o_b / p_o_a) - np.log(p_d_b / p_d_a))
    with pytest.raises(ValueError, match="odds"):
        log_odds(torch.tensor(before), 0, kind="logit")


def _mp_log_odds(logits: np.ndarray, label: int) -> float:
    """log(p / (1 - p)) of the softmax in 60-digit arithmetic (mpmath): the reference for extreme logits."""
    with mpmath.workdps(60):
        weights = [mpmath.exp(mpmath.mpf(float(x))) for x in logits]
        others = mpmath.fsum(w for k, w in enumerate(weights) if k != label)
        return float(mpmath.log(weights[label] / others))


@given(logit_vectors, st.integers(0, 11), st.sampled_from([0.0, 50.0, 500.0, 5000.0]))
@settings(max_examples=300, deadline=None)
def test_log_odds_finite_and_exact_when_one_class_dominates(logits, label, boost):
    logits = logits.copy()
    logits[label] += boost  # p(label) -> 1: 1 - p underflows in float64 for boost >= ~40
    ours = log_odds(torch.tensor(logits), label).item()
    assert np.isfinite(ours)
    assert ours == pytest.approx(_mp_log_odds(logits, label), rel=1e-9, abs=1e-9)
    before, after = logits.copy(), logits.copy()
    after[label] -= boost  # the dominant class fades: a finite effect, also from a dominant start
    effect, eff_o, _ = intervention_effect(torch.tensor(before), torch.tensor(after), label, (label + 1) % 12)
    assert np.isfinite(effect.item())
    assert eff_o.item() == pytest.approx(_mp_log_odds(before, label) - _mp_log_odds(after, label), rel=1e-9, abs=1e-7)


@given(logit_vectors, logit_vectors, st.integers(0, 11), st.integers(0, 11))
@settings(max_examples=200, deadline=None)
def test_effect_antisymmetric(a, b, i, j):
    forward = intervention_effect(torch.tensor(a), torch.tensor(b), i, j)
    backward = intervention_effect(torch.tensor(b), torch.tensor(a), i, j)
    for f, r in zip(forward, backward):
        assert f.item() == pytest.approx(-r.item(), abs=1e-9)


def test_kl_matches_scipy_and_precision_is_minus_kl_after_before():
    rng = np.random.default_rng(2)
    p, q = rng.normal(size=(4, 527)), rng.normal(size=(4, 527))
    softmax = lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)  # noqa: E731
    expected = [entropy(softmax(p[i]), softmax(q[i])) for i in range(4)]
    np.testing.assert_allclose(kl_divergence(torch.tensor(p), torch.tensor(q)).numpy(), expected, rtol=1e-9)
    after_before = [entropy(softmax(q[i]), softmax(p[i])) for i in range(4)]
    np.testing.assert_allclose(precision(torch.tensor(p), torch.tensor(q)).numpy(), -np.array(after_before))


@given(logit_vectors, logit_vectors)
@settings(max_examples=200, deadline=None)
def test_kl_nonnegative_and_zero_iff_equal(a, b):
    kl = kl_divergence(torch.tensor(a), torch.tensor(b)).item()
    assert kl >= 0
    assert kl_divergence(torch.tensor(a), torch.tensor(a)).item() == pytest.approx(0.0, abs=1e-12)
    pa, pb = (torch.softmax(torch.tensor(x), -1) for x in (a, b))
    if (pa - pb).abs().max() > 1e-3:
        assert kl > 0


def test_self_similarity_matches_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 6, 16))
    expected = np.mean([cdist(x[i], x[i]) for i in range(5)], axis=0)
    np.testing.assert_allclose(self_similarity(torch.tensor(x)).numpy(), expected, rtol=1e-9)
