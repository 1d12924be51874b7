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
        return Result(proc.stdout + proc.stderr, proc.returncode)


class Result:
    def __init__(self, output: str, returncode: int = 0):
        self.output, self.outlines, self.returncode = output, output.splitlines(), returncode

    def assert_outcomes(self, **expected: int) -> None:
        found = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", self.outlines[-1])}
        assert found == expected, self.output[-3000:]

    def assert_usage_error(self, message: str) -> None:
        """pytest's exit status 4 with exactly one error line, containing ``message``; no traceback."""
        errors = [line for line in self.outlines if line.startswith("ERROR:")]
        assert self.returncode == 4 and len(errors) == 1 and message in errors[0], self.output[-3000:]
        assert "INTERNALERROR" not in self.output and "Traceback" not in self.output


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
    assert "--gpu was given but torch sees no CUDA device" in gpu.output


def test_default_expectations_are_the_checkouts_outside_it(tmp_path, monkeypatch):
    from mgbench.suite.expectations import default_expectations_dir

    monkeypatch.chdir(tmp_path)  # no ./expectations here: the folder beside the package
    assert default_expectations_dir() == Path(__file__).resolve().parents[1] / "expectations"
    (tmp_path / "expectations").mkdir()
    assert default_expectations_dir() == tmp_path / "expectations"


