"""Every case's metrics from one grouping of its kind's table (what the bench does: ``suite.cases.kind_metrics``, then
``group_metrics`` per case) equal, case by case, the metrics computed from the case's own rows alone, the way cases
were computed before the one-pass grouping (commit 98dde5f; before it, ``interventions._metrics`` and
``cuts.lens_kind``'s ``metrics``): the case's rows filtered by its keys, averaged within prompt, then one
``scipy.stats.bootstrap`` per case and metric (``reference_stats.mean_interval``). Values, interval bounds and the
expected-range verdicts must be equal to the last bit: both sides average the same rows in the same order within a
prompt, and ``mean_intervals`` equals the per-group scipy call bit for bit (tests/test_intervals_vectorized.py), so
no tolerance is needed.

Kinds without an aggregate are out of scope: ``similarity`` computes its metrics per case, the claims and the planted
truth compute verdicts from whole tables; none of them reads the grouping.
"""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import reference_stats
from paper_scale import EXPECTATIONS, OUTLIERS, SECONDS, Shift, write_paper_results

from mgbench.concepts.concept_set import load_concepts
from mgbench.experiments.experiment import Case, CaseKind
from mgbench.suite.cases import enumerate_cases, get_kind, group_metrics, kind_metrics, kinds, split_intervals
from mgbench.suite.expectations import Expectations
from mgbench.suite.stored import read_results

SIZE, PROMPTS = "small", 5
#: the slice of the full grid kept (every pair type among the concepts; layer 1 is kept out, so its cases have no
#: rows): 216 intervention cases, 18 profile, 8 pair-type, 12 per lens
CONCEPTS, LAYERS, EMPTY_LAYER = ("guitar", "piano", "jazz", "rock"), (0, 5, 23), 1
#: per kind, the rows a case read before the one-pass grouping: the case's fields matched, fixed matches, metrics
BEFORE = {"decoderlens": (("concept", "layer"), {}, ("ndcg",)),
          "tunedlens": (("concept", "layer"), {}, ("ndcg",)),
          "intervention": (("technique", "original", "desired", "layer", "component"), {},
                           ("effect", "effect_original", "effect_desired", "precision")),
          "profile": (("technique", "layer", "component"), {}, ("effect", "precision")),
          "pair_type": (("technique", "pair_type"), {"component": "mlp"}, ("effect", "effect_original",
                                                                           "effect_desired"))}
#: planted failures inside the slice: small's outlier site (replace guitar->piano at L5.self_attn, +100) and a
#: DecoderLens point raised past its reading
PLANTED = (*(s for s in OUTLIERS if s.size == SIZE and s.table == "interventions"),
           Shift(SIZE, "decoderlens", (("concept", "guitar"), ("layer", 5)), "ndcg", 0.35))


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """small's stored tables at 5 prompts, as ``--no-compute`` reads them, cut to ``CONCEPTS`` and ``LAYERS``."""
    folder = write_paper_results(tmp_path_factory.mktemp("paper"), (SIZE,), PROMPTS, outliers=PLANTED).folder
    stored, reason = read_results(folder / SIZE, SIZE, {"prompts": PROMPTS, "seconds": SECONDS, "seed": 0})
    assert reason is None
    out = {}
    for name, table in stored.items():
        keep = np.ones(len(table), dtype=bool)
        for column in {"concept", "original", "desired"} & set(table.columns):
            keep &= table[column].isin(CONCEPTS).to_numpy()
        if "layer" in table.columns:
            keep &= table.layer.isin(LAYERS).to_numpy()
        out[name] = table[keep]
    return out


def kind_cases(name: str) -> list[Case]:
    """small's cases of kind ``name`` inside the slice, and those at ``EMPTY_LAYER`` (no rows)."""
    return [c for c in enumerate_cases(name, SIZE, load_concepts())
            if all(v is None or v in CONCEPTS for v in (c.concept, c.original, c.desired))
            and c.layer in (None, *LAYERS, EMPTY_LAYER)]


