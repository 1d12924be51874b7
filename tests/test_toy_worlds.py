"""The family of planted toy worlds: the shipped ones load by name through the real loader and plant what their
planted.json says (no-path cross-attentions exactly 0, restricted entries exactly isolated); a fourth world
built here from a recipe (at reduced steps: its prompt following is not judged) does the same, and a stored
world assembles back into the folder it was stored from."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from mgbench.cli import build_parser, main
from mgbench.cli.commands import _run_setup
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.experiments.pipeline import run_selection
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.paths import toy_folder
from mgbench.suite.ground_truth import checks, judge
from mgbench.suite.planted import Planted
from mgbench.toy.build import SHARED, SHARED_TEXT, missed_targets
from mgbench.toy.checks import TARGETS
from mgbench.toy.planted import planted_truth as read_planted
from mgbench.toy.text import text_layout
from mgbench.zoo.architectures import ModelFacts
from mgbench.zoo.loading import WORLD_NAMES, load_musicgen, model_facts, planted_truth, resolve_source
from mgbench.zoo.worlds import DELTA, TOY_RUN, assemble_world, world_folder, worlds_root, write_world

RECIPES = {"toy": ["L2.cross_attn"], "toy-early": ["L0.cross_attn"],
           "toy-split": ["L1.cross_attn:instrument", "L3.cross_attn:genre"]}
FILL = {"mood": "happy", "genre": "rock", "instrument": "guitar", "tempo": "fast"}
#: the fourth world, in no test elsewhere and in no shipped world: a restricted entry after an unrestricted one
REDUCED = ["L3.cross_attn:instrument", "L0.cross_attn"]


def test_the_shipped_family_is_toy_early_and_split():
    assert WORLD_NAMES == ("toy-early", "toy-split")


@pytest.mark.parametrize("name", RECIPES)
def test_a_shipped_world_loads_by_name_and_its_planted_json_says_what_its_weights_plant(name):
    planted = planted_truth(name)
    assert planted["recipe"] == RECIPES[name] and planted["classifier"] == "toy"
    loaded = load_musicgen(name)  # from_pretrained on the (assembled) folder
    assert (resolve_source(name).endswith("musicgen") if name == "toy" else f"worlds/{name}-" in resolve_source(name))
    assert read_planted(loaded.model) == {k: v for k, v in planted.items() if k != "classifier"}
    # read without assembling (what --no-compute and the bench's collection read): the assembled folder's
    assert planted == json.loads((Path(resolve_source(name)) / "planted.json").read_text())
    assert model_facts(name) == ModelFacts.of_config(loaded.model.config)
    record = json.loads(((toy_folder() if name == "toy" else worlds_root() / name) / "build.json").read_text())
    assert not missed_targets(record, planted), record
    shipped = json.loads((toy_folder() / "build.json").read_text())["classifier_accuracy"]  # the shared classifier
    assert record["classifier_accuracy"] == pytest.approx(shipped, abs=1e-6)


@pytest.mark.parametrize("name", WORLD_NAMES)
def test_a_world_stores_only_what_differs_and_shares_toys_codec_embeddings_heads(name):
    from safetensors.torch import load_file

    stored = load_file(str(worlds_root() / name / DELTA))
    restricted = any(":" in entry for entry in RECIPES[name])
    shared = SHARED + (() if restricted else SHARED_TEXT)
    assert stored and not [k for k in stored if k.startswith(shared)]
    world, toy = load_musicgen(name).model.state_dict(), load_musicgen("toy").model.state_dict()
    for key in [k for k in toy if k.startswith(shared)]:
        assert torch.equal(world[key], toy[key]), key
    assert any(not torch.equal(world[k], toy[k]) for k in toy if k.startswith("decoder.model.decoder.layers."))


def test_a_world_is_assembled_once_under_mgbench_home_named_by_its_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path))
    folder = world_folder("toy-early")
    assert folder.parent == tmp_path / "worlds" and folder.name.startswith("toy-early-")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert world_folder("toy-early") == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert load_musicgen(str(folder)).identity == load_musicgen("toy-early").identity  # the same content
    assert [p.name for p in (tmp_path / "worlds").iterdir()] == [folder.name]  # no temporary folder left


def _cross_outputs(loaded, prompt: str, hidden: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's cross-attention output for the decoder states ``hidden`` and ``prompt``'s text."""
    text = loaded.processor.tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        states = loaded.model.text_encoder(**text).last_hidden_state
        if getattr(loaded.model, "enc_to_dec_proj", None) is not None:
            states = loaded.model.enc_to_dec_proj(states)
        return [layer.encoder_attn(hidden, key_value_states=states)[0] for layer in loaded.decoder_layers]


