"""The regression diff as paired differences over prompts, flagged under Benjamini-Hochberg control."""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mgbench.experiments.pipeline import write_tables
from mgbench.report.diff import compare_results, diff_results
from mgbench.report.render import build_report
from mgbench.report.results import aggregates, load_results

EXPECTATIONS = Path(__file__).resolve().parents[1] / "expectations"
CONCEPTS = {"guitar": "instrument", "piano": "instrument", "jazz": "genre"}
PROMPTS, LAYERS, RESAMPLES = 8, 3, 999


def tables(seed: int) -> dict[str, pd.DataFrame]:
    """Every table of a run with per-prompt numbers: a fixed part per prompt plus run noise from ``seed``."""
    fixed, noise = np.random.default_rng(0), np.random.default_rng(seed)
    dl = pd.DataFrame([("toy", "toy", c, cat, layer, p, fixed.uniform(0.2, 0.6) + noise.normal(0, 0.02))
                       for (c, cat), layer, p in itertools.product(CONCEPTS.items(), range(LAYERS), range(PROMPTS))],
                      columns=["model", "classifier", "concept", "category", "layer", "prompt_id", "ndcg"])
    rows = []
    for t, o, d, layer, comp, p in itertools.product(["replace", "adjust"], CONCEPTS, CONCEPTS, range(LAYERS),
                                                     ["cross_attn", "mlp"], range(PROMPTS)):
        if o != d:
            eo, ed = fixed.normal(1.0, 0.3) + noise.normal(0, 0.05), fixed.normal(0.2, 0.1) + noise.normal(0, 0.05)
            rows.append(("toy", "toy", t, o, d, f"{CONCEPTS[o]}->{CONCEPTS[d]}", layer, comp, p, eo + ed, eo, ed,
                         -fixed.uniform(0.5, 1.0) + noise.normal(0, 0.02)))
    iv = pd.DataFrame(rows, columns=["model", "classifier", "technique", "original", "desired", "pair_type", "layer",
                                     "component", "prompt_id", "effect", "effect_original", "effect_desired",
                                     "precision"])
    ceiling = pd.DataFrame([("toy", "toy", o, d, f"{CONCEPTS[o]}->{CONCEPTS[d]}", p,
                             fixed.normal(2.0, 0.3) + noise.normal(0, 0.05), -fixed.uniform(0.5, 1.0))
                            for o, d, p in itertools.product(CONCEPTS, CONCEPTS, range(PROMPTS)) if o != d],
                           columns=["model", "classifier", "original", "desired", "pair_type", "prompt_id", "effect",
                                    "precision"])
    return {"decoderlens": dl, "interventions": iv, "ceiling": ceiling}


def write(folder: Path, tabs: dict[str, pd.DataFrame]) -> Path:
    write_tables(folder, tabs, {"model": "toy", "prompts": PROMPTS, "seconds": 1.0, "versions": {"mgbench": "test"}})
    return folder


def test_a_baseline_compared_with_itself_flags_nothing(tmp_path):
    base = load_results(write(tmp_path / "a", tables(1)))
    compared = compare_results(base, base, resamples=RESAMPLES)
    assert len(compared) == 57 and not compared.changed.any()
    assert (compared.delta == 0).all() and (compared.p == 1).all() and (compared.n == PROMPTS).all()
    assert diff_results(base, base, resamples=RESAMPLES).empty


def test_a_planted_shift_is_flagged_and_nothing_else(tmp_path):
    base = tables(1)
    current = tables(2)  # another run: the same prompts, other noise
    dl = current["decoderlens"]
    hit = (dl.concept == "piano") & (dl.layer == 1)
    shift = 0.1 + np.random.default_rng(3).normal(0, 0.01, hit.sum())
    dl.loc[hit, "ndcg"] += shift
    before, after = load_results(write(tmp_path / "a", base)), load_results(write(tmp_path / "b", current))
    compared = compare_results(after, before, resamples=RESAMPLES)
    changed = compared[compared.changed]
    assert list(zip(changed.figure, changed.key, changed.metric)) == [("decoderlens", "piano-L1", "ndcg")]
    assert compared.index[compared.changed].tolist() == [0]  # changed ones come first
    # the delta by hand: per prompt (one row each here) after - before, averaged
    old = base["decoderlens"][hit].ndcg.to_numpy()
    new = dl[hit].ndcg.to_numpy()
    row = changed.iloc[0]
    assert row.delta == pytest.approx(np.mean(new - old)) and row.lo < row.delta < row.hi
    assert row.p == pytest.approx(stats.ttest_rel(new, old).pvalue)
    # before/after are the aggregates' values (every row matched)
    agg = aggregates(after).set_index(["figure", "key", "metric"]).value
    both = compared[compared.figure != "ceiling"].set_index(["figure", "key", "metric"])
    assert np.allclose(both.after, agg.loc[both.index])
    # the adjusted p-values are Benjamini-Hochberg's over all compared aggregates
    assert np.allclose(compared.p_adjusted, stats.false_discovery_control(compared.p, method="bh"))
    text = build_report(tmp_path / "b", out=tmp_path / "r", baseline=tmp_path / "a",
                        expectations_dir=EXPECTATIONS)[0].read_text()
    assert f"{len(compared)} aggregate metrics compared" in text and "false discovery rate" in text
    assert "1 changed significantly" in text and "piano-L1" in text


def test_rows_are_paired_on_prompt_ids(tmp_path):
    base = tables(1)
    current = {k: v.copy() for k, v in base.items()}
    ceiling = current["ceiling"]
    ceiling.loc[ceiling.original == "guitar", "effect"] += 0.5
    shuffled = {k: v.sample(frac=1, random_state=0) for k, v in current.items()}  # row order must not matter
    compared = compare_results(load_results(write(tmp_path / "b", shuffled)),
                               load_results(write(tmp_path / "a", base)), resamples=RESAMPLES)
    changed = compared[compared.changed]
    # guitar->piano is half of the instrument->instrument rows, guitar->jazz half of the instrument->genre rows
    assert set(zip(changed.key, changed.metric)) == {("ceiling-instrument->instrument", "effect"),
                                                     ("ceiling-instrument->genre", "effect")}
    assert changed.set_index("key").delta.to_dict() == pytest.approx({"ceiling-instrument->instrument": 0.25,
                                                                      "ceiling-instrument->genre": 0.25})


def test_aggregates_on_one_side_are_listed_but_not_flagged(tmp_path):
    base = tables(1)
    current = {k: v.copy() for k, v in base.items()}
    current["decoderlens"] = current["decoderlens"][current["decoderlens"].layer < 2]
    diff = diff_results(load_results(write(tmp_path / "b", current)), load_results(write(tmp_path / "a", base)),
                        resamples=RESAMPLES)
    assert set(diff.key) == {f"{c}-L2" for c in CONCEPTS} and not diff.changed.any() and diff.after.isna().all()