SMALL = ["--prompts", "1", "--seconds", "0.5"]


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One home (tiny models, cache) for the tests below: they compute the same few concept passes."""
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def shared_bench_dir(tmp_path, shared_home):
    (tmp_path / "bench").mkdir()
    return BenchDir(tmp_path / "bench", shared_home)


def _write_golden(bench_dir: BenchDir, prompts: int, seconds: float, values: dict) -> Path:
    from mgbench.paths import TINY_VERSION

    path = bench_dir.path / "expectations" / "tiny.json"
    settings = {"prompts": prompts, "seconds": seconds, "seed": 0, "tiny_version": TINY_VERSION}
    path.write_text(json.dumps({"settings": settings, "values": values}, indent=1))
    return path


def test_update_merges_into_golden_values_of_the_same_settings(shared_bench_dir, tmp_path):
    other = {"tiny-piano-L1": {"ndcg": 0.123456789}, "tiny-replace-L0.mlp": {"effect": -0.5, "precision": -0.25}}
    path = _write_golden(shared_bench_dir, 1, 0.5, other)
    shared_bench_dir.run("-k", "tiny-guitar-L3", *SMALL, f"--results={tmp_path / 'res'}",
                         "--update-expectations").assert_outcomes(passed=1)
    golden = json.loads(path.read_text())
    assert golden["settings"]["prompts"] == 1 and set(golden["values"]) == {*other, "tiny-guitar-L3"}
    assert {k: golden["values"][k] for k in other} == other  # untouched


def test_update_with_other_settings_is_refused_unless_replacing(shared_bench_dir, tmp_path):
    path = _write_golden(shared_bench_dir, 2, 1.0, {f"tiny-guitar-L{i}": {"ndcg": 0.5} for i in range(3)})
    before = path.read_bytes()
    args = ["-k", "tiny-guitar-L3", *SMALL, f"--results={tmp_path / 'res'}"]
    refused = shared_bench_dir.run(*args, "--update-expectations")
    refused.assert_usage_error(f"{path} holds 3 golden values made with {{'prompts': 2, 'seconds': 1.0")
    assert "--replace-expectations" in refused.output and "Rerun with those settings" in refused.output
    assert path.read_bytes() == before and not (tmp_path / "res").exists()  # nothing computed, nothing lost

    shared_bench_dir.run(*args, "--replace-expectations").assert_outcomes(passed=1)
    golden = json.loads(path.read_text())
    assert (golden["settings"]["prompts"], golden["settings"]["seconds"]) == (1, 0.5)
    assert set(golden["values"]) == {"tiny-guitar-L3"}


@pytest.mark.parametrize("option, message", [
    (["--expectations", "/nonexistent"], "--expectations /nonexistent is not a folder; give the folder that holds "
                                         "paper.json and tiny.json"),
    (["--prompts", "0"], "--prompts 0 is not allowed; give a whole number of at least 1"),
    (["--seconds", "nan"], "--seconds nan is not allowed; give a clip length in seconds above 0"),
], ids=["expectations-missing", "prompts-0", "seconds-nan"])
def test_options_that_would_silently_change_meaning_are_usage_errors(bench_dir, option, message):
    bench_dir.run("-k", "tiny-guitar-L3", *option).assert_usage_error(message)


@pytest.mark.parametrize("name, text, message", [
    ("paper.json", '{"rules": [', "is not readable JSON (Expecting value: line 1 column 12"),
    ("paper.json", '{"rules": [{"size": "small"}]}', "has the wrong shape; expected {\"rules\": [{"),
    ("tiny.json", "", "is not readable JSON"),
    ("tiny.json", '{"settings": null, "values": [1, 2]}', "has the wrong shape; expected {\"settings\""),
], ids=["paper-not-json", "paper-rule-without-keys", "tiny-empty", "tiny-values-a-list"])
def test_damaged_expectations_file_is_one_line_naming_it(bench_dir, name, text, message):
    (bench_dir.path / "expectations" / name).write_text(text)
    bench_dir.run("-k", "tiny-guitar-L3", *SMALL).assert_usage_error(
        f"expectations file {bench_dir.path / 'expectations' / name} {message}")


def test_report_of_a_narrow_selection(shared_bench_dir, tmp_path):
    cases = ["tiny-replace-guitar-to-piano-L0.cross_attn", "tiny-replace-piano-to-guitar-L0.cross_attn",
             "tiny-adjust-guitar-to-piano-L0.cross_attn"]
    result = shared_bench_dir.run("-k", " or ".join(cases), *SMALL, f"--results={tmp_path / 'res'}")
    result.assert_outcomes(passed=3)
    report = (shared_bench_dir.path / "reports" / "report.md").read_text()
    claims = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    assert "not enough layers to judge" in claims["last-layer-best"] and "cannot judge" in claims["last-layer-best"]


def test_no_compute_checks_a_results_folder_made_elsewhere(shared_bench_dir, tmp_path):
    """Compute on one machine (here: one home), check on another (a home with nothing in it) with --no-compute."""
    cases = "tiny-guitar-L3 or tiny-replace-guitar-to-piano-L1.mlp or (tiny-guitar and not tiny-guitar-L)"  # similarity
    res = tmp_path / "res"
    shared_bench_dir.run("-k", cases, *SMALL, f"--results={res}").assert_outcomes(passed=3)
    computed = pd.read_csv(res / "bench.csv").set_index(["case", "metric"]).value
    stored = {p: p.read_bytes() for p in sorted((res / "tiny").rglob("*")) if p.is_file()}

    (tmp_path / "check").mkdir()
    checker = BenchDir(tmp_path / "check", tmp_path / "empty-home")
    checker.run("-k", cases, *SMALL, f"--results={res}", "--no-compute").assert_outcomes(passed=3)
    checked = pd.read_csv(res / "bench.csv").set_index(["case", "metric"]).value
    pd.testing.assert_series_equal(checked.sort_index(), computed.sort_index())
    assert not (tmp_path / "empty-home").exists()  # no model built, no cache: nothing computed
    # the tables stay as made:
    assert {p: p.read_bytes() for p in sorted((res / "tiny").rglob("*")) if p.is_file()} == stored

    missing = checker.run("-k", "tiny-guitar-L3 or tiny-guitar-L0", *SMALL, f"--results={res}", "--no-compute", "-rs")
    missing.assert_outcomes(passed=1, skipped=1)  # layer 0's DecoderLens rows were never computed
    assert "tiny-guitar-L0: 1 of its 1 decoderlens rows are not in the stored tiny tables (e.g. {'concept': " \
           "'guitar', 'layer': 0, 'prompt_id': 0}) (--no-compute computes nothing)" in missing.output
    other = checker.run("-k", "tiny-guitar-L3", "--prompts", "2", "--seconds", "0.5", f"--results={res}",
                        "--no-compute", "-rs")
    other.assert_outcomes(skipped=1)
    assert "was made with {'prompts': 1, 'seconds': 0.5, 'seed': 0}; this check uses {'prompts': 2" in other.output
    assert not (tmp_path / "empty-home").exists()


def test_no_compute_needs_a_results_folder(bench_dir, tmp_path):
    bench_dir.run("-k", "tiny-guitar-L3", f"--results={tmp_path / 'nothing'}", "--no-compute").assert_usage_error(
        f"--no-compute checks the tables stored in --results {tmp_path / 'nothing'}, which is not a folder")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA device")
def test_gpu_cases_skip_with_their_reason_without_a_device(bench_dir):
    """Every kind of --gpu case (real-size bench cases, the GPU speed benchmark) skips where torch sees no CUDA
    device, and the session exits 0: the plugin decides it in one place."""
    (bench_dir.path / "test_speed.py").write_text((BENCH.parent / "test_speed.py").read_text())
    cases = ["test_decoderlens[large-guitar-L3]", "test_profile[large-replace-L0.mlp]",
             "test_claim[large-last-layer-best]"]
    result = bench_dir.run("--gpu", "-rs", *(f"test_paper.py::{c}" for c in cases), "test_speed.py::test_speed_gpu")
    result.assert_outcomes(skipped=6)  # decoderlens, profile, claim of large; speed_gpu small, medium, large
    reasons = [line for line in result.outlines if line.startswith("SKIPPED")]  # "SKIPPED [count] where: reason"
    assert all(r.endswith(": --gpu was given but torch sees no CUDA device") for r in reasons), reasons
    assert sum(int(re.search(r"\[(\d+)\]", r)[1]) for r in reasons) == 6
    assert result.returncode == 0


def test_sharded_bench_then_plain_equals_one_plain_bench(tmp_path):
    """The bench shards as `mgbench run` does (the same pipeline): `--shard 1/2`, `--shard 2/2` fill the cache and
    check nothing, then a plain bench computes nothing more and writes the bench.csv a plain bench alone writes."""
    args = ["-k", "tiny-replace-guitar-to-piano or tiny-guitar-L1", "--prompts", "1", "--seconds", "0.3"]
    for name in ("sharded", "plain"):
        (tmp_path / name).mkdir()
    sharded, plain = (BenchDir(tmp_path / name, tmp_path / f"home-{name}") for name in ("sharded", "plain"))
    for shard in ("1/2", "2/2"):
        result = sharded.run(*args, "--shard", shard, "-rs", f"--results={tmp_path / 'res-sharded'}")
        result.assert_outcomes(skipped=13)  # 12 intervention cases and one DecoderLens case, each skipped
        assert f"shard {shard} of tiny: computed" in result.output
    store = next((tmp_path / "home-sharded" / "cache").iterdir())
    stored = {p.name for p in store.rglob("*.parquet")}
    sharded.run(*args, f"--results={tmp_path / 'res-sharded'}").assert_outcomes(passed=13)
    assert {p.name for p in store.rglob("*.parquet")} == stored  # the plain bench computed nothing more
    plain.run(*args, f"--results={tmp_path / 'res-plain'}").assert_outcomes(passed=13)
    a, b = (pd.read_csv(tmp_path / f"res-{name}" / "bench.csv").sort_values(["case", "metric"]).reset_index(drop=True)
            for name in ("sharded", "plain"))
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "res-sharded" / "tiny" / "summary.md").is_file()