def _isolated(loaded, concepts, category: str, layer: int) -> bool:
    """Whether ``layer``'s cross-attention output is bit-identical for every word of ``category`` (any decoder
    state: random ones here), and some other layer's output changes with it."""
    words = {"instrument": ["guitar", "piano", "trumpet", "violin", "flute"],
             "genre": ["rock", "pop", "electronic", "jazz", "classical", "hiphop"]}[category]
    hidden = torch.randn(2, 7, loaded.model.config.decoder.hidden_size, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    outputs = [_cross_outputs(loaded, concepts.template.format(**{**FILL, category: w}), hidden) for w in words]
    return all(torch.equal(out[layer], outputs[0][layer]) for out in outputs)


@pytest.fixture(scope="module")
def split(concepts):
    return load_musicgen("toy-split", dtype=torch.float64)


def test_the_split_worlds_entries_are_exactly_isolated(split, concepts):
    assert _isolated(split, concepts, "genre", layer=1)  # L1 reads instrument words only
    assert _isolated(split, concepts, "instrument", layer=3)  # L3 genre words only
    assert not _isolated(split, concepts, "genre", layer=3) and not _isolated(split, concepts, "instrument", layer=1)


def test_the_isolation_test_catches_a_leak(split, concepts):
    broken = load_musicgen("toy-split", dtype=torch.float64)
    genre = text_layout(concepts, broken.processor.tokenizer, 64).dims["genre"]
    broken.decoder_layers[1].encoder_attn.v_proj.weight.data[:, genre.start] = 0.5  # L1 now reads a genre coordinate
    assert not _isolated(broken, concepts, "genre", layer=1)


def test_the_one_thing_every_entry_sees_is_the_prompts_token_count(split, concepts):
    hidden = torch.randn(1, 5, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    one, other, three = (_cross_outputs(split, concepts.template.format(**{**FILL, "tempo": t}), hidden)[1]
                         for t in ("fast", "slow", "slow to medium"))
    assert torch.equal(one, other) and not torch.equal(one, three)  # which tempo: nothing; how many tokens: yes


def _no_path_outputs(loaded, concepts) -> dict[int, float]:
    """Per layer, the largest |cross-attention output| over every step of generating two prompts."""
    worst: dict[int, float] = {}
    hooks = [layer.encoder_attn.register_forward_hook(
        lambda m, a, out, i=i: worst.__setitem__(i, max(worst.get(i, 0.0), out[0].abs().max().item())))
        for i, layer in enumerate(loaded.decoder_layers)]
    try:
        MusicgenRunner(loaded, GenerationSettings(seconds=0.2, seed=1)).generate(concepts.prompts("jazz", 2))
    finally:
        for hook in hooks:
            hook.remove()
    return worst


@pytest.mark.parametrize("name", WORLD_NAMES)
def test_a_worlds_no_path_cross_attentions_output_exactly_zero(name, concepts):
    loaded = load_musicgen(name, dtype=torch.float64)
    worst, roles = _no_path_outputs(loaded, concepts), planted_truth(name)["sites"]
    for layer, value in worst.items():
        assert (value == 0.0) == (roles[f"L{layer}.cross_attn"] == "no_path"), (layer, value)


def _default_run(model: str):
    session, _ = _run_setup(build_parser().parse_args(["run", "--model", model]))
    c = session.config
    return {"prompts": c.prompts, "seconds": c.generation.seconds, "seed": c.generation.seed,
            "dtype": c.resolved_dtype, "classifier": c.classifier_name}


def test_every_world_and_any_planted_folder_gets_the_toy_defaults(tmp_path):
    toy = _default_run("toy")
    assert toy == {"prompts": TOY_RUN[0], "seconds": TOY_RUN[1], "seed": 0, "dtype": "float64", "classifier": "toy"}
    for name in WORLD_NAMES:
        assert _default_run(name) == toy
    user = tmp_path / "mine"  # a world a user built: any folder with planted.json
    shutil.copytree(resolve_source("toy-early"), user)
    assert _default_run(str(user)) == toy
    (user / "planted.json").unlink()
    assert _default_run(str(user)) == {**toy, "prompts": 100, "seconds": 4.0, "dtype": "float32", "classifier": "passt"}
    assert RunConfig(model="toy-split", device="cuda").resolved_dtype == "float32"


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """A fourth world from a recipe, built here with 40 MusicGen steps (too few to follow prompts) and a
    prompt-following check on 2 prompts per concept."""
    out = tmp_path_factory.mktemp("reduced") / "world"
    entries = [arg for entry in REDUCED for arg in ("--entry", entry)]
    status = main(["toy", "build", "--out", str(out), *entries, "--musicgen-steps", "40", "--check-prompts", "2"])
    return out, status


def test_a_reduced_build_from_a_new_recipe_plants_it(reduced, concepts):
    out, status = reduced
    record = json.loads((out / "build.json").read_text())
    planted = json.loads((out / "musicgen" / "planted.json").read_text())
    assert record["recipe"] == planted["recipe"] == REDUCED[::-1] and planted["classifier"] == "toy"  # decoder order
    assert planted["entry_layers"] == {"instrument": 3, "genre": 0}  # L0 carries what L3 does not claim
    assert planted["entries"][0] == {"site": "L0.cross_attn", "categories": ["genre"], "other_words": True}
    assert planted["roles_by_category"]["instrument"]["L0.cross_attn"] == "through_codes"
    assert planted["roles_by_category"]["genre"]["L3.cross_attn"] == "downstream"
    assert planted["sites"]["L1.cross_attn"] == planted["sites"]["L2.cross_attn"] == "no_path"
    # the reduced build's own checks: the shared classifier hears the shared codec as before; 40 steps follow
    # no prompt (status 1 names the missed targets); its figure is measured with the run's defaults
    shipped = json.loads((toy_folder() / "build.json").read_text())["classifier_accuracy"]
    assert record["classifier_accuracy"] == pytest.approx(shipped, abs=1e-6)
    assert status == (1 if missed_targets(record, planted) else 0)
    assert set(record["prompt_following"]) == {"instrument", "genre"} and set(TARGETS) <= set(record)
    settings = {k: v for k, v in record["prompt_following_settings"].items() if k not in ("prompts", "layer")}
    assert settings == {k: v for k, v in _default_run(str(out / "musicgen")).items() if k != "prompts"}
    loaded = load_musicgen(str(out / "musicgen"), dtype=torch.float64)
    assert read_planted(loaded.model) == {k: v for k, v in planted.items() if k != "classifier"}
    assert _isolated(loaded, concepts, "genre", layer=3) and _isolated(loaded, concepts, "instrument", layer=0)
    assert not _isolated(loaded, concepts, "genre", layer=0) and not _isolated(loaded, concepts, "instrument", layer=3)
    worst = _no_path_outputs(loaded, concepts)
    assert worst[1] == worst[2] == 0.0 and worst[0] > 0 and worst[3] > 0


def test_the_reduced_world_passes_the_checks_that_training_cannot_break(reduced):
    """The checks that are facts of the architecture hold on the reduced world, read from its own planted.json: its
    no-path sites (L1, L2) are silent, and instruments (entering at L3) are at chance at the cuts before it. Those
    that need a world trained to follow its prompts (the entry's ranking, recognition at the full model) are the
    shipped worlds' (``pytest bench/ -k toy``); 40 steps follow no prompt."""
    model = str(reduced[0] / "musicgen")
    session = Session(RunConfig(model=model, prompts=TOY_RUN[0], generation=GenerationSettings(seconds=1.0)))
    tables = {**run_selection(session, Selection(("interventions",), concepts=("guitar", "piano", "jazz", "rock"),
                                                 techniques=("replace",))),
              **run_selection(session, Selection(("decoderlens",)))}
    planted = Planted(planted_truth(model))
    listed = [c for c in checks(planted, ["instrument", "genre"], ["replace"], [0, 1, 2, 3], [])
              if c.name in ("no_path_silent", "lens_chance")]
    assert sorted((c.name, c.category, c.layer) for c in listed) == [
        ("lens_chance", "instrument", 0), ("lens_chance", "instrument", 1), ("lens_chance", "instrument", 2),
        ("no_path_silent", None, None)]
    for check in listed:
        result = judge(check, tables, planted)
        assert result.holds, f"{check.where}: {result.detail}"
    silent = next(check for check in listed if check.name == "no_path_silent")
    assert "(L1.cross_attn, L2.cross_attn)" in judge(silent, tables, planted).detail


def test_a_stored_world_assembles_into_the_folder_it_was_stored_from(reduced, tmp_path):
    from safetensors.torch import load_file

    built = reduced[0] / "musicgen"
    write_world(built, tmp_path / "delta")
    stored = load_file(str(tmp_path / "delta" / DELTA))
    assert not [k for k in stored if k.startswith(SHARED)]  # only what differs from toy
    assert {p.name for p in (tmp_path / "delta").iterdir()} == {DELTA, "planted.json", "config.json", "build.json"}
    (tmp_path / "asm").mkdir()
    assemble_world(toy_folder() / "musicgen", tmp_path / "delta", tmp_path / "asm")
    ours, theirs = load_file(str(built / "model.safetensors")), load_file(str(tmp_path / "asm" / "model.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for path in built.iterdir():
        if path.name != "model.safetensors":
            assert (tmp_path / "asm" / path.name).read_bytes() == path.read_bytes(), path.name
    assert load_musicgen(str(tmp_path / "asm")).identity != load_musicgen("toy").identity


def test_mgbench_models_lists_the_worlds(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, recipe in RECIPES.items():
        line = next(line for line in out.splitlines() if line.startswith(f"{name} "))
        assert " ".join(recipe) in line and "available offline" in line
