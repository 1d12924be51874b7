"""An experiment is declared once: a throwaway experiment, added to the declaration list and nowhere else, runs in
``mgbench run``, in the bench suite, in shards, and shows in the report."""

from __future__ import annotations

import pandas as pd
import pytest

from mgbench.cli import main
from mgbench.concepts.concept_set import ConceptSet
from mgbench.engine.runner import GenerationSettings
from mgbench.experiments import catalog
from mgbench.experiments.experiment import Aggregate, Case, CaseKind, Experiment
from mgbench.experiments.pipeline import run_selection
from mgbench.experiments.resume import chunks, fill_table
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.shards import Shard, run_shard
from mgbench.experiments.summaries import over_prompts

NAME = "peak"
computed: list[int] = []  # rows computed, to see the store at work


def _grid(session: Session, selection: Selection) -> pd.DataFrame:
    concepts = selection.concept_names(session.concepts.names)
    return pd.DataFrame([(c, p) for c in concepts for p in range(session.config.prompts)],
                        columns=["concept", "prompt_id"])


def _rows(session: Session, wanted: pd.DataFrame) -> pd.DataFrame:
    """The largest classifier logit of each prompt's baseline clip (from the concept pass)."""
    def compute(batch: pd.DataFrame) -> pd.DataFrame:
        computed.append(len(batch))
        return batch.assign(peak=[float(session.concept_pass(session.concepts.get(c)).logits[p].max())
                                  for c, p in zip(batch.concept, batch.prompt_id)])

    table = fill_table(session.store, NAME, wanted, ["concept", "prompt_id"], compute,
                       lambda missing: chunks(missing, 2), NAME)
    return session.label(table)


def _cases(size: str, concepts: ConceptSet, layers: int) -> list[Case]:
    return [Case(NAME, size, concept=c, parts=(c, NAME)) for c in concepts.names]


PEAK = Experiment(
    name=NAME, ids=("concept", "prompt_id"), columns=("model", "concept", "prompt_id", "peak"), grid=_grid, rows=_rows,
    summary=(Aggregate(NAME, ("concept",), ("peak",), key=lambda t: t.concept),),
    cases=(CaseKind(NAME, _cases, lambda case, concepts: [(case.size, Selection((NAME,), concepts=(case.concept,)))],
                    metrics=lambda case, tables: over_prompts(tables[NAME][tables[NAME].concept == case.concept],
                                                              ["peak"])),))


@pytest.fixture
def declared(monkeypatch, tmp_path):
    monkeypatch.setattr(catalog, "EXPERIMENTS", [*catalog.EXPERIMENTS, PEAK])
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    computed.clear()


def _session(tmp_path) -> Session:
    return Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.3),
                             cache=str(tmp_path / "cache")))


def test_run_writes_its_table_summary_and_report(declared, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--model", "tiny", "--experiments", NAME, "--concepts", "guitar,jazz", "--seconds", "0.3",
                 "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    table = pd.read_parquet(out / f"{NAME}.parquet")
    assert sorted(zip(table.concept, table.prompt_id)) == [("guitar", 0), ("guitar", 1), ("jazz", 0), ("jazz", 1)]
    summary = (out / "summary.md").read_text()
    assert f"## {NAME}" in summary and f"--experiments {NAME}" not in capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert f"### {NAME}: {NAME}" in report  # shown by its summary: it declares no section of its own


def test_shards_split_it_and_a_plain_run_computes_nothing_more(declared, tmp_path):
    selection = Selection((NAME,), concepts=("guitar", "jazz", "piano"))
    for i in (1, 2):
        assert run_shard(_session(tmp_path), selection, Shard(i, 2)).rows[NAME] == 3
    assert sum(computed) == 6
    tables = run_selection(_session(tmp_path), selection)
    assert len(tables[NAME]) == 6 and sum(computed) == 6


def test_the_bench_runs_its_cases(declared, pytester, tmp_path):
    pytester.makepyfile(test_bench=f"""
        def test_{NAME}(case, bench):
            bench.check(case, bench.metrics(case))
        """)
    (pytester.path / "expectations").mkdir()
    result = pytester.runpytest_inprocess("-k", "tiny-guitar or tiny-jazz", "--prompts", "1", "--seconds", "0.3",
                                          f"--results={tmp_path / 'res'}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    recorded = pd.read_csv(tmp_path / "res" / "bench.csv")
    assert set(recorded.case) == {f"tiny-guitar-{NAME}", f"tiny-jazz-{NAME}"} and set(recorded.metric) == {"peak"}
    assert (tmp_path / "res" / "tiny" / f"{NAME}.parquet").is_file()
