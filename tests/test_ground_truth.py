"""Ground-truth checks: right on synthetic tables (against scipy), and on the shipped toy world they pass with
the real implementation and fail when the implementation is broken on purpose."""

import contextlib

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, mannwhitneyu

from mgbench.engine import hooks, runner
from mgbench.engine.runner import GenerationSettings
from mgbench.experiments.pipeline import run_info, run_selection, summarize, write_tables
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.report.render import build_report
from mgbench.suite.ground_truth import lens_check, no_path_silent, planted_truth, run_check, sites_separate

PLANTED = {"entry_layer": 1, "statement": "synthetic",
           "sites": {"L0.cross_attn": "no_path", "L1.cross_attn": "entry", "L0.mlp": "through_codes",
                     "L1.mlp": "downstream"}}


def _interventions(effects: dict[str, list[float]], technique: str = "replace") -> pd.DataFrame:
    """One row per (site, pair index) with the given effects."""
    rows = [(technique, f"o{i}", f"d{i}", int(site[1]), site.split(".")[1], 0, effect, 0.0)
            for site, values in effects.items() for i, effect in enumerate(values)]
    return pd.DataFrame(rows, columns=["technique", "original", "desired", "layer", "component", "prompt_id",
                                       "effect", "precision"])


def test_no_path_sites_must_be_exactly_silent():
    table = _interventions({"L0.cross_attn": [0.0, 0.0], "L1.cross_attn": [2.0, 1.0], "L0.mlp": [0.1, 0.0],
                            "L1.mlp": [0.5, 0.2]})
    assert no_path_silent(table, PLANTED, "replace").holds
    table.loc[0, "effect"] = 1e-4  # one no-path row that changed: the check must catch it
    assert not no_path_silent(table, PLANTED, "replace").holds


def test_entry_rank_and_auroc_against_scipy():
    rng = np.random.default_rng(0)
    effects = {"L0.cross_attn": [0.0] * 6, "L1.cross_attn": list(rng.normal(1.0, 0.5, 6)),
               "L0.mlp": list(rng.normal(0.2, 0.5, 6)), "L1.mlp": list(rng.normal(0.5, 0.5, 6))}
    table = _interventions(effects)
    result = sites_separate(table, PLANTED, "replace")
    entry = effects["L1.cross_attn"]
    others = effects["L0.cross_attn"] + effects["L0.mlp"] + effects["L1.mlp"]
    expected = mannwhitneyu(entry, others).statistic / (len(entry) * len(others))  # AUROC = U / (n1 n2)
    assert result.metrics["auroc"] == pytest.approx(expected)
    ranked = run_check("entry_ranks_first", {"interventions": table, "ceiling": table.assign(effect=2.0)}, PLANTED,
                       "replace")
    mean_entry = float(np.mean(entry))
    assert ranked.holds == (mean_entry > max(np.mean(v) for k, v in effects.items() if k != "L1.cross_attn"))
    assert ranked.metrics["entry_fraction_of_ceiling"] == pytest.approx(mean_entry / 2.0)
    table.loc[table.component == "mlp", "effect"] += 5  # an MLP now beats the entry site
    assert not run_check("entry_ranks_first", {"interventions": table}, PLANTED, "replace").holds


def test_a_selection_too_narrow_to_decide_is_cannot_judge_not_a_failure():
    only_entry = _interventions({"L1.cross_attn": [2.0, 1.0]})  # e.g. --layers 1 --components cross_attn
    for check in ("no_path_silent", "entry_ranks_first", "sites_separate"):
        result = run_check(check, {"interventions": only_entry}, PLANTED, "replace")
        assert result.holds is None and result.label == "cannot judge", result


def test_too_few_lens_clips_to_reject_chance_is_cannot_judge():
    lens = pd.DataFrame([("g", "genre", 2, True, 1 / 6)] * 2, columns=["concept", "category", "layer", "recognized",
                                                                     "recognized_chance"])
    assert (1 / 6) ** 2 > 0.01  # two of two recognized could not reject chance at p < 0.01
    assert lens_check(lens, 2, at_chance=False).holds is None and lens_check(lens, 2, at_chance=True).holds is None


def test_lens_check_is_a_binomial_test_against_chance():
    rows = [("i", "instrument", 0, k < 3, 0.25) for k in range(12)] + [("g", "genre", 0, k < 9, 0.25)
                                                                      for k in range(12)]
    lens = pd.DataFrame(rows, columns=["concept", "category", "layer", "recognized", "recognized_chance"])
    at_chance, above = lens_check(lens, 0, at_chance=True), lens_check(lens, 0, at_chance=False)
    assert at_chance.metrics["instrument_p"] == pytest.approx(binomtest(3, 12, 0.25).pvalue)
    assert at_chance.metrics["genre_p"] == pytest.approx(binomtest(9, 12, 0.25).pvalue)
    assert not at_chance.holds  # genre (9 of 12 against 1/4) is far above chance
    assert not above.holds  # instrument (3 of 12) is not above chance
    lens.loc[lens.category == "instrument", "recognized"] = True
    assert lens_check(lens, 0, at_chance=False).holds


# --- the shipped toy world: the real implementation recovers the planted truth; broken ones do not ----------------

