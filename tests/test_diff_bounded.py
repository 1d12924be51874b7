"""The diff computed from per-prompt aggregates equals the diff of both runs' rows melted and outer-merged
(tests/reference_stats.py), aggregate by aggregate, on the awkward cases: prompts or aggregates on one side only,
NaN metrics, several models, a run compared with itself; and on a paper-shaped folder."""

import numpy as np
import pandas as pd
import pytest
import reference_stats as reference
from paper_scale import Shift, write_paper_results
from test_diff_significance import tables

from mgbench.report.diff import COLUMNS, compare_results
from mgbench.report.results import Results, load_results

RESAMPLES = 999


#: the aggregates the old diff compared, as the declarations name them now; each aggregate's numbers but the
#: adjusted p (which depends on how many aggregates are compared: the declarations compare more)
SHARED = ["model", "figure", "key", "metric", "before", "after", "delta", "lo", "hi", "p", "n"]


def assert_same_diff(current: Results, baseline: Results) -> pd.DataFrame:
    got = compare_results(current, baseline, resamples=RESAMPLES)
    expected = reference.compare_results(current, baseline, resamples=RESAMPLES)
    expected = expected.assign(figure=expected.figure.replace({"ceiling": "ceiling_pair_type"}))
    assert list(got.columns) == COLUMNS
    mine = got.merge(expected[["model", "figure", "key", "metric"]], on=["model", "figure", "key", "metric"])
    assert len(mine) == len(expected)
    pd.testing.assert_frame_equal(mine[SHARED].sort_values(SHARED[:4], ignore_index=True),
                                  expected[SHARED].sort_values(SHARED[:4], ignore_index=True), check_exact=True)
    assert got.n.dtype == np.int64
    return got


def results(tabs: dict[str, pd.DataFrame]) -> Results:
    return Results(folder=None, tables=tabs)


def test_noisy_runs_with_a_planted_shift():
    before, after = tables(1), tables(2)
    hit = (after["decoderlens"].concept == "piano") & (after["decoderlens"].layer == 1)
    after["decoderlens"].loc[hit, "ndcg"] += 0.1
    got = assert_same_diff(results(after), results(before))
    assert got.changed.sum() >= 1 and got.iloc[0].key == "piano-L1"


def test_a_run_compared_with_itself():
    run = results(tables(1))
    got = assert_same_diff(run, run)
    assert (got.delta == 0).all() and (got.p == 1).all() and not got.changed.any()


def test_prompts_and_aggregates_on_one_side_and_nan_metrics():
    before, after = tables(1), tables(2)
    iv = after["interventions"]
    after["interventions"] = iv[~((iv.prompt_id == 3) & (iv.original == "jazz"))]  # a prompt missing on one side
    after["decoderlens"] = after["decoderlens"][after["decoderlens"].layer < 2]  # aggregates missing on one side
    extra = before["ceiling"].assign(prompt_id=before["ceiling"].prompt_id + 100)  # prompts the other run lacks
    before["ceiling"] = pd.concat([before["ceiling"], extra], ignore_index=True)
    before["interventions"].loc[before["interventions"].layer == 2, "precision"] = np.nan  # no values on one side
    after["interventions"].loc[after["interventions"].index[::7], "effect"] = np.nan  # scattered gaps
    got = assert_same_diff(results(after), results(before))
    assert got.after.isna().any() and (got.n == 0).any() and (got.n < 8).any()


def test_several_models_and_a_table_on_one_side():
    two = {name: pd.concat([t, t.assign(model="other")], ignore_index=True) for name, t in tables(1).items()}
    moved = {name: pd.concat([t, t.assign(model="other")], ignore_index=True) for name, t in tables(2).items()}
    del moved["ceiling"]
    got = assert_same_diff(results(moved), results(two))
    assert set(got.model) == {"toy", "other"} and got[got.figure == "ceiling_pair_type"].after.isna().all()


def test_tables_without_pair_types():
    """Rows without a pair type (a table from another tool; the old diff failed on them) have no pair type or ceiling
    aggregates; the others are those of the same rows with pair types."""
    before, after = tables(1), tables(2)
    full = assert_same_diff(results(after), results(before))
    got = compare_results(*(results({name: t.drop(columns="pair_type", errors="ignore") for name, t in run.items()})
                            for run in (after, before)), resamples=RESAMPLES)
    assert set(got.figure) == {"decoderlens", "profile"}
    kept = full[full.figure.isin(["decoderlens", "profile"])]
    pd.testing.assert_frame_equal(got[SHARED].sort_values(SHARED[:4], ignore_index=True),
                                  kept[SHARED].sort_values(SHARED[:4], ignore_index=True), check_exact=True)


def test_a_paper_shaped_folder(tmp_path):
    """Every table of a real run at the full grid of small (3 prompts), against a night with other noise and a few
    changed aggregates."""
    changes = (Shift("small", "decoderlens", (("concept", "rock"), ("layer", 4)), "ndcg", 0.2),
               Shift("small", "interventions", (("technique", "replace"), ("layer", 9)), "precision", -0.3))
    write_paper_results(tmp_path / "a", ("small",), prompts=3)
    write_paper_results(tmp_path / "b", ("small",), prompts=3, seed=1, changes=changes)
    got = assert_same_diff(load_results(tmp_path / "b"), load_results(tmp_path / "a"))
    # DecoderLens and tuned lens (10 concepts x 24 layers), profile, pair type, the ceiling by pair type (4 metrics)
    assert len(got) == 2 * 10 * 24 + 2 * 24 * 3 * 2 + 2 * 4 * 3 + 4 * 4 and (got.n == 3).all()


@pytest.mark.parametrize("broken", ["prompt order", "pairing"])
def test_the_comparison_catches_a_broken_diff(monkeypatch, broken):
    """Shuffling each aggregate's prompts before the bootstrap, or pairing prompts by position instead of by id,
    changes the numbers: the comparison above would fail."""
    import mgbench.report.diff as diff

    before, after = tables(1), tables(2)
    after["decoderlens"] = after["decoderlens"][after["decoderlens"].prompt_id != 2]
    original = diff._paired

    def shuffled(merged, resamples):
        merged = merged.sample(frac=1.0, random_state=0).reset_index(drop=True)
        if broken == "prompt order":
            merged = merged.assign(prompt_id=-merged.prompt_id)  # sorted backwards: same pairs, other order
        else:
            merged = merged.assign(after=merged.groupby(diff.AGGREGATE).after.transform(
                lambda s: s.dropna().reset_index(drop=True).reindex(range(len(s))).to_numpy()))
        return original(merged, resamples)

    monkeypatch.setattr(diff, "_paired", shuffled)
    with pytest.raises(AssertionError):
        assert_same_diff(results(after), results(before))
