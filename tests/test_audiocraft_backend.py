"""``--backend audiocraft``: the same experiments through audiocraft's generate give the transformers backend's tables;
the backend and the text padding keep their caches apart; bad choices are one-line errors (docs/backends.md)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pandas as pd
import pytest
import torch

from mgbench import backends
from mgbench.backends import make_runner
from mgbench.cli import main
from mgbench.engine.runner import GenerationSettings
from mgbench.experiments.session import RunConfig, Session
from mgbench.zoo.loading import load_musicgen

TABLES = ("decoderlens", "similarity", "interventions", "ceiling")
#: captured site means (similarity's only input) differ in the last bits: transformers computes its sinusoidal
#: positions in float32, audiocraft in float64 (docs/backends.md); every other number is equal exactly
MEANS_TOLERANCE = 1e-6


def _run(tmp_path, backend: str, *extra: str) -> dict[str, pd.DataFrame]:
    out = tmp_path / backend
    assert main(["run", "--backend", backend, "--model", "tiny", "--concepts", "guitar,piano", "--prompts", "2",
                 "--seconds", "0.5", "--listen", "0", "--out", str(out), "--cache", str(tmp_path / "cache"),
                 *extra]) == 0
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in TABLES} | {
        "run": json.loads((out / "run.json").read_text())}


@pytest.mark.extra("audiocraft")
def test_audiocraft_backend_gives_the_transformers_tables(tmp_path, concepts, capsys):
    tiny = load_musicgen("tiny")
    prompts = [p for c in ("guitar", "piano") for p in concepts.prompts(c, 2)]
    assert len({len(tiny.processor.tokenizer(p)["input_ids"]) for p in prompts}) == 1  # equal lengths: no padding
    ours = _run(tmp_path, "transformers", "--no-report")
    theirs = _run(tmp_path, "audiocraft")
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one store per backend: nothing read across
    for name in TABLES:
        a, b = ours[name], theirs[name]
        assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0, name
        numbers = a.select_dtypes("number").columns
        pd.testing.assert_frame_equal(a.drop(columns=numbers), b.drop(columns=numbers))
        tolerance = MEANS_TOLERANCE if name == "similarity" else 0.0
        assert (a[numbers] - b[numbers]).abs().max().max() <= tolerance, name
    assert (ours["run"]["backend"], ours["run"]["text_padding"]) == ("transformers", "masked")
    assert (theirs["run"]["backend"], theirs["run"]["text_padding"]) == ("audiocraft", "audiocraft")
    assert "audiocraft" in theirs["run"]["versions"]
    report = (tmp_path / "audiocraft" / "report.md").read_text()
    assert "| backend " in report and "audiocraft" in report


@pytest.mark.extra("audiocraft")
def test_padding_choice_reproduces_audiocraft_on_unequal_prompts(concepts):
    """Prompts of different token lengths in one batch: the transformers backend with audiocraft's text padding
    gives the audiocraft backend's clips (sampled, with common random numbers), the masked default does not for the
    shorter prompt, and both give the longest prompt's clip."""
    tiny = load_musicgen("tiny", dtype=torch.float64)
    guitar = concepts.prompts("guitar", 4)
    prompts = [guitar[0], guitar[3]]
    lengths = [len(tiny.processor.tokenizer(p)["input_ids"]) for p in prompts]
    assert lengths[0] < lengths[1], lengths
    settings = GenerationSettings(seconds=0.5, seed=3)
    audiocraft = make_runner(tiny, settings, "audiocraft").generate(prompts)
    unmasked = make_runner(tiny, settings, "transformers", "audiocraft").generate(prompts)
    masked = make_runner(tiny, settings).generate(prompts)
    assert torch.equal(audiocraft, unmasked)
    assert not torch.equal(masked[0], audiocraft[0]) and torch.equal(masked[1], audiocraft[1])


def test_backend_and_padding_are_in_the_cache_key(tmp_path):
    """Each (backend, text padding) has a key of its own, differing from the others in exactly those two fields."""
    def key(**kw) -> dict:
        return Session(RunConfig(model="tiny", prompts=2, cache=str(tmp_path), **kw)).key()

    plain = key()
    variants = [key(text_padding="audiocraft")]
    if find_spec("audiocraft") is not None:
        variants.append(key(backend="audiocraft"))  # same padding as the one above: only the backend tells apart
    for variant in variants:
        assert variant != plain
        assert {k for k in plain if plain[k] != variant[k]} <= {"backend", "text_padding"}
    assert len({json.dumps(v, sort_keys=True) for v in [plain, *variants]}) == 1 + len(variants)


@pytest.mark.parametrize("argv, message", [
    (["--backend", "jax"], "unknown backend 'jax'; valid: transformers, audiocraft"),
    (["--text-padding", "zeros"], "unknown text padding 'zeros'; valid: masked, audiocraft"),
])
def test_unknown_choices_list_the_allowed_ones(argv, message, capsys):
    assert main(["plan", "--model", "tiny", *argv]) == 2
    assert capsys.readouterr().err.strip() == f"mgbench: error: {message}"


def test_audiocraft_missing_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(backends.base, "find_spec", lambda name: None)
    assert main(["plan", "--model", "tiny", "--backend", "audiocraft"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith(backends.INSTALL_AUDIOCRAFT)
    assert backends.INSTALL_AUDIOCRAFT in (Path(__file__).parents[1] / "README.md").read_text()


@pytest.mark.extra("audiocraft")
def test_audiocraft_backend_has_no_masked_padding(capsys):
    assert main(["plan", "--model", "tiny", "--backend", "audiocraft", "--text-padding", "masked"]) == 2
    assert "for masked padding drop --backend audiocraft" in capsys.readouterr().err
