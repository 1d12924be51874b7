import pandas as pd
import pytest
import torch

from mgbench.engine.hooks import ADD, REPLACE, RowEdit
from mgbench.engine.runner import GenerationSettings
from mgbench.engine.sites import Site
from mgbench.errors import ConfigError, SiteError, UnknownNameError
from mgbench.experiments.catalog import validate
from mgbench.experiments.decoderlens import decoderlens_grid, run_decoderlens
from mgbench.experiments.interventions import intervention_grid, make_edit, run_interventions
from mgbench.experiments.metrics import intervention_effect, ndcg, precision, self_similarity
from mgbench.experiments.pipeline import run_selection
from mgbench.experiments.selection import Selection, parse_layers
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.similarity import run_similarity


@pytest.fixture
def session(tmp_path):
    return Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.5, seed=1), batch_size=5,
                             cache=str(tmp_path / "cache")))


def test_decoderlens_rows_match_independent_computation(session):
    table = run_decoderlens(session, decoderlens_grid(["guitar", "edm"], [0, 3], 2))
    assert list(table.columns[:5]) == ["model", "classifier", "concept", "category", "layer"]
    assert len(table) == 2 * 2 * 2 and set(table.layer) == {0, 3} and set(table.model) == {"tiny"}
    row = table[(table.concept == "edm") & (table.layer == 0) & (table.prompt_id == 1)].iloc[0]
    audio = session.runner.generate([session.prompts("edm")[1]], cut=1)
    logits = session.classify(audio)[0]
    assert row.ndcg == pytest.approx(ndcg(logits, session.concepts.get("edm").label_indices).item(), abs=1e-6)
    # the last layer is the full model: its rows are the baseline clips
    last = table[(table.concept == "guitar") & (table.layer == 3)].sort_values("prompt_id")
    base = session.concept_pass(session.concepts.get("guitar")).logits
    expected = [ndcg(base[i], session.concepts.get("guitar").label_indices).item() for i in range(2)]
    assert list(last.ndcg) == pytest.approx(expected, abs=1e-6)
    assert last.top5.iloc[0].count(" | ") == 4


def test_similarity_is_distance_of_layer_outputs(session):
    table = run_similarity(session, ["guitar"])
    matrix = table.pivot(index="layer_i", columns="layer_j", values="distance").to_numpy()
    outputs = session.concept_pass(session.concepts.get("guitar")).layer_outputs
    assert outputs.shape == (2, 4, 64)
    torch.testing.assert_close(torch.tensor(matrix), self_similarity(outputs), check_dtype=False)
    assert matrix.diagonal().max() < 1e-4 and (matrix == matrix.T).all()


def test_intervention_rows_match_a_manual_run(session):
    grid = intervention_grid(["guitar", "jazz"], ["replace", "adjust"], [Site(2, "mlp"), Site(0, "cross_attn")], 2)
    table = run_interventions(session, grid)
    assert len(table) == 2 * 2 * 2 * 2 and set(table.pair_type) == {"instrument->genre", "genre->instrument"}
    row = table[(table.technique == "adjust") & (table.original == "jazz") & (table.layer == 2)
                & (table.prompt_id == 1)].iloc[0]
    g_cond, _ = session.means(session.concepts.get("guitar"), Site(2, "mlp"))
    j_cond, _ = session.means(session.concepts.get("jazz"), Site(2, "mlp"))
    prompt = session.prompts("jazz")[1]
    after = session.classify(session.runner.generate([prompt], edits=[RowEdit(Site(2, "mlp"), ADD, g_cond - j_cond)]))
    before = session.classify(session.runner.generate([prompt]))
    effect, eff_o, eff_d = intervention_effect(before, after, 235, 140)
    assert row.effect == pytest.approx(effect.item(), abs=2e-4)
    assert row.effect_original == pytest.approx(eff_o.item(), abs=2e-4)
    assert row.effect_desired == pytest.approx(eff_d.item(), abs=2e-4)
    assert row.precision == pytest.approx(precision(before, after).item(), abs=1e-5)
    replace = make_edit(session, "replace", "jazz", "guitar", Site(2, "mlp"))
    assert replace.mode == REPLACE and torch.equal(replace.cond, g_cond) and replace.uncond is None