SELECTION = Selection(concepts=("guitar", "piano", "jazz", "rock"), experiments=("interventions", "ceiling"))


def _session(tmp_path, prompts: int = 2) -> Session:
    return Session(RunConfig(model="toy", prompts=prompts, generation=GenerationSettings(seconds=1.0),
                             cache=str(tmp_path)))


def _tables(tmp_path, selection: Selection, techniques: "tuple[str, ...]" = ("replace", "adjust"),
            session: "Session | None" = None) -> dict[str, pd.DataFrame]:
    session = session or _session(tmp_path)
    return run_selection(session, Selection(**{**selection.__dict__, "techniques": techniques}))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """The toy world's tables for four concepts (interventions, ceiling) and all ten (DecoderLens), written as a
    results folder."""
    session = _session(tmp_path_factory.mktemp("cache"))
    tables = {**_tables(None, SELECTION, session=session),
              **_tables(None, Selection(experiments=("decoderlens",)), session=session)}
    out = tmp_path_factory.mktemp("results")
    write_tables(out, tables, run_info(session))
    return tables, out


@pytest.fixture(scope="module")
def toy_tables(toy_run):
    return toy_run[0]


@pytest.mark.parametrize("technique", ["replace", "adjust"])
@pytest.mark.parametrize("check", ["no_path_silent", "entry_ranks_first"])  # AUROC: on all 90 pairs, in bench/
def test_the_toy_world_recovers_its_planted_interventions(toy_tables, check, technique):
    result = run_check(check, toy_tables, planted_truth("toy"), technique)
    assert result.holds, result.detail


def test_the_toy_world_lens_is_at_chance_before_the_entry_and_above_it_at_the_end(toy_tables):
    planted = planted_truth("toy")
    for layer in range(planted["entry_layer"]):
        result = run_check("lens_chance", toy_tables, planted, layer=layer)
        assert result.holds, result.detail
    result = run_check("lens_full", toy_tables, planted, layer=int(toy_tables["decoderlens"].layer.max()))
    assert result.holds, result.detail


def test_the_report_opens_with_the_recovered_planted_truth(toy_run):
    _, out = toy_run
    build_report(out)
    report = (out / "report.md").read_text()
    assert report.index("## Planted truth recovered? (toy)") < report.index("## Settings")
    section = report[report.index("## Planted truth recovered?"):report.index("## Settings")]
    rows = [line for line in section.split("### Site ranking")[0].splitlines()
            if line.startswith(("| no_path_silent", "| entry_ranks_first", "| lens"))]
    assert len(rows) == 2 + 2 + 4 and all("| yes " in row for row in rows)  # (AUROC: four concepts are too few)
    assert rows[1].count("of the prompt-swap ceiling") == 1
    ranking = [line for line in section.split("### Site ranking")[1].splitlines() if line.startswith("|")]
    assert "cross_attn" in ranking[2] and "entry" in ranking[2]  # the first row under the header: the entry site


def test_the_toy_worlds_intervals_cover_its_planted_truth(toy_tables):
    """Every no-path site's 95% interval holds its true effect, exactly 0; the entry site's excludes 0."""
    profile = summarize(toy_tables)["profile"].reset_index()
    sites = planted_truth("toy")["sites"]
    role = profile.apply(lambda r: sites[f"L{r.layer}.{r.component}"], axis=1)
    silent, entry = profile[role == "no_path"], profile[role == "entry"]
    assert len(silent) and len(entry) == 2  # (replace, adjust)
    assert ((silent.effect_lo <= 0) & (silent.effect_hi >= 0)).all()
    assert (entry.effect_lo > 0).all(), entry


def _edits_on_unconditional_rows(monkeypatch):
    """Break the edit hook: it writes the conditional rows' vectors into the unconditional (CFG) rows."""
    real = hooks._edit_hook
    monkeypatch.setattr(hooks, "_edit_hook", lambda rows, values, add, batch_rows, *window: real(
        (rows + batch_rows // 2) % batch_rows, values, add, batch_rows, *window))


def _means_from_the_wrong_half(monkeypatch):
    """Break the means: every edit uses the unconditional rows' means where the conditional ones belong."""
    real = Session.means
    monkeypatch.setattr(Session, "means", lambda self, concept, site: tuple(reversed(real(self, concept, site))))


@pytest.mark.parametrize(("break_it", "technique"), [(_edits_on_unconditional_rows, "replace"),
                                                     (_means_from_the_wrong_half, "adjust")])
def test_a_broken_intervention_fails_the_ground_truth(tmp_path, monkeypatch, break_it, technique):
    break_it(monkeypatch)
    tables = _tables(tmp_path, SELECTION, techniques=(technique,))
    results = [run_check(c, tables, planted_truth("toy"), technique) for c in ("entry_ranks_first", "sites_separate")]
    assert not all(r.holds for r in results), [r.detail for r in results]


def test_a_lens_that_leaks_later_layers_fails_the_ground_truth(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "cut_decoder", lambda decoder, layers: contextlib.nullcontext())  # no cut at all
    tables = _tables(tmp_path, Selection(experiments=("decoderlens",), layers=(0,)))
    assert not run_check("lens_chance", tables, planted_truth("toy"), layer=0).holds
