import json
import re
import subprocess
import sys
from importlib import resources

import pytest
from scipy.io import wavfile

from mgbench.cli import main
from mgbench.errors import ConfigError


def test_concepts_and_prompts(capsys, concepts):
    assert main(["concepts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[0].startswith("guitar") and "100 prompts" in lines[0] and "(140)" in lines[0]
    assert main(["prompts", "jazz"]) == 0
    assert capsys.readouterr().out.splitlines() == concepts.prompts("jazz")


def test_models_lists_availability(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "facebook/musicgen-large" in out
    assert main(["models", "tiny"]) == 0 and "available offline" in capsys.readouterr().out


def test_bad_names_exit_2_with_one_line(capsys):
    for argv in (["models", "gigantic"], ["prompts", "drums"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mgbench: error: unknown") and "\n" not in err


def test_generate_writes_wav(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mgbench.cli", "generate", "Compose a happy jazz piece.",
                             "--seconds", "1", "--out", str(tmp_path)], capture_output=True, text=True, check=True)
    rate, data = wavfile.read(tmp_path / "clip0.wav")
    assert rate == 32000 and data.shape == (32000,) and data.dtype.name == "int16" and abs(data).max() > 0
    assert "clip0.wav" in result.stdout


def test_concepts_file_before_or_after_the_subcommand(tmp_path, capsys):
    raw = json.loads(resources.files("mgbench.data").joinpath("concepts.json").read_text())
    raw["concepts"].append({"name": "flute", "category": "instrument", "slot": "instrument", "word": "flute",
                            "labels": ["Flute"]})
    path = tmp_path / "flute.json"
    path.write_text(json.dumps(raw))
    outputs = []
    for argv in (["--concepts-file", str(path), "prompts", "flute", "-n", "2"],
                 ["prompts", "flute", "-n", "2", "--concepts-file", str(path)]):
        assert main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].count("flute melody") == 2
    assert main(["--concepts-file", str(path), "concepts"]) == 0  # the subcommand's own option does not reset it
    assert "flute" in capsys.readouterr().out


def test_layers_out_of_range_stay_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    assert main(["run", "--layers", "2-4", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == ("mgbench: error: site L4.self_attn: layer 4 is out of range; "
                                                        "this model has layers 0..3")
    assert not (tmp_path / "out").exists() and not (tmp_path / "home" / "cache").exists()


def test_parse_layers():
    from mgbench.experiments.selection import parse_layers

    assert parse_layers("all") is None and parse_layers("0, 3,10-12,3") == (0, 3, 10, 11, 12)
    for text, message in (("3-1", "runs backwards"), ("1,,2", "cannot read layers"), ("-1", "cannot read layers")):
        with pytest.raises(ConfigError, match=message):
            parse_layers(text)


def test_device_must_exist(monkeypatch):
    import argparse

    import torch

    from mgbench.cli import device_arg

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [device_arg(d) for d in ("cpu", "cuda", "cuda:1")] == ["cpu", "cuda", "cuda:1"]
    for text, message in (("cuda:2", "no such CUDA device; use cpu or cuda:0 to cuda:1"), ("mps", "unknown device")):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            device_arg(text)


def test_plan_of_one_concept(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    assert main(["plan", "--concepts", "guitar", "--experiments", "decoderlens", "--prompts", "1", "--seconds", "0.2",
                 "--batch-size", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"decoderlens\s+3 clips to generate", out) and re.search(r"baselines\s+1 clips", out)
