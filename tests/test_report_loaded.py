"""The report from tables already in memory (the --no-compute bench's, handed over instead of read again) is the
report read from the folder, and it is made from the tables handed over."""

import pandas as pd
from paper_scale import EXPECTATIONS, SECONDS, write_paper_results

from mgbench.report.render import build_report
from mgbench.suite.stored import read_results


def test_the_report_of_handed_over_tables_is_the_folders(tmp_path):
    paper = write_paper_results(tmp_path / "paper", ("small", "large"), prompts=2)
    settings = {"prompts": 2, "seconds": SECONDS, "seed": 0}
    read = build_report(paper.folder, out=tmp_path / "read", expectations_dir=EXPECTATIONS)[0].read_text()
    loaded = {paper.folder / "small": read_results(paper.folder / "small", "small", settings)[0]}  # large: read
    handed = build_report(paper.folder, out=tmp_path / "handed", expectations_dir=EXPECTATIONS, loaded=loaded)
    assert handed[0].read_text() == read and loaded == {}  # taken over, nothing left behind
    for name in ("fig2-decoderlens-small.csv", "fig4-interventions-small.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "handed" / "aggregates" / name),
                                      pd.read_csv(tmp_path / "read" / "aggregates" / name))
    # the handed-over tables are what the report reads: a changed one shows
    changed = read_results(paper.folder / "small", "small", settings)[0]
    changed["decoderlens"] = changed["decoderlens"].assign(ndcg=changed["decoderlens"].ndcg * 0.5)
    build_report(paper.folder, out=tmp_path / "changed", expectations_dir=EXPECTATIONS,
                 loaded={paper.folder / "small": changed})
    lens = [pd.read_csv(tmp_path / out / "aggregates" / "fig2-decoderlens-small.csv").query("lens == 'cut'")
            for out in ("read", "changed")]  # (the tuned lens' rows: another table)
    assert len(lens[0]) == 10 * 24
    pd.testing.assert_series_equal(lens[1].ndcg, lens[0].ndcg * 0.5, rtol=1e-9)
