import itertools
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from mgbench.experiments.listening import pick_examples
from mgbench.experiments.pipeline import write_tables
from mgbench.report.diff import diff_results
from mgbench.report.render import build_report
from mgbench.report.results import load_results
from mgbench.stats.intervals import FEW_PROMPTS

EXPECTATIONS = Path(__file__).resolve().parents[1] / "expectations"
CONCEPTS = {"guitar": "instrument", "piano": "instrument", "jazz": "genre", "edm": "genre"}


def make_results(folder: Path, model: str = "small", layers: int = 24, seed: int = 0, prompts: int = 2) -> Path:
    """A small results folder made here: every table of a run, with random but plausible numbers."""
    rng = np.random.default_rng(seed)
    dl = pd.DataFrame([(model, "passt", c, cat, layer, p, rng.uniform(0.1, 0.6), "Music | Guitar")
                       for (c, cat), layer, p in itertools.product(CONCEPTS.items(), range(layers), range(prompts))],
                      columns=["model", "classifier", "concept", "category", "layer", "prompt_id", "ndcg", "top5"])
    sim = pd.DataFrame([(model, "passt", c, cat, i, j, abs(i - j) * 1.5)
                        for (c, cat), i, j in itertools.product(CONCEPTS.items(), range(layers), range(layers))],
                       columns=["model", "classifier", "concept", "category", "layer_i", "layer_j", "distance"])
    rows = []
    for t, o, d, layer, comp, p in itertools.product(["replace", "adjust"], CONCEPTS, CONCEPTS, range(layers),
                                                     ["self_attn", "cross_attn", "mlp"], range(prompts)):
        if o != d:
            eo, ed = rng.normal(1.0, 0.3), rng.normal(0.2, 0.1)
            rows.append((model, "passt", t, o, d, f"{CONCEPTS[o]}->{CONCEPTS[d]}", layer, comp, p, eo + ed, eo, ed,
                         -rng.uniform(0.5, 1.0)))
    iv = pd.DataFrame(rows, columns=["model", "classifier", "technique", "original", "desired", "pair_type", "layer",
                                     "component", "prompt_id", "effect", "effect_original", "effect_desired",
                                     "precision"])
    write_tables(folder, {"decoderlens": dl, "similarity": sim, "interventions": iv},
                 {"model": model, "prompts": prompts, "seconds": 4.0, "versions": {"mgbench": "test"}})
    return folder


class Links(HTMLParser):
    """The files a page links to (``links``), its in-page anchors (``anchors``) and its element ids."""

    def __init__(self):
        super().__init__()
        self.links, self.anchors, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href"):
                (self.anchors if v.startswith("#") else self.links).append(v)
            self.ids |= {v} if k == "id" else set()


