"""Results tables read with their text columns as categoricals (``experiments.tables``) hold the values pandas reads
as strings, sort and group in the strings' order, stay categorical when runs are concatenated, and give the report
that plain string tables give."""

import numpy as np
import pandas as pd
from paper_scale import EXPECTATIONS, write_paper_results

from mgbench.experiments.tables import concat_tables, plain_text, read_table
from mgbench.report.render import build_report
from mgbench.stats.intervals import with_intervals


def a_table(seed: int, concepts: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    return pd.DataFrame({"concept": rng.choice(concepts, n), "component": rng.choice(["mlp", "self_attn", None], n),
                         "layer": rng.integers(0, 4, n), "prompt_id": rng.integers(0, 5, n),
                         "effect": rng.normal(size=n)})


def test_text_columns_are_sorted_categoricals_of_the_same_values(tmp_path):
    table = a_table(0, ["violin", "guitar", "Ärger", "hiphop", "EDM"])  # first seen out of order, mixed case
    table.to_parquet(tmp_path / "t.parquet", index=False)
    read, plain = read_table(tmp_path / "t.parquet"), pd.read_parquet(tmp_path / "t.parquet")
    for column in ("concept", "component"):
        assert isinstance(read[column].dtype, pd.CategoricalDtype)
        assert list(read[column].cat.categories) == sorted(plain[column].dropna().unique())
    assert read.layer.dtype == plain.layer.dtype and read.effect.dtype == plain.effect.dtype
    pd.testing.assert_frame_equal(plain_text(read), plain)  # missing values stay missing
    by = ["concept", "component", "layer"]
    pd.testing.assert_frame_equal(plain_text(with_intervals(read, by, "effect", resamples=99)),
                                  with_intervals(plain, by, "effect", resamples=99), check_dtype=False)
    assert list(read.sort_values(by).index) == list(plain.sort_values(by).index)


def test_concatenated_runs_stay_categorical_with_every_value(tmp_path):
    paths = []
    for seed, concepts in enumerate((["jazz", "rock"], ["pop", "jazz", "edm"])):
        a_table(seed, concepts).to_parquet(path := tmp_path / f"{seed}.parquet", index=False)
        paths.append(path)
    got = concat_tables([pd.DataFrame(), *(read_table(p) for p in paths)])
    assert list(got.concept.cat.categories) == ["edm", "jazz", "pop", "rock"]
    pd.testing.assert_frame_equal(plain_text(got), pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True))


def test_the_report_of_categorical_tables_is_that_of_string_tables(tmp_path):
    paper = write_paper_results(tmp_path / "paper", ("small", "large"), prompts=2)
    read = build_report(paper.folder, out=tmp_path / "read", expectations_dir=EXPECTATIONS)[0].read_text()
    plain = {paper.folder / size: {p.stem: pd.read_parquet(p) for p in (paper.folder / size).glob("*.parquet")}
             for size in ("small", "large")}
    assert all(t.model.dtype == "str" for tables in plain.values() for t in tables.values())
    as_strings = build_report(paper.folder, out=tmp_path / "plain", expectations_dir=EXPECTATIONS, loaded=plain)
    assert as_strings[0].read_text() == read
    for path in sorted((tmp_path / "plain" / "aggregates").glob("*.csv")):
        assert path.read_bytes() == (tmp_path / "read" / "aggregates" / path.name).read_bytes(), path.name
        pd.testing.assert_frame_equal(pd.read_parquet(path.with_suffix(".parquet")),  # plain strings in either
                                      pd.read_parquet(tmp_path / "read" / "aggregates" / f"{path.stem}.parquet"))
