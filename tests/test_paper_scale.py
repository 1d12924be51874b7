"""The synthetic paper-scale results (tests/paper_scale.py): shaped as a real run's, accepted by every reader, and
its designed outcomes are what the bench's ranges and the claims' checks find."""

import re
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
from paper_scale import CLAIMS, EXPECTATIONS, SECONDS, SIZES, intervention_rows, prompts_for, write_paper_results

from mgbench.concepts.concept_set import load_concepts
from mgbench.engine.runner import GenerationSettings
from mgbench.experiments import tunedlens
from mgbench.experiments.claims import MODEL_CLAIMS, large_replace_best_precision
from mgbench.experiments.pipeline import run_info, run_selection
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.lens.training import LensTraining
from mgbench.report.render import build_report
from mgbench.report.results import load_results
from mgbench.stats.intervals import with_intervals
from mgbench.suite.cases import enumerate_cases
from mgbench.suite.expectations import Expectations
from mgbench.suite.stored import missing_rows, read_results, stored_ids


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    """The full grid of all three sizes at 10 prompts (648,000 intervention rows)."""
    return write_paper_results(tmp_path_factory.mktemp("paper"), prompts=10)


def test_row_counts_and_scale():
    assert intervention_rows(("small",), 100) == 1_296_000 and intervention_rows(("medium",), 100) == 2_592_000
    assert intervention_rows(SIZES, 100) == 6_480_000
    assert prompts_for(25_000, ("small",)) == 2 and prompts_for(6_500_000, SIZES) == 100


def test_its_tables_and_run_json_are_shaped_as_a_real_runs(tmp_path, monkeypatch):
    """A real (tiny, narrow) run against the fixture: the same tables, columns, dtypes and run.json keys. (Its tuned
    lens trains for one step: only the shape of its tables matters here.)"""
    monkeypatch.setattr(tunedlens.tuned_lens, "__defaults__", (LensTraining(prompts_per_concept=1, frames_per_clip=2,
                                                                           steps=1),))
    session = Session(RunConfig(model="tiny", prompts=1, generation=GenerationSettings(seconds=0.5, seed=0),
                                batch_size=8, cache=str(tmp_path / "cache")))
    selection = Selection(concepts=("guitar", "rock"), components=("mlp",), layers=(0,))
    real, info = run_selection(session, selection), {**run_info(session), "selection": asdict(selection)}
    fixture = write_paper_results(tmp_path / "paper", ("small",), prompts=1)
    folder = fixture.folder / "small"
    assert {p.stem for p in folder.glob("*.parquet")} == {*real, "tunedlens_fit"}  # (the fit: write_results')
    for name, table in real.items():
        written = pd.read_parquet(folder / f"{name}.parquet")
        assert written.dtypes.to_dict() == table.dtypes.to_dict(), name
        assert pd.read_csv(folder / f"{name}.csv").columns.tolist() == table.columns.tolist()
    written = load_results(folder).runs["small"]
    assert set(written) == set(info) and set(written["selection"]) == set(info["selection"])
    assert set(written["versions"]) == set(info["versions"])


def test_every_reader_accepts_it(paper, tmp_path):
    results = load_results(paper.folder)
    assert set(results.runs) == set(SIZES) and len(results.table("interventions")) == paper.intervention_rows
    assert set(results.tables) == {"decoderlens", "tunedlens", "similarity", "interventions", "ceiling"}
    text = build_report(paper.folder, out=tmp_path / "report", expectations_dir=EXPECTATIONS)[0].read_text()
    for size in SIZES:
        assert f"Figures: {size}" in text and f"fig4-interventions-{size}.png" in text
    assert (tmp_path / "report" / "figures" / "fig5-effect-vs-precision.png").exists()
    # readable at the paper's scale: every figure, what a reader compares, the numbers behind it in CSVs
    figures = re.findall(r"!\[[^]]*\]\((figures/[^)]+)\)", text)
    tables = re.findall(r"\]\((aggregates/[^)]+\.csv)\)", text)
    assert len(text.splitlines()) < 300 and len(figures) >= 5 * len(SIZES) + 1
    assert all((tmp_path / "report" / f).is_file() for f in [*figures, *tables])
    lens = pd.read_csv(tmp_path / "report" / "aggregates" / "fig2-decoderlens-large.csv")
    assert len(lens) == 2 * 10 * 48 and {"ndcg", "ndcg_lo", "ndcg_hi", "n"} <= set(lens.columns)  # cut and tuned
    # the no-compute bench: its settings, the stored row ids, and every kind of case finds all its rows
    settings = {"prompts": paper.prompts, "seconds": SECONDS, "seed": 0}
    ids, concepts = {}, load_concepts()
    for size in SIZES:
        tables, reason = read_results(paper.folder / size, size, settings)
        assert reason is None and len(tables["interventions"]) == paper.rows[size]
        ids[size] = stored_ids(tables)
    sessions = {size: Session(RunConfig(model=size, prompts=paper.prompts,
                                        generation=GenerationSettings(seconds=SECONDS))) for size in SIZES}
    for size in SIZES:
        for kind in ("decoderlens", "tunedlens", "similarity", "intervention", "profile", "pair_type", "claim"):
            cases = enumerate_cases(kind, size, concepts)
            for case in (cases[0], cases[-1]):
                assert missing_rows(case, sessions.get, ids, concepts) is None, case.id
    tables, reason = read_results(paper.folder / "large", "large", {**settings, "prompts": 100})
    assert "give the same --prompts" in reason  # a check with other settings refuses it


