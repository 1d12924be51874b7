import subprocess
import sys

from scipy.io import wavfile

from mgbench.cli import main


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
