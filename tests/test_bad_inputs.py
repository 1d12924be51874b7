"""Issue 10, section 6: every bad input gets one clear line, before any work.

Each case runs ``mgbench`` in-process in a fresh folder and asserts: the exit status, exactly one
line on stderr (``mgbench: error: ...``, naming what is wrong and what is allowed), no traceback,
and nothing written, changed or deleted in the folder (the tiny model, built once per session in
its own home, is the only thing a case may load).
"""

import json
from importlib import resources

import pandas as pd
import pytest
import torch

from mgbench.cli import main
from mgbench.experiments.pipeline import write_tables

#: a cheap selection, so that code which ignores a bad option still ends quickly (and visibly succeeds)
SELECTION = ["--cache", "{tmp}/cache", "--experiments", "decoderlens", "--concepts", "guitar", "--layers", "0",
             "--prompts", "1", "--seconds", "0.2"]
RUN = ["run", "--out", "{tmp}/out", "--listen", "0", "--no-report", *SELECTION]
PLAN = ["plan", *SELECTION]


def _concept_file(tmp, concepts: list) -> None:
    raw = json.loads(resources.files("mgbench.data").joinpath("concepts.json").read_text())
    (tmp / "none.json").write_text(json.dumps({**raw, "concepts": concepts}))


def _cello(tmp, **change) -> None:
    """The shipped concepts plus a cello with ``change`` (None: that field left out), as ``cello.json``."""
    raw = json.loads(resources.files("mgbench.data").joinpath("concepts.json").read_text())
    cello = {"name": "cello", "category": "instrument", "slot": "instrument", "word": "cello", "labels": ["Cello"],
             "text": "a cello melody", **change}
    raw["concepts"].append({k: v for k, v in cello.items() if v is not None})
    (tmp / "cello.json").write_text(json.dumps(raw))


def _results(tmp, damage=None, name: str = "") -> None:
    """A results folder with one small run; then ``damage(path)`` changes its file ``name``."""
    iv = pd.DataFrame([("tiny", "tiny", "replace", "guitar", "piano", "instrument->instrument", 0, "mlp", 0, 0.5, 0.4,
                        0.1, -0.3)], columns=["model", "classifier", "technique", "original", "desired", "pair_type",
                                              "layer", "component", "prompt_id", "effect", "effect_original",
                                              "effect_desired", "precision"])
    write_tables(tmp / "res", {"interventions": iv}, {"model": "tiny", "prompts": 1})
    if damage:
        damage(tmp / "res" / name)


def _old_table(path) -> None:
    pd.read_parquet(path).drop(columns=["effect_original", "effect_desired"]).to_parquet(path)


SETUPS = {
    "file": lambda tmp: (tmp / "file").write_text("keep me"),
    "empty folder": lambda tmp: (tmp / "empty").mkdir(),
    "empty concept file": lambda tmp: (tmp / "empty.json").write_text(""),
    "no concepts": lambda tmp: _concept_file(tmp, []),
    "cello without labels or text": lambda tmp: _cello(tmp, labels=None, text=None),
    "cello with a misspelt label": lambda tmp: _cello(tmp, labels=["Celo"]),
    "cello with only a text": lambda tmp: _cello(tmp, labels=None),
    "results": _results,
    "run.json not JSON": lambda tmp: _results(tmp, lambda p: p.write_text('{"model": "tiny",'), "run.json"),
    "run.json of another tool": lambda tmp: _results(tmp, lambda p: p.write_text('{"settings": {}}'), "run.json"),
    "truncated parquet": lambda tmp: _results(tmp, lambda p: p.write_bytes(p.read_bytes()[:200]),
                                              "interventions.parquet"),
    "old table": lambda tmp: _results(tmp, _old_table, "interventions.parquet"),
}


def case(name: str, argv: list, message: str, *setups: str, status: int = 2, **kwargs):
    """One battery case: in a folder prepared by ``setups``, ``argv`` ({tmp}: that folder) must exit ``status``
    with ``message`` in its one line."""
    return pytest.param(argv, status, message, setups, id=name, **kwargs)


