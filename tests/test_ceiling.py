import re

import pytest
import torch

from mgbench.cli import main
from mgbench.engine.runner import GenerationSettings
from mgbench.errors import ConfigError, UnknownNameError
from mgbench.experiments.catalog import validate
from mgbench.experiments.ceiling import ceiling_grid, run_ceiling
from mgbench.experiments.metrics import intervention_effect, precision
from mgbench.experiments.pipeline import run_selection, summarize
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session


def make_session(tmp_path, zero_cross_attention: bool = False) -> Session:
    """The tiny model, 2 prompts of 0.5 s, batches as large as a concept's baseline batch (same classifier shapes)."""
    session = Session(RunConfig(model="tiny", prompts=2, generation=GenerationSettings(seconds=0.5, seed=2),
                                batch_size=2, cache=str(tmp_path / "cache")))
    if zero_cross_attention:  # the text can no longer reach the codes
        for layer in session.musicgen.decoder_layers:
            layer.encoder_attn.out_proj.weight.data.zero_()
    return session


def parse(concepts, prompt: str) -> dict[str, str]:
    """The slot values of a prompt, read back through the template."""
    pattern = re.escape(concepts.template)
    for slot in concepts.slot_order:
        pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>.+?)")
    return re.fullmatch(pattern, prompt).groupdict()


def test_prompts_are_their_fills_in_the_template(concepts):
    assert concepts.prompts("piano", 3) == [
        "Compose a emotional rock piece, with a piano melody. Use a fast tempo.",
        "Compose a emotional rock piece, with a piano melody. Use a medium tempo.",
        "Compose a emotional rock piece, with a piano melody. Use a slow tempo."]
    assert concepts.fills("piano", 2)[1] == {"genre": "rock", "mood": "emotional", "instrument": "piano",
                                             "tempo": "medium"}
    assert [parse(concepts, p) for p in concepts.prompts("edm")] == concepts.fills("edm")


def test_swapped_prompt_changes_only_the_desired_slot(concepts):
    assert concepts.swapped_prompt("guitar", 0, "jazz") == "Compose a emotional jazz piece, with a guitar melody. " \
                                                          "Use a fast tempo."
    assert concepts.swapped_prompt("edm", 5, "violin") == "Compose a emotional electronic piece, with a violin " \
                                                          "melody. Use a fast tempo."
    for original in concepts.concepts:
        prompts = concepts.prompts(original.name)
        for desired in concepts.concepts:
            for prompt_id in (0, 7, 99):
                before = parse(concepts, prompts[prompt_id])
                after = parse(concepts, concepts.swapped_prompt(original.name, prompt_id, desired.name))
                assert after[desired.slot] == desired.word
                assert {k: v for k, v in after.items() if k != desired.slot} == \
                       {k: v for k, v in before.items() if k != desired.slot}


def test_swapped_prompt_bad_inputs(concepts):
    with pytest.raises(UnknownNameError, match="unknown concept 'kazoo'"):
        concepts.swapped_prompt("guitar", 0, "kazoo")
    with pytest.raises(UnknownNameError, match="unknown concept 'kazoo'"):
        concepts.swapped_prompt("kazoo", 0, "guitar")
    with pytest.raises(ConfigError, match="only 125 prompts"):
        concepts.swapped_prompt("guitar", 125, "jazz")
    with pytest.raises(ConfigError, match="prompt id -1 is negative"):
        concepts.swapped_prompt("guitar", -1, "jazz")