def test_report_builds_with_figures_claims_and_valid_links(tmp_path):
    results = make_results(tmp_path / "res")
    bench = pd.DataFrame([{"case": "small-guitar-L23", "experiment": "decoderlens", "metric": "ndcg", "value": 0.1,
                           "low": 0.39, "high": 0.69, "source": "Figure 2", "outcome": "failed"},
                          {"case": "small-guitar-L0", "experiment": "decoderlens", "metric": "ndcg", "value": 0.3,
                           "low": 0.1, "high": 0.5, "source": "Figure 2", "outcome": "passed"}])
    bench.to_csv(results / "bench.csv", index=False)
    files = build_report(results, out=tmp_path / "report", expectations_dir=EXPECTATIONS)
    pngs = [f for f in files if f.suffix == ".png"]
    assert {p.name for p in pngs} == {"fig2-decoderlens-small.png", "fig3-similarity-small.png",
                                      "fig4-interventions-small.png", "fig5-effect-vs-precision.png",
                                      "fig6-pair-type-replace-small.png", "fig9-pair-type-adjust-small.png",
                                      "fig2-heatmap-small.png", "fig4-heatmap-small.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = imread(png)
        assert image.shape[0] > 100 and image.std() > 0.01  # a real picture, not a blank canvas
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## The paper's claims" in md and "mlp-positive-attention-weaker" in md and "not run" in md
    assert re.search(r"small-guitar-L23 \| ndcg\s*\|\s*0\.1 ", md) and "Figure 2" in md
    for figure in ("Figure 2", "Figure 3", "Figure 4", "Figure 5", "Figure 6", "Figure 9"):
        assert figure in md
    parser = Links()
    page = (tmp_path / "report" / "report.html").read_text()
    parser.feed(page)
    assert parser.links and all((tmp_path / "report" / link).exists() for link in parser.links)
    # a table of contents whose every entry leads to its heading; claims before the figures; the numbers behind a
    # figure in a linked CSV (the report shows each concept's peak layer)
    assert len(parser.anchors) >= 8 and {a[1:] for a in parser.anchors} <= parser.ids
    assert page.index("id='the-papers-claims'") < page.index("id='figure-2-decoderlens-recognizability-ndcg-small'")
    assert md.index("Contents:") < md.index("## The paper's claims")
    lens = pd.read_csv(tmp_path / "report" / "aggregates" / "fig2-decoderlens-small.csv")
    assert len(lens) == 4 * 24 and "(aggregates/fig2-decoderlens-small.csv)" in md  # 4 concepts x 24 layers
    peaks = lens.loc[lens.groupby("concept").ndcg.idxmax()]
    for concept, layer in zip(peaks.concept, peaks.layer):
        assert re.search(rf"\| {concept} +\| +{layer} \|", md), concept


def test_report_of_a_speed_only_bench(tmp_path):
    results = tmp_path / "res"
    results.mkdir()
    pd.DataFrame([{"case": "speed-tiny-cpu", "experiment": "speed", "metric": "speedup_vs_naive", "value": 5.0,
                   "outcome": "passed"}]).to_csv(results / "bench.csv", index=False)
    md = build_report(results, expectations_dir=EXPECTATIONS)[0].read_text()
    assert "speedup_vs_naive" in md and "## Bench outcome" in md


def test_diff_shows_exactly_the_perturbed_aggregates(tmp_path):
    original = make_results(tmp_path / "a")
    assert diff_results(load_results(original), load_results(shutil.copytree(original, tmp_path / "b"))).empty
    perturbed = shutil.copytree(original, tmp_path / "c")
    iv = pd.read_parquet(perturbed / "interventions.parquet")
    hit = (iv.technique == "adjust") & (iv.layer == 5) & (iv.component == "mlp") & (iv.original == "guitar")
    iv.loc[hit, "precision"] -= 1.0
    dl = pd.read_parquet(perturbed / "decoderlens.parquet")
    dl.loc[(dl.concept == "edm") & (dl.layer == 3), "ndcg"] += 0.2
    iv.to_parquet(perturbed / "interventions.parquet")
    dl.to_parquet(perturbed / "decoderlens.parquet")
    moved = diff_results(load_results(perturbed), load_results(original))
    assert set(zip(moved.figure, moved.key, moved.metric)) == {("profile", "adjust-L5.mlp", "precision"),
                                                              ("decoderlens", "edm-L3", "ndcg")}
    assert moved.set_index("key").loc["edm-L3", "delta"] == pytest.approx(0.2)
    files = build_report(perturbed, baseline=original, expectations_dir=EXPECTATIONS)
    assert "2 changed significantly" in files[0].read_text()


def test_listening_picks_best_and_worst_per_pair():
    iv = pd.DataFrame({"original": ["a"] * 4 + ["b"] * 2, "desired": ["b"] * 4 + ["a"] * 2,
                       "prompt_id": [0, 1, 2, 5, 0, 1], "effect": [1.0, 3.0, -2.0, 9.0, 0.5, 0.4]})
    picks = pick_examples(iv, prompts=3)
    assert list(zip(picks.original, picks.kind, picks.effect)) == [("a", "best", 3.0), ("a", "worst", -2.0),
                                                                   ("b", "best", 0.5), ("b", "worst", 0.4)]


def test_run_writes_report_figures_and_wavs(tmp_path):
    out = tmp_path / "run"
    subprocess.run(["mgbench", "run", "--concepts", "guitar,edm", "--layers", "3", "--components", "mlp",
                    "--seconds", "0.5", "--out", str(out), "--cache", str(tmp_path / "cache")], check=True,
                   capture_output=True)
    examples = pd.read_csv(out / "audio" / "examples.csv")
    assert len(examples) == 4 and all((out / p).exists() for p in [*examples.path, *examples.baseline_path])
    parser = Links()
    parser.feed((out / "report.html").read_text())
    wavs = [link for link in parser.links if link.endswith(".wav")]  # the best example of each pair, and its baseline
    assert len(wavs) == 4 and all((out / link).exists() for link in parser.links)
    listed = pd.read_csv(out / "aggregates" / "listening.csv")  # every example, linked from the report
    assert len(listed) == 4 and (out / "report.md").read_text().count("aggregates/listening.csv") == 2


def test_report_of_a_narrow_selection_says_which_claims_it_cannot_judge(tmp_path):
    results = make_results(tmp_path / "res", model="tiny", layers=1)
    iv = pd.read_parquet(results / "interventions.parquet")
    narrow = iv[(iv.component == "cross_attn") & (iv.original == "guitar")]  # as from `pytest -k` on three cases
    write_tables(results, {"interventions": narrow}, {"model": "tiny", "prompts": 2})
    for name in ("decoderlens", "similarity"):
        (results / f"{name}.parquet").unlink()
    md = build_report(results, expectations_dir=EXPECTATIONS)[0].read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert "cannot judge" in rows["last-layer-best"] and "not enough layers to judge" in rows["last-layer-best"]
    assert "cannot judge" in rows["original-part-larger"] and "Figure 4" in md
    assert "Figure 5" not in md and "Figure 6" not in md  # no MLP rows: no empty figures
    one_layer = build_report(make_results(tmp_path / "one-layer", model="tiny", layers=1),
                             expectations_dir=EXPECTATIONS)[0].read_text()
    assert "not enough layers to judge" in one_layer and "Figure 6" in one_layer


def test_report_says_random_weights_make_numbers_meaningless(tmp_path):
    """run.json's ``random_weights`` (set for tiny and the *-random models) puts the warning at the top; a run
    without it has none."""
    random_run = make_results(tmp_path / "random", model="small-random", layers=2)
    iv = pd.read_parquet(random_run / "interventions.parquet")
    write_tables(random_run, {"interventions": iv}, {"model": "small-random", "prompts": 2, "random_weights": True})
    md = build_report(random_run, expectations_dir=EXPECTATIONS)[0].read_text()
    warning = "Random weights: small-random. Their numbers are meaningless"
    assert warning in md and md.index(warning) < md.index("## Settings")
    real = build_report(make_results(tmp_path / "real", layers=2), expectations_dir=EXPECTATIONS)[0].read_text()
    assert "meaningless" not in real


def test_report_warns_that_intervals_over_few_prompts_are_too_narrow(tmp_path):
    """Bootstrap intervals over 2 prompts cover about half the time (SMALL_SAMPLE_COVERAGE): the report says so,
    and says nothing once every concept has FEW_PROMPTS prompts."""
    few = build_report(make_results(tmp_path / "few", layers=1), expectations_dir=EXPECTATIONS)[0].read_text()
    assert "as few as 2 prompts per concept, too few for them" in few and "48% at 2" in few
    enough = build_report(make_results(tmp_path / "enough", layers=1, prompts=FEW_PROMPTS),
                          expectations_dir=EXPECTATIONS)[0].read_text()
    assert "too few for them" not in enough


def test_layer_axes_have_whole_number_ticks(tmp_path, monkeypatch):
    """A layer 1.5 does not exist: the figures' layer axes tick at whole numbers (a 4-layer model gets 0.5 steps by
    default)."""
    from mgbench.report import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig))
    results = load_results(make_results(tmp_path / "res", layers=4))
    dl, sim, iv = (results.table(n) for n in ("decoderlens", "similarity", "interventions"))
    figures.lens_figure(dl, "small", [], tmp_path / "a.png")
    figures.profile_figure(iv, "small", [], tmp_path / "b.png")
    figures.distance_figure(sim, "small", tmp_path / "c.png")
    axes = [(ax, axis) for fig in drawn for ax in fig.axes if ax.get_xlabel() == "layer"
            for axis in ([ax.xaxis, ax.yaxis] if ax.get_ylabel() == "layer" else [ax.xaxis])]
    assert len(axes) == 2 + 2 + 4  # two panels each; two heat maps with both axes
    for ax, axis in axes:
        ax.figure.canvas.draw()
        ticks = axis.get_majorticklocs()
        assert len(ticks) >= 2 and np.all(ticks == np.round(ticks)), ticks