def test_its_designed_failures_are_what_the_ranges_find(paper):
    """Every bench case with a paper range, judged as the bench does (its 95% interval against the range): the cases
    that fail are exactly the designed ones."""
    results, expectations, concepts = load_results(paper.folder), Expectations(EXPECTATIONS), load_concepts()
    settings = {"prompts": paper.prompts, "seconds": SECONDS, "seed": 0}
    by = {"decoderlens": ("decoderlens", ["concept", "layer"], ["ndcg"]),
          "profile": ("interventions", ["technique", "component", "layer"], ["effect", "precision"]),
          "pair_type": ("interventions", ["technique", "pair_type"], ["effect", "effect_original", "effect_desired"])}
    failing, judged = set(), 0
    for size in SIZES:
        for experiment, (table, keys, metrics) in by.items():
            rows = results.table(table)
            rows = rows[(rows.model == size) & ((rows.component == "mlp") if experiment == "pair_type" else True)]
            aggregates = with_intervals(rows, keys, metrics).set_index(keys)
            for case in enumerate_cases(experiment, size, concepts):
                ranges = expectations.ranges(case, settings)[0]
                row = aggregates.loc[tuple(getattr(case, k) for k in keys)]
                judged += bool(ranges)
                if any(r.failure(row[r.metric], (row[f"{r.metric}_lo"], row[f"{r.metric}_hi"])) for r in ranges):
                    failing.add(case.id)
    assert judged > 700 and failing == paper.failing


def test_its_claims_hold_or_fail_as_designed(paper):
    iv = load_results(paper.folder).table("interventions")
    for size in SIZES:
        assert {claim: check(iv[iv.model == size]).label for claim, check in MODEL_CLAIMS.items()} == CLAIMS[size]
    assert large_replace_best_precision(iv).label == CLAIMS["all sizes"]["large-replace-best-precision"]


def test_no_compute_computes_nothing(paper, pytester, monkeypatch):
    """`pytest bench/ --gpu --results DIR --no-compute` over every kind of case and benchmark, with every loader made
    to fail: the cases are checked from the stored tables, and what would load a model skips with one line."""
    from transformers import MusicgenForConditionalGeneration

    from mgbench.classify import loading as classify_loading
    from mgbench.zoo import loading

    def refuse(*args, **kwargs):
        raise AssertionError("--no-compute loaded a model")

    for owner, name in ((loading, "load_musicgen"), (classify_loading, "load_classifier"),
                        (MusicgenForConditionalGeneration, "from_pretrained")):
        monkeypatch.setattr(owner, name, refuse)
    bench = Path(__file__).resolve().parents[1] / "bench"
    for name in ("paper", "speed", "scaleout"):  # not bench's own module names: `pytest` has imported those
        pytester.makepyfile(**{f"test_stored_{name}": (bench / f"test_{name}.py").read_text()})
    (pytester.path / "expectations").symlink_to(EXPECTATIONS)
    chosen = ("small-guitar-L0 or small-tuned-guitar-L0 or small-replace-L0.mlp or claim or speed or ray "
              "or tiny-guitar-L0")
    result = pytester.runpytest_inprocess("--gpu", "--no-compute", f"--results={paper.folder}", "--prompts",
                                          str(paper.prompts), "--seconds", str(SECONDS), "-k", chosen, "-rs",
                                          "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0 and "--no-compute loaded a model" not in result.stdout.str()
    assert outcomes["passed"] >= 4  # small's DecoderLens, tuned-lens and profile cases, and claims that hold
    skipped = "\n".join(line for line in result.stdout.lines if line.startswith("SKIPPED"))
    assert "--no-compute computes nothing" in skipped  # the speed and scale-out benchmarks, the GPU test
    assert "no results of tiny" in skipped  # tiny's tables are not in the folder: its cases skip, nothing computes