def by_hand(case: Case, table: pd.DataFrame) -> dict[str, float]:
    """The case's metrics from its own rows: filtered by its keys, averaged within prompt, one scipy bootstrap per
    metric."""
    fields, fixed, metrics = BEFORE[case.experiment]
    keep = np.ones(len(table), dtype=bool)
    for column, value in [*((f, getattr(case, f)) for f in fields), *fixed.items()]:
        keep &= (table[column] == value).to_numpy()
    per_prompt = table[keep].groupby("prompt_id", sort=True)[list(metrics)].mean()
    out = {}
    for metric in metrics:
        out[metric], out[f"{metric}_lo"], out[f"{metric}_hi"] = reference_stats.mean_interval(
            per_prompt[metric].to_numpy())
    return out


@pytest.fixture(scope="module")
def expected(tables) -> dict[str, dict[str, dict[str, float]]]:
    """Per kind, every case's metrics by hand (computed once for the module)."""
    return {name: {c.id: by_hand(c, tables[get_kind(name).table]) for c in kind_cases(name)} for name in BEFORE}


def grouped(kind: CaseKind, tables: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    """Every case's metrics as the bench computes them: one grouping of the kind's table, then a lookup per case."""
    every = kind_metrics(kind, tables)
    return {c.id: group_metrics(kind, every, c) for c in kind_cases(kind.name)}


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def differing(found: dict[str, dict[str, float]], wanted: dict[str, dict[str, float]]) -> list[str]:
    """The cases whose metrics (names, values, interval bounds) are not equal."""
    assert found.keys() == wanted.keys()
    return [case for case, values in wanted.items()
            if found[case].keys() != values.keys() or not all(same(found[case][k], v) for k, v in values.items())]


def failures(case: Case, values: dict[str, float], expectations: Expectations) -> list["str | None"]:
    """The case's expected-range verdicts, as the bench's ``CaseChecker.check`` reaches them (None: in range)."""
    ranges, _ = expectations.ranges(case, {"prompts": PROMPTS, "seconds": SECONDS, "seed": 0})
    points, bounds = split_intervals(values)
    return [r.failure(points[r.metric], bounds.get(r.metric)) for r in ranges]


def test_every_kind_with_an_aggregate_is_covered():
    assert {name for name, kind in kinds().items() if kind.aggregate is not None} == set(BEFORE)


@pytest.mark.parametrize("name", list(BEFORE))
def test_one_grouping_equals_each_case_from_its_own_rows(name, tables, expected):
    found, wanted = grouped(get_kind(name), tables), expected[name]
    assert differing(found, wanted) == []
    with_rows = [c for c, values in wanted.items() if not math.isnan(next(iter(values.values())))]
    assert with_rows and (name == "pair_type" or len(with_rows) < len(wanted))  # and cases at EMPTY_LAYER: all NaN
    assert all(not math.isnan(v) for c in with_rows for k, v in wanted[c].items() if k.endswith(("_lo", "_hi")))


def test_range_verdicts_are_equal(tables, expected):
    expectations = Expectations(EXPECTATIONS)
    checked, failed = 0, set()
    for name in BEFORE:
        found = grouped(get_kind(name), tables)
        for case in kind_cases(name):
            verdicts = failures(case, found[case.id], expectations)
            assert verdicts == failures(case, expected[name][case.id], expectations), case.id
            checked += len(verdicts)
            failed |= {case.id for v in verdicts if v}
    # the check decides something: passes and failures, the planted ones among them
    assert {"small-replace-L5.self_attn", "small-guitar-L5"} <= failed and checked > 2 * len(failed)


@pytest.mark.parametrize("name, broken", [
    ("profile", {"by": ("technique", "layer")}),  # a dropped key: the group pools the three components
    ("intervention", {"by": ("technique", "original", "layer", "component")}),  # pools the desired concepts
    ("pair_type", {"where": None}),  # the MLP filter lost: pools every component
])
def test_a_wrong_grouping_is_caught(name, broken, tables, expected):
    kind = get_kind(name)
    wrong = replace(kind, aggregate=replace(kind.aggregate, **broken))
    with_rows = [c for c, values in expected[name].items() if not math.isnan(next(iter(values.values())))]
    assert sorted(differing(grouped(wrong, tables), expected[name])) == sorted(with_rows)
