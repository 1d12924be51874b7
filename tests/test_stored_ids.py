"""The --no-compute check's stored row ids (``suite.stored.RowIds``: one int64 key a row, sorted) give the answers of
Python sets of id tuples (how the check kept them before), and the check still catches a missing row."""

import numpy as np
import pandas as pd
import pytest

from mgbench.engine.runner import GenerationSettings
from mgbench.experiments.catalog import get
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.suite import stored
from mgbench.suite.stored import RowIds, lacking, stored_ids

COLUMNS = ["technique", "original", "layer", "prompt_id"]


def random_ids(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Id columns as the stored tables hold them: strings, a categorical, integers (values beyond the grid's too)."""
    return pd.DataFrame({"technique": pd.Series(rng.choice(["adjust", "replace"], n), dtype="str"),
                         "original": pd.Categorical(rng.choice(["guitar", "piano", "jazz"], n)),
                         "layer": rng.integers(0, 6, n), "prompt_id": rng.integers(0, 9, n)})


def set_absent(table: pd.DataFrame, grid: pd.DataFrame) -> np.ndarray:
    """The former check: a Python set of the stored rows' id tuples, each grid row looked up in it."""
    ids = set(table[COLUMNS].itertuples(index=False, name=None))
    return np.array([row not in ids for row in grid[COLUMNS].astype(object).itertuples(index=False, name=None)])


@pytest.mark.parametrize("limit", [2**63, 7])  # 7: the keys are renumbered before every column but the first
def test_row_ids_answer_as_sets_of_tuples(monkeypatch, limit):
    monkeypatch.setattr(stored, "KEY_LIMIT", limit)
    rng = np.random.default_rng(0)
    table = random_ids(rng, 300)
    table = pd.concat([table, table.iloc[:20]], ignore_index=True)  # duplicate rows
    grid = random_ids(rng, 400).astype({"original": object})  # a grid's plain values, some stored, some not
    grid.loc[0, "original"], grid.loc[1, "layer"] = "violin", 99  # values no stored row has
    expected = set_absent(table, grid)
    assert 0 < expected.sum() < len(grid) and expected[:2].all()
    ids = RowIds.of(table, COLUMNS)
    assert any(fold is not None for fold in ids.folds) == (limit == 7)
    np.testing.assert_array_equal(ids.absent(grid), expected)
    np.testing.assert_array_equal(RowIds.of(table, COLUMNS).absent(table), np.zeros(len(table), bool))


def test_an_empty_table_holds_no_row():
    grid = random_ids(np.random.default_rng(1), 5)
    assert RowIds.of(pd.DataFrame(), COLUMNS).absent(grid).all()


def test_the_check_catches_a_missing_row_as_before():
    """A tiny run's DecoderLens grid stored with one row dropped and one duplicated: the check names the missing
    row as the set-based check did (its count of distinct rows and the smallest absent id)."""
    session = Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.5, seed=0)))
    selection = Selection(experiments=("decoderlens",), concepts=("guitar", "rock"), layers=(0, 2))
    experiment = get("decoderlens")
    grid = experiment.grid(session, selection)
    assert lacking(session, selection, stored_ids({"decoderlens": grid})) is None
    table = pd.concat([grid.drop(index=3), grid.iloc[[5]]], ignore_index=True)
    rows = set(grid[list(experiment.ids)].itertuples(index=False, name=None))
    absent = rows - set(table[list(experiment.ids)].itertuples(index=False, name=None))
    before = (f"{len(absent)} of its {len(rows)} decoderlens rows are not in the stored tiny tables "
              f"(e.g. {dict(zip(experiment.ids, sorted(absent)[0]))})")
    assert len(absent) == 1
    assert lacking(session, selection, stored_ids({"decoderlens": table})) == before
    assert lacking(session, selection, {}) == (f"{len(rows)} of its {len(rows)} decoderlens rows are not in the stored "
                                               f"tiny tables (e.g. {dict(zip(experiment.ids, sorted(rows)[0]))})")
