import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "test_paper.py"


class BenchDir:
    """A folder with a copy of the bench file, where pytest runs in a subprocess (as a user would)."""

    def __init__(self, path: Path, home: Path):
        self.path, self.env = path, {**os.environ, "MGBENCH_HOME": str(home)}
        (path / "test_paper.py").write_text(BENCH.read_text())
        (path / "expectations").mkdir()
        (path / "pytest.ini").write_text("[pytest]\n")

    def run(self, *args: str) -> "Result":
        proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=self.path,
                              env=self.env, capture_output=True, text=True)
        return Result(proc.stdout + proc.stderr)


class Result:
    def __init__(self, output: str):
        self.output, self.outlines = output, output.splitlines()

    def assert_outcomes(self, **expected: int) -> None:
        found = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", self.outlines[-1])}
        assert found == expected, self.output[-3000:]


@pytest.fixture
def bench_dir(tmp_path):
    (tmp_path / "bench").mkdir()
    return BenchDir(tmp_path / "bench", tmp_path / "home")


def _store(tmp_path):
    (store,) = (tmp_path / "home" / "cache").iterdir()
    return store


def test_k_selection_computes_only_what_it_selects(bench_dir, tmp_path):
    result = bench_dir.run("-k", "tiny-replace-guitar-to-piano-L1.mlp", "--prompts", "1", "--seconds", "0.5",
                                 f"--results={tmp_path / 'res'}")
    result.assert_outcomes(passed=1)
    store = _store(tmp_path)
    assert sorted(p.name for p in (store / "tensors").iterdir()) == ["pass-guitar.safetensors",
                                                                     "pass-piano.safetensors"]
    rows = pd.concat(pd.read_parquet(p) for p in (store / "interventions").glob("*.parquet"))
    assert len(rows) == 1 and rows.iloc[0][["original", "desired", "layer", "component"]].tolist() == [
        "guitar", "piano", 1, "mlp"]
    assert not (store / "decoderlens").exists()
    recorded = pd.read_csv(tmp_path / "res" / "bench.csv")
    assert set(recorded.metric) == {"effect", "effect_original", "effect_desired", "precision"}
    assert set(recorded.outcome) == {"passed"}


def test_golden_values_are_checked_with_value_range_and_source(bench_dir, tmp_path):
    args = ["-k", "tiny-guitar-L3 or tiny-guitar-L0", "--prompts", "1", "--seconds", "0.5",
            f"--results={tmp_path / 'res'}"]
    bench_dir.run(*args, "--update-expectations").assert_outcomes(passed=2)
    golden = json.loads((bench_dir.path / "expectations" / "tiny.json").read_text())
    assert golden["settings"]["prompts"] == 1 and set(golden["values"]) == {"tiny-guitar-L3", "tiny-guitar-L0"}
    bench_dir.run(*args).assert_outcomes(passed=2)
    golden["values"]["tiny-guitar-L3"]["ndcg"] += 0.5
    (bench_dir.path / "expectations" / "tiny.json").write_text(json.dumps(golden))
    result = bench_dir.run(*args)
    result.assert_outcomes(passed=1, failed=1)
    assert re.search(r"tiny-guitar-L3: ndcg = 0\.\d+ outside \[\S+, \S+\] \(tiny golden value [\d.]+\)", result.output)
    other = bench_dir.run("-k", "tiny-guitar-L0", "--prompts", "2", "--seconds", "0.5")
    other.assert_outcomes(passed=1)  # other settings: recorded, not checked against these goldens


def test_real_sizes_need_gpu(bench_dir):
    collected = bench_dir.run("--collect-only", "-q")
    assert not any(line.startswith("test_paper.py::test_decoderlens[small") for line in collected.outlines)
    gpu = bench_dir.run("--gpu", "-k", "small-guitar-L0 and decoderlens", "-rs")
    gpu.assert_outcomes(skipped=1)
    assert "small: --gpu was given but torch sees no CUDA device" in gpu.output


def test_default_expectations_are_the_checkouts_outside_it(tmp_path, monkeypatch):
    from mgbench.suite.expectations import default_expectations_dir

    monkeypatch.chdir(tmp_path)  # no ./expectations here: the folder beside the package
    assert default_expectations_dir() == Path(__file__).resolve().parents[1] / "expectations"
    (tmp_path / "expectations").mkdir()
    assert default_expectations_dir() == tmp_path / "expectations"
