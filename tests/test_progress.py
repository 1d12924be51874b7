"""Progress in a log file is plain lines (a start, an end, one a minute between); on a terminal tqdm's bars."""

import subprocess
import sys

import pytest

from mgbench import progress as progress_module
from mgbench.progress import Progress, progress


def _lines(err: str) -> list[str]:
    assert "\r" not in err and "\x1b" not in err
    return err.splitlines()


def test_a_stage_in_a_log_is_two_lines(capsys, monkeypatch):
    monkeypatch.delenv("MGBENCH_PROGRESS", raising=False)  # stderr is captured here: not a terminal
    assert list(progress(["a", "b", "c"], "baseline guitar")) == ["a", "b", "c"]
    start, end = _lines(capsys.readouterr().err)
    assert start == "mgbench: baseline guitar: 3 batches to do"
    assert end.startswith("mgbench: baseline guitar: 3 batches done in ") and end.endswith(" s")


def test_a_long_stage_says_how_far_it_is_and_an_empty_one_says_nothing(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_INTERVAL_S", 0.0)
    with Progress("toy musicgen", 3, unit="step") as stage:
        for _ in range(3):
            stage.update()
    assert _lines(capsys.readouterr().err)[1:3] == ["mgbench: toy musicgen: 1/3 steps done, 0 s so far",
                                                    "mgbench: toy musicgen: 2/3 steps done, 0 s so far"]
    list(progress([], "nothing"))
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("env, drawn", [({"MGBENCH_PROGRESS": "bars"}, "\r"), ({"TQDM_DISABLE": "1"}, None)])
def test_bars_on_request_and_silence(capsys, monkeypatch, env, drawn):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    list(progress(range(3), "stage"))
    err = capsys.readouterr().err
    assert (drawn in err) if drawn else err == ""


def test_a_run_logged_to_a_file_writes_plain_lines(tmp_path):
    """``mgbench run`` with its output going to a file (not a terminal): every progress line is plain text."""
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-c", "import sys; from mgbench.cli import main; sys.exit(main())", "run",
                        "--model", "tiny", "--concepts", "guitar,edm", "--layers", "3", "--components", "mlp",
                        "--seconds", "0.3", "--listen", "0", "--no-report",
                        "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")],
                       stdout=subprocess.DEVNULL, stderr=f, check=True)
    lines = _lines(log.read_text())
    assert lines and all(line.startswith("mgbench: ") for line in lines), lines
    assert any(line.startswith("mgbench: interventions: ") and " done in " in line for line in lines)