def test_a_pipe_in_a_cell_stays_in_its_cell():
    """Markdown splits table cells at ``|``: text cells are escaped (the planted-truth table says ``|effect|``)."""
    from mgbench.report.page import render_markdown

    md = render_markdown([("table", pd.DataFrame({"expected": ["every |effect| < 1e-6"], "recovered": ["yes"]}))])
    row = next(line for line in md.splitlines() if "effect" in line)
    cells = re.split(r"(?<!\\)\|", row.strip().strip("|"))
    assert [c.strip() for c in cells] == ["0", "every \\|effect\\| < 1e-6", "yes"]


def test_a_sections_figures_sit_side_by_side_and_its_links_on_one_line():
    from mgbench.report.page import render_html, render_markdown

    a, b, c = (Path(f"/x/figures/{n}.png") for n in "abc")
    blocks = [("h", 3, "One"), ("img", a), ("img", b), ("link", "a: ", "aggregates/a.csv"),
              ("link", "b: ", "aggregates/b.csv"), ("p", "text"), ("img", c), ("link", "c: ", "aggregates/c.csv")]
    assert render_markdown(blocks).split("\n") == [
        "### One", "", "![a](figures/a.png) ![b](figures/b.png)", "",
        "a: [aggregates/a.csv](aggregates/a.csv); b: [aggregates/b.csv](aggregates/b.csv)", "",
        "text", "", "![c](figures/c.png)", "", "c: [aggregates/c.csv](aggregates/c.csv)", ""]
    assert render_html(blocks).count("<img ") == 3  # the page shows each figure
