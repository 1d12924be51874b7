"""Every aggregate carries its 95% bootstrap interval over prompts: summary tables, report aggregates, bench
cases, bench.csv and figures, each against scipy's bootstrap of the per-prompt values computed here by hand."""

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from scipy import stats

from mgbench.experiments.experiment import Case
from mgbench.experiments.pipeline import summarize
from mgbench.report import figures
from mgbench.report.results import AGGREGATE_COLUMNS, Results, aggregates
from mgbench.suite.cases import case_metrics, split_intervals
from mgbench.suite.expectations import Expectations

CONCEPTS = {"guitar": "instrument", "piano": "instrument", "jazz": "genre", "edm": "genre"}
PROMPTS, LAYERS = 6, 3


def scipy_interval(values) -> tuple[float, float]:
    """scipy's BCa interval of the mean, 9,999 resamples, seed 0: what every aggregate must carry."""
    result = stats.bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=9999, confidence_level=0.95,
                             method="BCa", rng=np.random.default_rng(0))
    return tuple(map(float, result.confidence_interval))


def decoderlens_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame([("small", c, cat, layer, p, rng.uniform(0.1, 0.6))
                         for (c, cat), layer, p in itertools.product(CONCEPTS.items(), range(LAYERS), range(PROMPTS))],
                        columns=["model", "concept", "category", "layer", "prompt_id", "ndcg"])


def interventions_table(seed: int = 1) -> pd.DataFrame:
    """Every technique, ordered pair, site and prompt; each prompt has a level shared by its rows."""
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 0.5, size=PROMPTS)
    rows = []
    for t, o, d, layer, comp, p in itertools.product(["replace", "adjust"], CONCEPTS, CONCEPTS, range(LAYERS),
                                                     ["self_attn", "mlp"], range(PROMPTS)):
        if o != d:
            eo, ed = level[p] + rng.normal(1.0, 0.3), rng.normal(0.2, 0.1)
            rows.append(("small", t, o, d, f"{CONCEPTS[o]}->{CONCEPTS[d]}", layer, comp, p, eo + ed, eo, ed,
                         -rng.uniform(0.5, 1.0)))
    return pd.DataFrame(rows, columns=["model", "technique", "original", "desired", "pair_type", "layer", "component",
                                       "prompt_id", "effect", "effect_original", "effect_desired", "precision"])


