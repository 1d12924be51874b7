"""`mgbench plan` answers in seconds on any machine: without the weights (the published configuration), for a
device that is not here (a device profile, labelled as projected) and, on a device that is here, from a short
calibration extrapolated by the cost model."""

import re

import pytest
import torch

from mgbench.cli import main
from mgbench.engine.batching import auto_batch_size
from mgbench.errors import MissingWeightsError
from mgbench.experiments.planning import paper_generations
from mgbench.perf import calibration
from mgbench.perf.cost import DEVICE_PROFILES, flops_per_clip, flops_per_step, hardware_limit
from mgbench.zoo import loading
from mgbench.zoo.architectures import SHAPES, ModelFacts
from mgbench.zoo.loading import model_facts
from mgbench.zoo.random_sizes import published_config


@pytest.fixture
def nothing_loads(monkeypatch):
    """Any model load, build or download fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("plan loaded or built a model")

    from transformers import MusicgenForConditionalGeneration

    monkeypatch.setattr(MusicgenForConditionalGeneration, "from_pretrained", refuse)
    monkeypatch.setattr(loading, "random_musicgen_folder", refuse)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_large_on_a_gpu_that_is_not_here_is_projected(tmp_path, monkeypatch, capsys, nothing_loads):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    assert main(["plan", "--model", "large", "--device", "cuda", "--workers", "8"]) == 0
    out = capsys.readouterr().out
    assert "weights not on this machine" in out and "cache not read" in out
    assert re.search(r"interventions\s+2,592,000 clips", out)  # 90 pairs x 2 techniques x 144 sites x 100 prompts
    total = int(re.search(r"total +([\d,]+) clips", out)[1].replace(",", ""))
    facts = model_facts("large")
    for name, profile in DEVICE_PROFILES.items():
        line = next(line for line in out.splitlines() if line.startswith(f"  {name}: "))
        assert "projected, not measured here" in line and "on 8 workers" in line
        batch = int(re.search(r"at batch (\d+)", line)[1])
        assert batch == auto_batch_size(facts, 4.0, True, int(0.8 * profile.memory_gib * 2**30), 4)
        rate = profile.fractions[("float32", "eager")] * hardware_limit(SHAPES["large"], 4.0, profile.gpu, batch)
        assert float(re.search(r": ([\d.]+) clips/s", line)[1]) == pytest.approx(rate, rel=1e-2)
        hours = float(re.search(r": ([\d.,]+) h on 1", line)[1].replace(",", ""))
        assert hours == pytest.approx(total / rate / 3600, rel=1e-2)
    assert "disk:" in out and "resolvable effect difference" in out and "all sizes" in out


def test_published_facts_need_no_weights(nothing_loads):
    for size, shape in ((s, SHAPES[s]) for s in ("small", "medium", "large")):
        facts = model_facts(size)
        assert facts == model_facts(f"{size}-random") == ModelFacts.of_config(published_config(size))
        assert (facts.num_layers, facts.shape.hidden, facts.steps(4.0)) == (shape.layers, shape.hidden, 203)
    with pytest.raises(MissingWeightsError, match="not in the local Hugging Face cache"):
        model_facts("someone/musicgen-unknown")


def test_calibration_extrapolates_layers_and_steps_by_the_cost_model(monkeypatch):
    """With step times of a known linear model (2 ms fixed + 3 ms per layer per 100 rows), the calibration recovers
    the whole model's step time and carries it to a clip's steps by the FLOPs of the cost model."""
    def fake_step(decoder, rows, text_tokens):
        return 0.002 + 0.003 * decoder.config.num_hidden_layers * rows / 100

    monkeypatch.setattr(calibration, "_step_seconds", fake_step)
    facts = model_facts("small")
    result = calibration.calibrate(facts, 4.0, 16, "cpu", torch.float32)
    step = {b: 0.002 + 0.003 * 24 * 2 * b / 100 for b in (4, 16)}  # guided: two rows per prompt
    assert result.step_seconds == pytest.approx(step)
    shape = SHAPES["small"]
    start = sum(flops_per_step(shape, p) for p in (2, 3, 4)) / 3
    assert result.clips_per_s == pytest.approx(16 / (step[16] * flops_per_clip(shape, 4.0) / start))
    assert "3 decoder steps at batch 4 and 16" in result.what


def test_a_real_calibration_on_this_cpu_is_quick_and_says_what_it_measures(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    assert main(["plan", "--model", "tiny", "--concepts", "guitar,piano", "--batch-size", "4"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("  cpu: "))
    assert "measured here: 3 decoder steps at batch 1 and 4" in line and float(line.split()[1]) > 0


def test_per_step_flops_add_up_to_the_clips():
    shape, n = SHAPES["medium"], 203
    assert sum(flops_per_step(shape, p) for p in range(1, n + 1)) + 4 * shape.cross_kv_weights * shape.text_tokens \
        == pytest.approx(flops_per_clip(shape, 4.0), rel=1e-12)
    assert paper_generations("large") == 2_592_000