def test_noise_key_is_what_makes_the_ceiling_zero_without_a_text_path(tmp_path):
    session = make_session(tmp_path, zero_cross_attention=True)
    original = session.prompts("guitar")[1]
    swapped = session.concepts.swapped_prompt("guitar", 1, "jazz")
    same_noise = session.runner.generate([swapped], noise_keys=[original])
    assert torch.equal(same_noise, session.runner.generate([original]))
    assert not torch.equal(session.runner.generate([swapped]), same_noise)  # keyed by its own text: other noise
    with pytest.raises(ValueError, match="got 2 noise keys for 1 prompts"):
        session.runner.generate([swapped], noise_keys=[original, original])
    table = run_ceiling(session, ceiling_grid(["guitar", "piano", "jazz"], 2))
    assert len(table) == 6 * 2 and (table.effect == 0).all() and (table.precision == 0).all()
    assert (table.effect_original == 0).all() and (table.effect_desired == 0).all()


def test_ceiling_rows_match_a_manual_run_and_resume_from_the_store(tmp_path, monkeypatch):
    session = make_session(tmp_path)
    grid = ceiling_grid(["guitar", "piano", "jazz"], 2)
    first = run_ceiling(session, grid[grid.original == "guitar"])
    assert len(first) == 2 * 2
    for concept in ("piano", "jazz"):  # baselines first, so that only ceiling clips are counted
        session.concept_pass(session.concepts.get(concept))
    generate, calls = session.runner.generate, []
    monkeypatch.setattr(session.runner, "generate", lambda prompts, **kw: calls.append(len(prompts)) or generate(
        prompts, **kw))
    table = run_ceiling(session, grid)
    assert sum(calls) == len(grid) - len(first) and len(table) == len(grid)  # only the missing rows
    assert list(table.columns[:5]) == ["model", "classifier", "original", "desired", "pair_type"]
    assert set(table.pair_type) == {"instrument->instrument", "instrument->genre", "genre->instrument"}
    assert (table.effect != 0).any()  # with the text path intact the swap changes the clip

    row = table[(table.original == "jazz") & (table.desired == "piano") & (table.prompt_id == 1)].iloc[0]
    original = session.prompts("jazz")[1]
    swapped = "Compose a emotional jazz piece, with a piano melody. Use a medium tempo."
    before = session.classify(session.runner.generate([original]))
    after = session.classify(session.runner.generate([swapped], noise_keys=[original]))
    effect, eff_o, eff_d = intervention_effect(before, after, 235, 153)
    assert row.effect == pytest.approx(effect.item(), abs=2e-4)
    assert row.effect_original == pytest.approx(eff_o.item(), abs=2e-4)
    assert row.effect_desired == pytest.approx(eff_d.item(), abs=2e-4)
    assert row.precision == pytest.approx(precision(before, after).item(), abs=1e-5)

    again = make_session(tmp_path)  # a new session on the same cache reads every row and generates nothing
    monkeypatch.setattr(again.runner, "generate", lambda *a, **kw: pytest.fail("generated a cached row"))
    assert run_ceiling(again, grid).equals(table)


def test_ceiling_in_the_pipeline(tmp_path, monkeypatch, capsys):
    session = make_session(tmp_path)
    with pytest.raises(ConfigError, match="ceiling: at least two concepts"):
        validate(session, Selection(experiments=("ceiling",), concepts=("guitar",)))
    tables = run_selection(session, Selection(experiments=("ceiling",), concepts=("guitar", "rock")))
    assert set(tables) == {"ceiling"} and len(tables["ceiling"]) == 2 * 2
    summary = summarize(tables)
    by_pair = summary["ceiling"]
    assert list(by_pair.index) == [("guitar", "rock"), ("rock", "guitar")]
    mean = tables["ceiling"].query("original == 'rock'").effect.mean()
    assert by_pair.loc[("rock", "guitar"), "effect"] == pytest.approx(mean)
    assert summary["ceiling_pair_type"].loc["genre->instrument", "effect"] == pytest.approx(mean)

    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    assert main(["plan", "--model", "tiny", "--concepts", "guitar,rock", "--experiments", "ceiling", "--prompts", "1",
                 "--seconds", "0.2", "--batch-size", "1"]) == 0
    assert re.search(r"ceiling\s+2 clips to generate", capsys.readouterr().out)