def test_interrupted_run_resumes_without_redoing_work(session, monkeypatch):
    grid = intervention_grid(["guitar", "piano"], ["replace"], [Site(1, "mlp"), Site(3, "self_attn")], 2)
    session.concept_pass(session.concepts.get("guitar")), session.concept_pass(session.concepts.get("piano"))
    generate, calls = session.runner.generate, []

    def dying(prompts, **kw):
        if len(calls) == 1:
            raise KeyboardInterrupt  # killed during the second batch
        calls.append(len(prompts))
        return generate(prompts, **kw)

    monkeypatch.setattr(session.runner, "generate", dying)
    with pytest.raises(KeyboardInterrupt):
        run_interventions(session, grid)
    assert len(session.store.read("interventions")) == 5  # the first batch was kept
    calls.clear()
    monkeypatch.setattr(session.runner, "generate", lambda prompts, **kw: calls.append(len(prompts)) or generate(
        prompts, **kw))
    table = run_interventions(session, grid)
    assert sum(calls) == len(grid) - 5 and len(table) == len(grid)
    assert not table.duplicated(["original", "desired", "layer", "component", "prompt_id"]).any()
    calls.clear()
    assert len(run_interventions(session, grid)) == len(grid) and calls == []  # all cached now


def test_a_row_is_the_same_alone_or_in_any_batch(tmp_path):
    """README's promise with its stated tolerance: the same tokens (float64 means agree to 1e-9, where one changed
    token moves them by ~1e-2), metrics within 1e-5 (the float32 classifier sums in another order on batches of
    other shapes)."""
    grid = intervention_grid(["guitar", "jazz"], ["adjust"], [Site(1, "mlp"), Site(3, "cross_attn")], 2)
    sessions, tables = [], []
    for batch_size in (1, 5):
        session = Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.5, seed=4),
                                    batch_size=batch_size, cache=str(tmp_path / f"cache{batch_size}")))
        assert session.config.resolved_dtype == "float64"
        tables.append(run_interventions(session, grid).sort_values(list(grid.columns)).reset_index(drop=True))
        sessions.append(session)
    pd.testing.assert_frame_equal(tables[0], tables[1], check_exact=False, atol=1e-5, rtol=0)
    for concept in ("guitar", "jazz"):
        alone, batched = (s.concept_pass(s.concepts.get(concept)) for s in sessions)
        torch.testing.assert_close(alone.layer_outputs, batched.layer_outputs, atol=1e-9, rtol=0)
        for name, mean in alone.means.items():
            torch.testing.assert_close(mean, batched.means[name], atol=1e-9, rtol=0)


def test_selection_validation(session):
    with pytest.raises(SiteError, match="layer 9 is out of range"):
        validate(session, Selection(layers=(9,)))
    with pytest.raises(UnknownNameError, match="unknown technique 'swap'"):
        validate(session, Selection(techniques=("swap",)))
    with pytest.raises(UnknownNameError, match="unknown concept"):
        validate(session, Selection(concepts=("guitar", "kazoo")))
    with pytest.raises(ConfigError, match="at least two concepts"):
        validate(session, Selection(concepts=("guitar",)))
    assert parse_layers("0,2-3") == (0, 2, 3) and parse_layers("all") is None
    with pytest.raises(ConfigError, match="cannot read layers"):
        parse_layers("1-x")


def test_run_selection_tables(session):
    tables = run_selection(session, Selection(concepts=("guitar", "rock"), components=("mlp",), layers=(3,)))
    assert set(tables) == {"decoderlens", "similarity", "interventions", "ceiling", "tunedlens"}
    assert len(tables["interventions"]) == 2 * 2 * 2  # 2 techniques x 2 ordered pairs x 2 prompts
