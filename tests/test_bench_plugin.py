import json
from pathlib import Path

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "test_paper.py"


@pytest.fixture
def bench_dir(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    pytester.makepyfile(test_paper=BENCH.read_text())
    (pytester.path / "expectations").mkdir()
    return pytester


def _store(tmp_path):
    (store,) = (tmp_path / "home" / "cache").iterdir()
    return store


def test_k_selection_computes_only_what_it_selects(bench_dir, tmp_path):
    result = bench_dir.runpytest_subprocess("-k", "tiny-replace-guitar-to-piano-L1.mlp", "--prompts", "1", "--seconds", "0.5",
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
    bench_dir.runpytest_subprocess(*args, "--update-expectations").assert_outcomes(passed=2)
    golden = json.loads((bench_dir.path / "expectations" / "tiny.json").read_text())
    assert golden["settings"]["prompts"] == 1 and set(golden["values"]) == {"tiny-guitar-L3", "tiny-guitar-L0"}
    bench_dir.runpytest_subprocess(*args).assert_outcomes(passed=2)
    golden["values"]["tiny-guitar-L3"]["ndcg"] += 0.5
    (bench_dir.path / "expectations" / "tiny.json").write_text(json.dumps(golden))
    result = bench_dir.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*tiny-guitar-L3: ndcg = 0.* outside [[]*] (tiny golden value *)*"])
    other = bench_dir.runpytest_subprocess("-k", "tiny-guitar-L0", "--prompts", "2", "--seconds", "0.5")
    other.assert_outcomes(passed=1)  # other settings: recorded, not checked against these goldens


def test_real_sizes_need_gpu(bench_dir):
    collected = bench_dir.runpytest_subprocess("--collect-only", "-q")
    assert not any(line.startswith("test_paper.py::test_decoderlens[small") for line in collected.outlines)
    gpu = bench_dir.runpytest_subprocess("--gpu", "-k", "small-guitar-L0 and decoderlens", "-rs")
    gpu.assert_outcomes(skipped=1)
    gpu.stdout.fnmatch_lines(["*small: *"])