CASES = [
    case("layers-backwards", [*RUN, "--layers", "3-1"], "layer range '3-1' runs backwards; write low-high, e.g. 1-3"),
    case("prompts-0", [*RUN, "--prompts", "0"], "--prompts: '0' is not allowed; give a whole number of at least 1"),
    case("power-no-results", ["toy", "power", "{tmp}/none"], "results folder {tmp}/none does not exist or is not a "
         "folder"),
    case("power-prompts-0", ["toy", "power", "{tmp}", "--prompts", "2,0"], "--prompts: '2,0' is not allowed; give "
         "whole numbers of at least 1, e.g. 2,3,4"),
    case("power-rate-above-1", ["toy", "power", "{tmp}", "--rates", "0.8,1.5"], "--rates: '0.8,1.5' is not allowed; "
         "give rates between 0 and 1, e.g. 0.8,0.9"),
    case("prompts-negative", [*RUN, "--prompts", "-2"], "--prompts: '-2' is not allowed"),
    case("seconds-0", [*RUN, "--seconds", "0"], "--seconds: '0' is not allowed; give a clip length in seconds above 0"),
    case("seconds-negative", [*RUN, "--seconds", "-1"], "--seconds: '-1' is not allowed"),
    case("seconds-nan", [*RUN, "--seconds", "nan"], "--seconds: 'nan' is not allowed"),
    case("seconds-inf", [*RUN, "--seconds", "inf"], "--seconds: 'inf' is not allowed"),
    case("seconds-too-long-run", [*RUN, "--seconds", "1e6"],
         "clip length 1e+06 s does not fit model toy: give between 0.02 and 40.9 seconds"),
    case("seconds-too-long-plan", [*PLAN, "--seconds", "1e6"], "clip length 1e+06 s does not fit model toy"),
    case("seconds-too-long-generate", ["generate", "a jazz piece", "--out", "{tmp}/out", "--seconds", "1e6"],
         "clip length 1e+06 s does not fit model toy"),
    case("batch-size-negative", [*RUN, "--batch-size", "-1"], "--batch-size: '-1' is not allowed; give auto or a "
                                                              "whole number of at least 1"),
    *[case(f"shard-{bad.replace('/', '-of-')}", [*RUN, f"--shard={bad}"],
           f"--shard: shard '{bad}' is not allowed; give I/N with 1 <= I <= N, e.g. 1/3")
      for bad in ("0/3", "4/3", "x", "1/0", "-1/3", "1/3/3", "")],
    case("shard-and-workers", [*RUN, "--shard", "1/2", "--workers", "2"], "--shard and --workers exclude each other"),
    case("workers-0", [*RUN, "--workers", "0"], "--workers: '0' is not allowed; give a whole number of at least 1"),
    case("batch-size-0", [*RUN, "--batch-size", "0"], "--batch-size: '0' is not allowed"),
    case("batch-size-abc", [*RUN, "--batch-size", "abc"], "--batch-size: 'abc' is not allowed"),
    case("device-cuda-without-gpu", [*RUN, "--device", "cuda"], "'cuda': torch sees no CUDA device here; use cpu",
         marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")),
    case("compile-generate-engine", [*RUN, "--engine", "generate", "--compile", "default"],
         "--compile default compiles mgbench's own decode loop: use it with --engine own (the default), or --compile "
         "off"),
    case("compile-audiocraft", [*RUN, "--backend", "audiocraft", "--compile", "reduce-overhead"],
         "--compile reduce-overhead needs a compiled decoder step (--compile), which the audiocraft backend does not "
         "offer: drop --backend audiocraft or --compile", marks=pytest.mark.extra("audiocraft")),
    case("tunedlens-audiocraft", [*RUN, "--backend", "audiocraft", "--experiments", "tunedlens"],
         "the tunedlens experiment needs generation through the loaded model's transformers decoder layers",
         marks=pytest.mark.extra("audiocraft")),
    case("compile-bogus", [*RUN, "--compile", "max"], "argument --compile: invalid choice: 'max' (choose from 'off', "
                                                      "'default', 'reduce-overhead')"),
    case("device-tpu", [*RUN, "--device", "tpu"], "unknown device 'tpu'; use cpu, cuda or cuda:N"),
    case("alphas-x", [*RUN, "--alphas", "x"], "cannot read alphas 'x'; write strengths of 0 or more, comma "
                                              "separated, e.g. 0,0.5,1,2,4"),
    case("alphas-negative", [*RUN, "--alphas=0,-1"], "alpha '-1' is not allowed; give finite strengths of 0 or more"),
    case("alphas-nan", [*RUN, "--alphas", "nan"], "alpha 'nan' is not allowed"),
    case("alphas-replace-only", [*RUN, "--alphas", "0,1", "--techniques", "replace"],
         "--alphas scales adjust; replace has no strength: add adjust to --techniques"),
    case("frames-backwards", [*RUN, "--frames", "5-2"], "frame window '5-2' holds no frame (it is T0 <= t < T1); "
                                                        "write T0-T1 with T0 < T1, e.g. 2-5"),
    case("frames-empty", [*RUN, "--frames", "3-3"], "frame window '3-3' holds no frame"),
    case("frames-negative", [*RUN, "--frames=-3-5"], "cannot read frames '-3-5'; write T0-T1 with whole numbers "
                                                     "from 0"),
    case("frames-x", [*RUN, "--frames", "x"], "cannot read frames 'x'"),
    case("frames-after-the-clip", [*RUN, "--frames", "20-30"], "--frames 20-30 starts after the clip: a 0.2 s clip "
                                                               "has decode steps 0 to 12"),
    case("frames-compiled", [*RUN, "--frames", "0-5", "--compile", "default"],
         "--frames runs edits uncompiled (compiled edit slots edit every frame): drop --compile default or --frames"),
    case("frames-audiocraft", [*RUN, "--frames", "0-5", "--backend", "audiocraft"], "--backend audiocraft"),
    case("out-is-a-file", [*RUN, "--out", "{tmp}/file"], "--out: {tmp}/file is a file, not a folder", "file"),
    case("cache-is-a-file", [*RUN, "--cache", "{tmp}/file"], "--cache: {tmp}/file is a file, not a folder", "file"),
    case("report-run-json-not-json", ["report", "{tmp}/res"], "{tmp}/res/run.json is damaged", "run.json not JSON"),
    case("report-foreign-run-json", ["report", "{tmp}/res"], "{tmp}/res/run.json names no model",
         "run.json of another tool"),
    case("report-truncated-parquet", ["report", "{tmp}/res"], "{tmp}/res/interventions.parquet is damaged",
         "truncated parquet"),
    case("report-old-table", ["report", "{tmp}/res"], "{tmp}/res/interventions.parquet lacks the columns "
                                                      "effect_original, effect_desired", "old table"),
    case("report-out-is-a-file", ["report", "{tmp}/res", "--out", "{tmp}/file"], "--out: {tmp}/file is a file",
         "results", "file"),
    case("models-not-a-hub-id", ["models", "a/b/c/d"], "unknown model 'a/b/c/d'; valid: toy, toy-early, toy-split, "
                                                       "tiny, small, medium, large, small-random, medium-random, "
                                                       "large-random. Or "
                                                       "pass a local folder or a Hugging Face hub id (owner/name)"),
    case("models-empty-folder", ["models", "{tmp}/empty"], "holds no MusicGen model: it needs config.json and "
                                                           "weights", "empty folder"),
    case("prompts-n-negative", ["prompts", "guitar", "-n", "-3"], "-n: '-3' is not allowed"),
    case("prompts-n-0", ["prompts", "guitar", "-n", "0"], "-n: '0' is not allowed"),
    case("concepts-twice", [*RUN, "--concepts", "guitar,guitar"], "concept 'guitar' is named more than once"),
    case("concept-file-empty", ["--concepts-file", "{tmp}/empty.json", "concepts"], "{tmp}/empty.json is empty",
         "empty concept file"),
    case("concept-file-without-concepts", ["--concepts-file", "{tmp}/none.json", "concepts"],
         "{tmp}/none.json defines no concepts", "no concepts"),
    case("concept-without-labels-or-text", ["--concepts-file", "{tmp}/cello.json", "concepts"],
         "concept 'cello' in {tmp}/cello.json has neither \"labels\" nor \"text\"; give AudioSet labels (for "
         "--recognizer passt), a text (for --recognizer clap), or both", "cello without labels or text"),
    case("concept-unknown-label", ["--concepts-file", "{tmp}/cello.json", "concepts"],
         "unknown AudioSet label 'Celo'; valid: Cello", "cello with a misspelt label"),
    case("recognizer-bogus", [*RUN, "--recognizer", "clip"], "argument --recognizer: invalid choice: 'clip' (choose "
                                                               "from 'passt', 'clap')"),
    case("passt-concept-without-labels", [*RUN, "--concepts-file", "{tmp}/cello.json"],
         "concept 'cello' in {tmp}/cello.json has no AudioSet labels, which --recognizer passt scores; add \"labels\" "
         "or use --recognizer clap", "cello with only a text"),
    case("clap-unknown-model", [*RUN, "--recognizer", "clap", "--classifier", "clip"],
         "unknown CLAP model 'clip'; valid: clap, tiny. Or pass a folder or a hub id of a ClapModel"),
    case("clap-weights-missing", [*RUN, "--recognizer", "clap", "--classifier", "mgbench-tests/no-such-clap"],
         "CLAP weights 'mgbench-tests/no-such-clap' are not in the local Hugging Face cache"),
    case("concept-file-after-the-subcommand", ["prompts", "guitar", "--concepts-file", "{tmp}/none.json"],
         "{tmp}/none.json defines no concepts", "no concepts"),
]


@pytest.fixture(scope="session")
def tiny_home(tmp_path_factory):
    """A home with the tiny model built (building it is work a failing command may do once, not output)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MGBENCH_HOME", str(home))
        from mgbench.zoo.loading import load_musicgen

        load_musicgen("tiny")
    return home


def _snapshot(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("argv, status, message, setups", CASES)
def test_bad_input_gives_one_line_and_does_nothing(argv, status, message, setups, tmp_path, tiny_home, monkeypatch,
                                                   capsys):
    monkeypatch.setenv("MGBENCH_HOME", str(tiny_home))
    monkeypatch.chdir(tmp_path)
    for setup in setups:
        SETUPS[setup](tmp_path)
    before = _snapshot(tmp_path)

    assert main([arg.format(tmp=tmp_path) for arg in argv]) == status
    captured = capsys.readouterr()
    assert captured.err.startswith("mgbench: error: ") and captured.err.count("\n") == 1, captured.err
    assert message.format(tmp=tmp_path) in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert _snapshot(tmp_path) == before  # no output or cache folder; no file written, changed or deleted
    assert not (tiny_home / "cache").exists()


def test_ctrl_c_during_a_run_says_what_was_saved_and_how_to_resume(tmp_path, tiny_home, monkeypatch, capsys):
    from mgbench.engine.runner import MusicgenRunner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setenv("MGBENCH_HOME", str(tiny_home))
    monkeypatch.setattr(MusicgenRunner, "generate", interrupted)  # Ctrl-C while the first clips are generated

    try:
        status = main([arg.format(tmp=tmp_path) for arg in RUN])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C came out of main as KeyboardInterrupt: the user sees a traceback")
    assert status == 130
    err = capsys.readouterr().err
    lines = err.strip().splitlines()  # the progress lines of the stage that began (stderr is no terminal here)
    assert "Traceback" not in err and all(line.startswith("mgbench: decoderlens: ") for line in lines[:-1])
    assert lines[-1] == (
        f"mgbench: interrupted; every finished batch of rows is saved in the cache {tmp_path}/cache: "
        "run the same command again to resume")
    assert not (tmp_path / "out").exists()
