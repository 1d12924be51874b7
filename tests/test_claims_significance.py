"""Claims as tests over prompts: effect size, interval and p by hand; holds, fails, inconclusive."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mgbench.concepts.concept_set import load_concepts
from mgbench.experiments.claims import instrument_beats_genre, last_layer_best
from mgbench.experiments.experiment import Case, Verdict
from mgbench.pytest_plugin.fixtures import CaseChecker
from mgbench.report.results import Results
from mgbench.report.sections import claims

FIRST = np.array([0.2, 0.4, 0.1, 0.3, 0.5, 0.2])  # per prompt, MLP effect at layer 0


def mlp_rows(middle: np.ndarray, last: np.ndarray) -> pd.DataFrame:
    """MLP replace rows at layers 0..3, two pairs per prompt (averaged within prompt by the claim); layers 1
    and 2 both carry ``middle`` (so the intermediate mean per prompt is ``middle``)."""
    rows = []
    for layer, values in enumerate([FIRST, middle, middle, last]):
        for prompt, value in enumerate(values):
            for pair, offset in (("guitar", -0.1), ("piano", 0.1)):  # the pairs average to ``value``
                rows.append(dict(model="small", technique="replace", component="mlp", layer=layer,
                                 original=pair, desired="jazz", pair_type="instrument->genre", prompt_id=prompt,
                                 effect=value + offset, effect_original=0.9 * (value + offset),
                                 effect_desired=0.1 * (value + offset), precision=-1.0))
    return pd.DataFrame(rows)


def by_hand(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float]:
    d = a - b
    ci = stats.bootstrap((d,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(0))
    return d.mean(), *ci.confidence_interval, stats.ttest_rel(a, b).pvalue


def numbers(detail: str, name: str) -> str:
    return detail.split(name + " ")[1].split(";")[0]


def expected(a, b) -> str:
    diff, lo, hi, p = by_hand(a, b)
    return f"{diff:+.2f} [{lo:.2f}, {hi:.2f}], p {p:.2g}, n {len(a)}"


def test_a_claim_that_holds_by_the_interval():
    middle = FIRST + np.array([0.5, 0.6, 0.4, 0.7, 0.5, 0.6])
    last = middle + np.array([0.3, 0.5, 0.2, 0.4, 0.6, 0.3])
    verdict = last_layer_best(mlp_rows(middle, last))
    assert verdict.holds is True and verdict.label == "holds"
    assert numbers(verdict.detail, "last - intermediate") == expected(last, middle)
    assert numbers(verdict.detail, "intermediate - first") == expected(middle, FIRST)
    _, lo, _, p = by_hand(last, middle)
    assert lo > 0 and p < 0.05


def test_a_claim_that_fails_by_the_interval():
    middle = FIRST + np.array([0.5, 0.6, 0.4, 0.7, 0.5, 0.6])
    last = middle - np.array([0.3, 0.5, 0.2, 0.4, 0.6, 0.3])  # the last layer is worse on every prompt
    verdict = last_layer_best(mlp_rows(middle, last))
    assert verdict.holds is False and verdict.label == "fails"
    assert numbers(verdict.detail, "last - intermediate") == expected(last, middle)
    assert by_hand(last, middle)[2] < 0


def test_a_claim_whose_interval_spans_the_threshold_is_inconclusive():
    middle = FIRST + np.array([0.5, 0.6, 0.4, 0.7, 0.5, 0.6])
    last = middle + np.array([0.4, -0.3, 0.2, -0.2, 0.3, -0.1])  # better on some prompts, worse on others
    _, lo, hi, p = by_hand(last, middle)
    assert lo < 0 < hi and p > 0.05
    verdict = last_layer_best(mlp_rows(middle, last))
    assert verdict.holds is None and verdict.inconclusive and verdict.label == "inconclusive"
    assert numbers(verdict.detail, "last - intermediate") == expected(last, middle)
    # missing rows stay "cannot judge"; a failing part outweighs an inconclusive one
    assert last_layer_best(mlp_rows(middle, last)[lambda t: t.layer < 2]).label == "cannot judge"
    both = pd.concat([mlp_rows(middle, last),
                      mlp_rows(middle, middle - 0.5).assign(technique="adjust")])
    assert last_layer_best(both).label == "fails"


def test_instrument_and_genre_prompts_are_compared_unpaired():
    inst, genre = np.array([1.0, 1.4, 1.2, 0.9]), np.array([0.5, 0.7, 0.4, 0.8])
    rows = [dict(component="mlp", technique="replace", original=o, pair_type=pt, prompt_id=p, effect=v)
            for o, pt, values in (("guitar", "instrument->instrument", inst), ("jazz", "genre->genre", genre))
            for p, v in enumerate(values)]
    verdict = instrument_beats_genre(pd.DataFrame(rows))
    ci = stats.bootstrap((inst, genre), lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
                         n_resamples=9999, method="BCa", rng=np.random.default_rng(0)).confidence_interval
    p = stats.ttest_ind(inst, genre, equal_var=False).pvalue
    assert numbers(verdict.detail, "i->i - g->g") == (f"{inst.mean() - genre.mean():+.2f} [{ci.low:.2f}, "
                                                       f"{ci.high:.2f}], p {p:.2g}, n 4")
    assert ci.low > 0 and verdict.holds is True


def test_an_inconclusive_claim_is_skipped_by_the_bench_and_shown_in_the_report():
    middle = FIRST + 0.5
    table = mlp_rows(middle, middle + np.array([0.4, -0.3, 0.2, -0.2, 0.3, -0.1]))
    records, properties = [], []
    checker = SimpleNamespace(_skip_if_unavailable=lambda case: None,
                              state=SimpleNamespace(size_tables=lambda size: {"interventions": table},
                                                    records=records, metrics={}, concepts=load_concepts(),
                                                    unavailable=lambda size: None),
                              request=SimpleNamespace(node=SimpleNamespace(user_properties=properties)))
    case = Case("claim", "small", claim="last-layer-best", parts=("last-layer-best",))
    with pytest.raises(pytest.skip.Exception, match="small-last-layer-best: inconclusive: replace: first"):
        CaseChecker.verdict(checker, case)
    assert ("verdict", "inconclusive") in properties and np.isnan(records[0]["value"])
    rows = claims(Results(Path("."), tables={"interventions": table}), [])[1][1]
    assert rows.loc["last-layer-best", "verdict"] == "inconclusive"
    assert Verdict(None, "x").label == "cannot judge" and Verdict(None, "x", inconclusive=True).label == "inconclusive"
