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
from mgbench.suite.ground_truth import Check, checks, entry_auroc, judge, lens_check, no_path_silent, recovered
from mgbench.suite.planted import Planted, planted_truth

#: a two-layer world with one entry for both categories (L1.cross_attn)
ONE_ENTRY = {"L0.cross_attn": "no_path", "L1.cross_attn": "entry", "L0.mlp": "through_codes", "L1.mlp": "downstream"}
PLANTED = Planted({"entry_layer": 1, "statement": "synthetic", "sites": ONE_ENTRY,
                   "entry_layers": {"instrument": 1, "genre": 1},
                   "roles_by_category": {"instrument": ONE_ENTRY, "genre": ONE_ENTRY}})
#: a split world: instrument's words enter at L0.cross_attn, genre's at L1.cross_attn
SPLIT = Planted({"entry_layer": 0, "statement": "split", "sites": {**ONE_ENTRY, "L0.cross_attn": "entry"},
                 "entry_layers": {"instrument": 0, "genre": 1},
                 "roles_by_category": {"instrument": {"L0.cross_attn": "entry", "L1.cross_attn": "downstream",
                                                      "L0.mlp": "downstream", "L1.mlp": "downstream"},
                                       "genre": ONE_ENTRY}})


def _interventions(effects: dict[str, list[float]], technique: str = "replace",
                   pair_type: str = "instrument->instrument") -> pd.DataFrame:
    """One row per (site, pair index) with the given effects, all pairs of ``pair_type``."""
    rows = [(technique, f"o{i}", f"d{i}", pair_type, int(site[1]), site.split(".")[1], 0, effect, 0.0)
            for site, values in effects.items() for i, effect in enumerate(values)]
    return pd.DataFrame(rows, columns=["technique", "original", "desired", "pair_type", "layer", "component",
                                       "prompt_id", "effect", "precision"])


def test_no_path_sites_must_be_exactly_silent():
    table = _interventions({"L0.cross_attn": [0.0, 0.0], "L1.cross_attn": [2.0, 1.0], "L0.mlp": [0.1, 0.0],
                            "L1.mlp": [0.5, 0.2]})
    assert no_path_silent(table, PLANTED, "replace").holds
    table.loc[0, "effect"] = 1e-4  # one no-path row that changed: the check must catch it
    assert not no_path_silent(table, PLANTED, "replace").holds


def test_a_site_is_no_path_for_a_pair_only_when_neither_concepts_words_reach_it():
    """On the split world L0.cross_attn is genre's no-path site but instrument's entry: genre pairs must be silent
    there, a pair from an instrument to a genre need not be."""
    genre = _interventions({"L0.cross_attn": [0.0, 0.0], "L1.cross_attn": [2.0, 1.0]}, pair_type="genre->genre")
    across = _interventions({"L0.cross_attn": [3.0, 1.0], "L1.cross_attn": [2.0, 1.0]},
                            pair_type="instrument->genre")
    assert no_path_silent(pd.concat([genre, across]), SPLIT, "replace").holds
    assert no_path_silent(across, SPLIT, "replace").holds is None  # nothing to judge
    genre.loc[0, "effect"] = 0.5
    assert not no_path_silent(pd.concat([genre, across]), SPLIT, "replace").holds


def test_entry_auroc_against_scipy_and_entry_rank():
    rng = np.random.default_rng(0)
    effects = {"L0.cross_attn": [0.0] * 6, "L1.cross_attn": list(rng.normal(1.0, 0.5, 6)),
               "L0.mlp": list(rng.normal(0.2, 0.5, 6)), "L1.mlp": list(rng.normal(0.5, 0.5, 6))}
    table = _interventions(effects)
    entry = effects["L1.cross_attn"]
    for against, others in ((("no_path",), effects["L0.cross_attn"]),
                            (("downstream", "through_codes"), effects["L0.mlp"] + effects["L1.mlp"])):
        result = entry_auroc(table, PLANTED, "replace", "instrument", against)
        expected = mannwhitneyu(entry, others).statistic / (len(entry) * len(others))  # AUROC = U / (n1 n2)
        assert result.metrics["auroc"] == pytest.approx(expected)
    tables = {"interventions": table, "ceiling": table.assign(effect=2.0)}
    ranked = judge(Check("entry_ranks_first", "replace", "instrument"), tables, PLANTED)
    mean_entry = float(np.mean(entry))
    assert ranked.holds == (mean_entry > max(np.mean(v) for k, v in effects.items() if k != "L1.cross_attn"))
    assert ranked.metrics["entry_fraction_of_ceiling"] == pytest.approx(mean_entry / 2.0)
    table.loc[table.component == "mlp", "effect"] += 5  # an MLP now beats the entry site
    assert not judge(Check("entry_ranks_first", "replace", "instrument"), {"interventions": table}, PLANTED).holds


