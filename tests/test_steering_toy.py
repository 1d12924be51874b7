"""Issue 16's done-when checks on the toy world: effect at the planted entry rises with alpha, no-path sites stay
exactly silent at every alpha, a window that excludes every frame changes nothing; and the report draws it.

Measured (float64, the same on every CPU; 3 concepts, 6 pairs, 2 prompts, 1 s): the entry's mean effect is 0, 0.33,
10.98, 16.16, 16.58 at alpha 0, 0.25, 0.5, 0.75, 1, then 15.48 and 11.78 at 2 and 4. It rises strictly up to 1 and
saturates beyond: the desired concept is fully switched on at 1 (effect_desired 8.5, as far as the classifier's odds
go) and stronger pushes leave the activations the model was trained on (precision keeps falling, -11.2 at 1, -18.9
at 4), so the desired part drops (4.4 at 4). So monotony is checked up to alpha 1, and beyond it only that the edit
still steers.
"""

import numpy as np
import pytest

from mgbench.engine.runner import GenerationSettings
from mgbench.engine.sites import Site
from mgbench.experiments.interventions import IDS, intervention_grid, run_interventions
from mgbench.experiments.pipeline import run_info, run_selection, write_tables
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.shards import missing_work
from mgbench.report.render import build_report
from mgbench.zoo.loading import planted_truth

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 2.0, 4.0)
CONCEPTS = ("guitar", "piano", "jazz")
ROLES = planted_truth("toy")["sites"]
ENTRY = next(Site.parse(site) for site, role in ROLES.items() if role == "entry")  # L2.cross_attn
NO_PATH = [Site.parse(site) for site, role in ROLES.items() if role == "no_path"]  # L0, L1, L3 cross_attn


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return Session(RunConfig(model="toy", prompts=2, generation=GenerationSettings(seconds=1.0),
                             cache=str(tmp_path_factory.mktemp("cache"))))


SWEEP = Selection(experiments=("interventions", "ceiling"), concepts=CONCEPTS, techniques=("adjust",),
                  components=("cross_attn",), alphas=ALPHAS)


@pytest.fixture(scope="module")
def swept(session):
    assert missing_work(session, SWEEP)[0]["interventions"] == 4 * 6 * 2 * len(ALPHAS)  # sites x pairs x prompts
    return run_selection(session, SWEEP)


def test_a_finished_sweep_leaves_no_work_for_shards(session, swept):
    assert missing_work(session, SWEEP, shards=2) == [{"interventions": 0, "ceiling": 0, "baselines": 0}] * 2


def _mean_effect(table, site: Site):
    at = table[(table.layer == site.layer) & (table.component == site.component)]
    return at.groupby("alpha").effect.mean()


def test_effect_at_the_entry_rises_with_alpha_and_no_path_sites_stay_silent(swept):
    iv = swept["interventions"]
    assert sorted(set(iv.alpha)) == list(ALPHAS)
    entry = _mean_effect(iv, ENTRY)
    print("entry effect by alpha:", entry.round(3).to_dict())
    assert entry[0.0] == 0.0  # alpha 0 adds a zero vector: the baseline clip, exactly
    assert (np.diff(entry[entry.index <= 1].to_numpy()) > 0).all(), entry  # strictly rising up to alpha 1
    assert (entry[entry.index > 1] > entry[0.5]).all(), entry  # saturated beyond, but still steering
    for site in NO_PATH:
        rows = iv[(iv.layer == site.layer) & (iv.component == site.component)]
        assert len(rows) == 6 * 2 * len(ALPHAS)  # every pair, prompt and alpha
        print(f"{site}: max |effect| {rows.effect.abs().max()}, max |precision| {rows.precision.abs().max()}")
        assert (rows.effect == 0).all() and (rows.precision == 0).all(), site


def test_alpha_one_reproduces_the_unswept_rows_exactly(session, swept):
    plain = run_selection(session, Selection(experiments=("interventions",), concepts=CONCEPTS,
                                             techniques=("adjust",), components=("cross_attn",), layers=(2,)))
    plain = plain["interventions"]
    assert "alpha" not in plain.columns
    unit = swept["interventions"].query("alpha == 1 and layer == 2").drop(columns="alpha")
    assert len(plain) == 12 and list(plain.columns) == list(unit.columns)
    assert plain.reset_index(drop=True).equals(unit.reset_index(drop=True))  # bit for bit, same ids


def test_a_window_that_excludes_every_frame_gives_effect_zero(session):
    steps = session.runner.max_new_tokens
    for frames in ((steps, steps + 10), (0, steps)):
        grid = intervention_grid(list(CONCEPTS), ["adjust"], [ENTRY], 2, frames=frames)
        assert list(grid.columns) == [*IDS[:-1], "frames", "prompt_id"]
        effect = run_interventions(session, grid).effect
        if frames[0] >= steps:  # no frame in the window
            assert (effect == 0).all()
            print("empty-window effect:", effect.abs().max())
        else:  # the whole clip: the same as no window at all
            whole = run_interventions(session, intervention_grid(list(CONCEPTS), ["adjust"], [ENTRY], 2))
            np.testing.assert_array_equal(effect.to_numpy(), whole.effect.to_numpy())


def test_the_report_draws_effect_against_alpha(session, swept, tmp_path):
    write_tables(tmp_path, swept, run_info(session))
    build_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Steering strength: effect and precision against alpha" in report
    assert (tmp_path / "figures" / "steering-alpha-toy.png").stat().st_size > 10_000
    assert "Planted truth recovered?" in report  # the paper's checks read the alpha-1 rows