def ceiling_table(seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [("small", o, d, f"{CONCEPTS[o]}->{CONCEPTS[d]}", p, *rng.normal(1.0, 0.5, size=4))
            for o, d, p in itertools.product(CONCEPTS, CONCEPTS, range(PROMPTS)) if o != d]
    return pd.DataFrame(rows, columns=["model", "original", "desired", "pair_type", "prompt_id", "effect",
                                       "effect_original", "effect_desired", "precision"])


def per_prompt(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """A metric's per-prompt means (a prompt's pairs, layers or sites averaged first)."""
    return rows.groupby("prompt_id")[metric].mean().to_numpy()


def assert_carries(row: pd.Series, metric: str, rows: pd.DataFrame, lo: str = "", hi: str = "") -> None:
    """``row`` holds ``metric``'s mean over ``rows``' prompts and scipy's interval of it."""
    values = per_prompt(rows, metric)
    assert row[metric] == pytest.approx(values.mean(), rel=1e-12)
    assert (row[lo or f"{metric}_lo"], row[hi or f"{metric}_hi"]) == pytest.approx(scipy_interval(values), rel=1e-12)


# --- summarize (summary.md) -------------------------------------------------------------------------------------


def test_summary_decoderlens_point_is_scipys_bootstrap_over_its_prompts():
    dl = decoderlens_table()
    table = summarize({"decoderlens": dl})["decoderlens"]
    assert table.index.names == ["concept", "layer"] and list(table.columns) == ["ndcg", "ndcg_lo", "ndcg_hi", "n"]
    assert len(table) == len(CONCEPTS) * LAYERS and set(table.n) == {PROMPTS}
    assert_carries(table.loc[("jazz", 1)], "ndcg", dl[(dl.concept == "jazz") & (dl.layer == 1)])
    assert (table.ndcg_lo < table.ndcg).all() and (table.ndcg < table.ndcg_hi).all()


def test_summary_profile_pair_type_and_ceiling_resample_prompts_not_rows():
    iv, ceiling = interventions_table(), ceiling_table()
    summary = summarize({"interventions": iv, "ceiling": ceiling})
    assert set(summary) == {"profile", "pair_type", "ceiling", "ceiling_pair_type"}
    profile = summary["profile"]
    assert profile.index.names == ["technique", "component", "layer"]
    assert list(profile.columns) == ["effect", "effect_lo", "effect_hi", "precision", "precision_lo", "precision_hi",
                                     "n"]
    site = iv[(iv.technique == "adjust") & (iv.component == "mlp") & (iv.layer == 2)]  # 12 pairs per prompt
    for metric in ("effect", "precision"):
        assert_carries(profile.loc[("adjust", "mlp", 2)], metric, site)
    # resampling the 72 rows as if independent would ignore the level each prompt shares: far too narrow
    rows_lo, rows_hi = scipy_interval(site.effect)
    row = profile.loc[("adjust", "mlp", 2)]
    assert row.effect_hi - row.effect_lo > 2 * (rows_hi - rows_lo)

    pair_type = summary["pair_type"]
    bar = iv[(iv.component == "mlp") & (iv.technique == "replace") & (iv.pair_type == "genre->instrument")]
    for metric in ("effect", "effect_original", "effect_desired"):
        assert_carries(pair_type.loc[("replace", "genre->instrument")], metric, bar)
    assert_carries(summary["ceiling"].loc[("edm", "piano")], "precision",
                   ceiling[(ceiling.original == "edm") & (ceiling.desired == "piano")])
    assert_carries(summary["ceiling_pair_type"].loc["genre->genre"], "effect",
                   ceiling[ceiling.pair_type == "genre->genre"])


def test_summary_of_a_selection_without_mlp_rows_has_no_empty_pair_type_table():
    iv = interventions_table()
    summary = summarize({"interventions": iv[iv.component == "self_attn"], "decoderlens": pd.DataFrame()})
    assert set(summary) == {"profile"}


# --- report aggregates (the nightly diff's rows) ---------------------------------------------------------------


def test_aggregates_carry_lo_and_hi_per_row():
    dl, iv = decoderlens_table(), interventions_table()
    table = aggregates(Results(Path("."), tables={"decoderlens": dl, "interventions": iv}))
    assert list(table.columns) == AGGREGATE_COLUMNS and table[["lo", "hi"]].notna().all().all()
    assert len(table) == len(CONCEPTS) * LAYERS + 2 * 2 * LAYERS * 2 + 2 * 4 * 3
    rows = table.set_index(["figure", "key", "metric"])
    assert_carries(rows.loc[("decoderlens", "edm-L0", "ndcg")].rename({"value": "ndcg"}), "ndcg",
                   dl[(dl.concept == "edm") & (dl.layer == 0)], "lo", "hi")
    assert_carries(rows.loc[("profile", "replace-L1.self_attn", "precision")].rename({"value": "precision"}),
                   "precision", iv[(iv.technique == "replace") & (iv.layer == 1) & (iv.component == "self_attn")],
                   "lo", "hi")
    bar = iv[(iv.component == "mlp") & (iv.technique == "adjust") & (iv.pair_type == "instrument->genre")]
    assert_carries(rows.loc[("pair_type", "adjust-instrument->genre", "effect_desired")].rename(
        {"value": "effect_desired"}), "effect_desired", bar, "lo", "hi")
    assert list(aggregates(Results(Path("."))).columns) == AGGREGATE_COLUMNS


# --- bench cases, bench.csv and golden values ------------------------------------------------------------------


def test_case_metrics_carry_intervals_over_prompts():
    dl, iv = decoderlens_table(), interventions_table()
    tables = {"decoderlens": dl, "interventions": iv}
    lens = case_metrics(Case("decoderlens", "small", concept="piano", layer=2), tables)
    assert list(lens) == ["ndcg", "ndcg_lo", "ndcg_hi"]
    assert_carries(pd.Series(lens), "ndcg", dl[(dl.concept == "piano") & (dl.layer == 2)])
    profile = case_metrics(Case("profile", "small", technique="replace", layer=0, component="mlp"), tables)
    assert list(profile) == ["effect", "effect_lo", "effect_hi", "precision", "precision_lo", "precision_hi"]
    site = iv[(iv.technique == "replace") & (iv.layer == 0) & (iv.component == "mlp")]
    assert_carries(pd.Series(profile), "effect", site)
    assert_carries(pd.Series(profile), "precision", site)
    bar = case_metrics(Case("pair_type", "small", technique="adjust", pair_type="genre->genre"), tables)
    assert_carries(pd.Series(bar), "effect_original",
                   iv[(iv.technique == "adjust") & (iv.pair_type == "genre->genre") & (iv.component == "mlp")])
    one = case_metrics(Case("intervention", "small", technique="replace", original="jazz", desired="guitar", layer=1,
                            component="self_attn"), tables)
    assert_carries(pd.Series(one), "effect", iv[(iv.technique == "replace") & (iv.original == "jazz")
                                                & (iv.desired == "guitar") & (iv.layer == 1)
                                                & (iv.component == "self_attn")])
    none = case_metrics(Case("decoderlens", "small", concept="violin", layer=0), tables)
    assert all(np.isnan(v) for v in none.values()) and list(none) == ["ndcg", "ndcg_lo", "ndcg_hi"]


def test_split_intervals_keeps_only_point_metrics_as_points():
    values = {"effect": 1.0, "effect_lo": 0.5, "effect_hi": 1.5, "precision": -0.2, "half_lo": 3.0}
    points, bounds = split_intervals(values)
    assert points == {"effect": 1.0, "precision": -0.2, "half_lo": 3.0}  # a bound needs its metric and a partner
    assert bounds == {"effect": (0.5, 1.5)}


def test_golden_values_never_hold_interval_bounds(tmp_path):
    expectations = Expectations(tmp_path)
    path = expectations.update_golden({"tiny-guitar-L0": {"ndcg": 0.3, "ndcg_lo": 0.2, "ndcg_hi": 0.4}},
                                      {"prompts": 2})
    assert json.loads(path.read_text())["values"] == {"tiny-guitar-L0": {"ndcg": 0.3}}
    case = Case("decoderlens", "tiny", "guitar", layer=0, parts=("guitar", "L0"))
    assert [r.metric for r in Expectations(tmp_path).golden_ranges(case)] == ["ndcg"]


def test_bench_csv_records_the_measured_interval_beside_the_expected_range(tmp_path):
    """One tiny case over 2 prompts, in a pytest subprocess: value_lo/value_hi in bench.csv, points only golden."""
    bench = tmp_path / "bench"
    (bench / "expectations").mkdir(parents=True)
    (bench / "test_paper.py").write_text((Path(__file__).resolve().parents[1] / "bench" / "test_paper.py").read_text())
    (bench / "pytest.ini").write_text("[pytest]\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k",
                           "tiny-replace-guitar-to-piano-L1.mlp", "--prompts", "2", "--seconds", "0.5",
                           f"--results={tmp_path / 'res'}", "--update-expectations"], cwd=bench, capture_output=True,
                          text=True, env={**os.environ, "MGBENCH_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    recorded = pd.read_csv(tmp_path / "res" / "bench.csv").set_index("metric")
    assert list(recorded.columns[recorded.columns.get_loc("value"):][:5]) == ["value", "value_lo", "value_hi", "low",
                                                                             "high"]
    assert set(recorded.index) == {"effect", "effect_original", "effect_desired", "precision"}
    rows = pd.read_parquet(tmp_path / "res" / "tiny" / "interventions.parquet")
    assert len(rows) == 2
    for metric, row in recorded.iterrows():
        assert_carries(row.rename({"value": metric}), metric, rows, "value_lo", "value_hi")
    golden = json.loads((bench / "expectations" / "tiny.json").read_text())["values"]
    assert set(golden["tiny-replace-guitar-to-piano-L1.mlp"]) == set(recorded.index)


# --- figures ---------------------------------------------------------------------------------------------------


@pytest.fixture
def drawn(monkeypatch):
    """The figures the functions draw, kept open instead of saved."""
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig))
    return kept


def band_bounds(band: PolyCollection, xs) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest y of a fill_between band at each x."""
    vertices = band.get_paths()[0].vertices
    return (np.array([vertices[vertices[:, 0] == x, 1].min() for x in xs]),
            np.array([vertices[vertices[:, 0] == x, 1].max() for x in xs]))


def test_decoderlens_figure_draws_each_curves_interval_as_a_band(drawn):
    dl = decoderlens_table()
    rules = [{"experiment": "decoderlens", "size": "small", "concept": "guitar", "layers": "0-1",
              "metric": "ndcg", "reading": [0.2, 0.3], "source": "Figure 2", "tolerance": 0.15}]
    table = figures.lens_figure(dl, "small", rules, Path("unused.png"))
    assert list(table.columns) == ["ndcg", "ndcg_lo", "ndcg_hi", "n"]
    (fig,) = drawn
    instruments = fig.axes[0]
    bands = [c for c in instruments.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # guitar and piano; the paper's reading is a hatched box, not a band
    assert any(p.get_hatch() for p in instruments.patches)
    for concept, band in zip(("guitar", "piano"), bands):
        rows = dl[dl.concept == concept]
        expected = np.array([scipy_interval(per_prompt(rows[rows.layer == layer], "ndcg")) for layer in range(LAYERS)])
        lo, hi = band_bounds(band, range(LAYERS))
        np.testing.assert_allclose(lo, expected[:, 0], rtol=1e-12)
        np.testing.assert_allclose(hi, expected[:, 1], rtol=1e-12)


def test_profile_figure_draws_bands_for_effect_and_precision(drawn):
    iv = interventions_table()
    table = figures.profile_figure(iv, "small", [], Path("unused.png"))
    assert list(table.columns) == ["effect", "effect_lo", "effect_hi", "precision", "precision_lo", "precision_hi",
                                   "n"]
    (fig,) = drawn
    for ax, metric in zip(fig.axes, ("effect", "precision")):
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 4  # (adjust, replace) x (mlp, self_attn), in that order
        rows = iv[(iv.technique == "adjust") & (iv.component == "self_attn")]
        expected = np.array([scipy_interval(per_prompt(rows[rows.layer == layer], metric)) for layer in range(LAYERS)])
        lo, hi = band_bounds(bands[1], range(LAYERS))
        np.testing.assert_allclose(lo, expected[:, 0], rtol=1e-12)
        np.testing.assert_allclose(hi, expected[:, 1], rtol=1e-12)


@pytest.mark.parametrize("technique", ["replace", "adjust"])
def test_pair_type_figure_draws_error_bars_from_lo_to_hi(drawn, technique):
    iv = interventions_table()
    table = figures.pair_type_figure(iv, "small", technique, [], Path("unused.png"))
    assert table.index.name == "pair_type" and list(table.columns) == [
        "effect", "effect_lo", "effect_hi", "effect_original", "effect_original_lo", "effect_original_hi",
        "effect_desired", "effect_desired_lo", "effect_desired_hi", "n"]
    (fig,) = drawn
    bars = [c for c in fig.axes[0].containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3  # one per metric
    mlp = iv[(iv.component == "mlp") & (iv.technique == technique)]
    for metric, container in zip(("effect", "effect_original", "effect_desired"), bars):
        segments = container.lines[2][0].get_segments()
        assert len(segments) == len(table)
        for pair_type, segment in zip(table.index, segments):
            expected = scipy_interval(per_prompt(mlp[mlp.pair_type == pair_type], metric))
            assert (segment[0, 1], segment[1, 1]) == pytest.approx(expected, rel=1e-12)