def test_each_category_is_judged_at_its_own_entry():
    """On the split world instrument pairs must peak at L0.cross_attn and genre pairs at L1.cross_attn: the same
    tables with the categories' entries swapped fail."""
    instrument = _interventions({"L0.cross_attn": [5.0, 4.0], "L1.cross_attn": [1.0, 0.5], "L0.mlp": [0.3, 0.1]})
    genre = _interventions({"L0.cross_attn": [0.0, 0.0], "L1.cross_attn": [6.0, 5.0], "L0.mlp": [0.2, 0.1]},
                           pair_type="genre->genre")
    tables = {"interventions": pd.concat([instrument, genre], ignore_index=True)}
    for category in ("instrument", "genre"):
        result = judge(Check("entry_ranks_first", "replace", category), tables, SPLIT)
        assert result.holds and SPLIT.entries(category)[0] in result.detail, result.detail
    swapped = Planted({**SPLIT.truth, "roles_by_category": {"instrument": SPLIT.roles("genre"),
                                                            "genre": SPLIT.roles("instrument")}})
    assert not any(judge(Check("entry_ranks_first", "replace", c), tables, swapped).holds
                   for c in ("instrument", "genre"))


def test_a_selection_too_narrow_to_decide_is_cannot_judge_not_a_failure():
    only_entry = {"interventions": _interventions({"L1.cross_attn": [2.0, 1.0]})}  # --layers 1 --components cross_attn
    for check in ("no_path_silent", "entry_ranks_first", "sites_separate", "downstream_below_entry"):
        result = judge(Check(check, "replace", "instrument"), only_entry, PLANTED)
        assert result.holds is None and result.label == "cannot judge", result


def _lens(rows: list[tuple[str, int, bool, float]]) -> pd.DataFrame:
    return pd.DataFrame([(category[0], category, layer, hit, chance) for category, layer, hit, chance in rows],
                        columns=["concept", "category", "layer", "recognized", "recognized_chance"])


def test_too_few_lens_clips_to_reject_chance_is_cannot_judge():
    lens = _lens([("genre", 2, True, 1 / 6)] * 2)
    assert (1 / 6) ** 2 > 0.01  # two of two recognized could not reject chance at p < 0.01
    assert lens_check(lens, "genre", 2, at_chance=False).holds is None
    assert lens_check(lens, "genre", 2, at_chance=True).holds is None


def test_lens_check_is_a_binomial_test_against_chance():
    lens = _lens([("instrument", 0, k < 3, 0.25) for k in range(12)] + [("genre", 0, k < 9, 0.25) for k in range(12)])
    instrument = lens_check(lens, "instrument", 0, at_chance=True)
    genre = lens_check(lens, "genre", 0, at_chance=True)
    assert instrument.metrics["p"] == pytest.approx(binomtest(3, 12, 0.25).pvalue) and instrument.holds
    assert genre.metrics["p"] == pytest.approx(binomtest(9, 12, 0.25).pvalue)
    assert not genre.holds  # 9 of 12 against 1/4 is far above chance
    assert not lens_check(lens, "instrument", 0, at_chance=False).holds  # 3 of 12 is not above chance
    assert lens_check(lens, "genre", 0, at_chance=False).holds


def test_the_lens_must_rise_at_the_categorys_own_entry():
    """On the split world genre's words enter at L1: genre clips recognized above chance at L0 is a leak."""
    rows = [("genre", layer, k < hits, 1 / 6) for layer, hits in ((0, 2), (1, 12)) for k in range(12)]
    assert judge(Check("lens_rises", category="genre"), {"decoderlens": _lens(rows)}, SPLIT).holds
    leak = [("genre", layer, k < 11, 1 / 6) for layer in (0, 1) for k in range(12)]
    result = judge(Check("lens_rises", category="genre"), {"decoderlens": _lens(leak)}, SPLIT)
    assert result.holds is False and "first cut above chance L0, entry L1" in result.detail


def test_checks_are_listed_only_where_the_world_premises_them():
    listed = checks(SPLIT, ["instrument", "genre"], ["replace"], [0, 1], [0])
    names = {(c.name, c.category, c.layer) for c in listed}
    assert ("lens_chance", "genre", 0) in names and ("lens_chance", "instrument", 0) not in names
    assert ("sites_separate", "instrument", None) not in names  # no site is silent to instrument's words
    assert ("sites_separate", "genre", None) in names and ("tuned_chance", "genre", 0) in names
    nowhere = Planted({**SPLIT.truth, "entry_layers": {"instrument": 0, "genre": None},
                       "roles_by_category": {**SPLIT.truth["roles_by_category"],
                                             "genre": {site: "no_path" for site in ONE_ENTRY}}})
    listed = checks(nowhere, ["instrument", "genre"], ["replace"], [0, 1], [])
    genre = {(c.name, c.layer) for c in listed if c.category == "genre"}
    assert genre == {("lens_chance", 0), ("lens_chance", 1)}  # words that enter nowhere: chance at every cut


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


def test_the_toy_world_recovers_every_check_it_premises(toy_tables):
    """Every check listed for the toy world's four concepts and ten lens concepts holds, each at the world's own
    entry (read from its planted.json)."""
    planted = planted_truth("toy")
    table = recovered(toy_tables, planted)
    assert set(table.index) == {"no_path_silent", "entry_ranks_first", "sites_separate", "downstream_below_entry",
                                "lens_chance", "lens_full", "lens_rises"}
    assert (table.recovered == "yes").all(), table[table.recovered != "yes"].to_string()
    entry = table.loc["entry_ranks_first"]
    assert entry.numbers.str.contains(planted.entries("instrument")[0]).all()


def test_the_report_opens_with_the_recovered_planted_truth(toy_run):
    _, out = toy_run
    build_report(out)
    report = (out / "report.md").read_text()
    assert report.index("## Planted truth recovered? (toy)") < report.index("## Settings")
    section = report[report.index("## Planted truth recovered?"):report.index("## Settings")]
    rows = [line for line in section.split("### Site ranking")[0].splitlines()
            if line.startswith(("| no_path_silent", "| entry_ranks_first", "| lens"))]
    assert len(rows) == 2 * (1 + 2) + 2 * 4 and all("| yes " in row for row in rows)
    assert sum(row.count("of the prompt-swap ceiling") for row in rows) == 4  # per technique and category
    ranking = [line for line in section.split("### Site ranking")[1].splitlines() if line.startswith("|")]
    assert "cross_attn" in ranking[2] and "entry" in ranking[2]  # the first row under the header: the entry site


def test_the_toy_worlds_intervals_cover_its_planted_truth(toy_tables):
    """Every no-path site's 95% interval holds its true effect, exactly 0; the entry site's excludes 0."""
    profile = summarize(toy_tables)["profile"].reset_index()
    role = planted_truth("toy").role_of_rows("instrument", profile)
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
    results = [judge(Check(c, technique, category), tables, planted_truth("toy"))
               for c in ("entry_ranks_first", "sites_separate") for category in ("instrument", "genre")]
    assert not all(r.holds for r in results), [r.detail for r in results]


def test_a_lens_that_leaks_later_layers_fails_the_ground_truth(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "cut_decoder", lambda decoder, layers: contextlib.nullcontext())  # no cut at all
    tables = _tables(tmp_path, Selection(experiments=("decoderlens",), layers=(0,)))
    assert not all(judge(Check("lens_chance", category=category, layer=0), tables, planted_truth("toy")).holds
                   for category in ("instrument", "genre"))


def test_toy_power_judges_every_check_of_a_run_at_fewer_prompts(toy_run):
    """`mgbench toy power RESULTS`: the lens checks' exact power per category and number of prompts, and every
    intervention check of the run resampled (the toy world's pass at every draw: its effects are far apart)."""
    from mgbench.cli import main

    _, out = toy_run
    assert main(["toy", "power", str(out), "--prompts", "1,2", "--draws", "5"]) == 0
    power = pd.read_csv(out / "power.csv")
    lens = power[power.check.str.startswith("lens")]
    assert set(zip(lens.check, lens["where"], lens.prompts)) >= {("lens_full", "instrument", 2),
                                                                 ("lens_chance", "genre", 1)}
    listed = recovered(_tables_of(out), planted_truth("toy"))
    interventions = power[~power.check.str.startswith("lens")]
    assert set(interventions.check) == set(listed.index) - {"lens_chance", "lens_full", "lens_rises"}
    assert (interventions.power == 1.0).all() and (interventions.draws == 5).all()


def _tables_of(out) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in ("interventions", "ceiling", "decoderlens")}
