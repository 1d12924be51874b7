"""Speed benchmarks (pytest-benchmark): the batched sweep against the naive loop, and GPU throughput.

GPU throughput (``--gpu``) runs each size's checkpoint, or where its weights are not cached the same
architecture with random weights (``small-random``, ...: built offline on first use), timed as every GPU number is
(``mgbench/perf/benchmark.py``: warm-ups, interleaved rounds, CUDA events, median and spread).

The naive loop is one generate call per (pair, site) with the prompts batched, as a direct reading
of the paper would run it; the batched sweep packs rows of many pairs and sites into each call.
Both compute the same rows with the same code (``InterventionRows``) in the same run.

The engine ratio runs mgbench's own decode loop (dynamic and static KV cache) and transformers'
``generate`` on the same prompts, alternating, in one run: a ratio, never a timed assertion. The step
split records where a step's time goes (decoder, edit hooks, sampling, EnCodec, classifier).
"""

import time

import pandas as pd
import pytest
import torch

from mgbench.classify.loading import load_classifier
from mgbench.concepts.concept_set import load_concepts
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import all_sites
from mgbench.experiments.interventions import InterventionRows, intervention_grid
from mgbench.experiments.resume import chunks
from mgbench.experiments.session import RunConfig, Session
from mgbench.perf.benchmark import interleaved, summary
from mgbench.perf.cost import gpu_kind, hardware_limit
from mgbench.perf.profile import step_split
from mgbench.zoo.architectures import SHAPES
from mgbench.zoo.loading import is_available, load_musicgen

pytestmark = pytest.mark.computes  # benchmarks load models: --no-compute skips them

CONCEPTS = ["guitar", "piano", "jazz"]


def _sweep_session(model: str, device: str, prompts: int, seconds: float, tmp_path, batch_size: int = 0):
    session = Session(RunConfig(model=model, device=device, prompts=prompts, batch_size=batch_size,
                                dtype="float16" if device == "cuda" else "float32",
                                generation=GenerationSettings(seconds=seconds), cache=str(tmp_path)))
    for name in CONCEPTS:  # means and baselines: computed once per concept, outside the timed work
        session.concept_pass(session.concepts.get(name))
    return session


def test_speed_batched_sweep_vs_naive_loop(benchmark, tmp_path, bench_record):
    session = _sweep_session("tiny", "cpu", prompts=2, seconds=1.0, tmp_path=tmp_path)
    grid = intervention_grid(CONCEPTS, ["replace", "adjust"], all_sites(session.musicgen.num_layers), 2)
    rows = InterventionRows(session)

    start = time.perf_counter()
    naive = [rows(group) for _, group in grid.groupby(["technique", "original", "desired", "layer", "component"])]
    naive_rate = len(grid) / (time.perf_counter() - start)

    batched = benchmark.pedantic(lambda: [rows(batch) for batch in chunks(grid, session.batch_size)],
                                 rounds=1, iterations=1)
    batched_rate = len(grid) / benchmark.stats.stats.mean
    speedup = batched_rate / naive_rate
    benchmark.extra_info.update(clips=len(grid), batch_size=session.batch_size, naive_clips_per_s=naive_rate,
                                batched_clips_per_s=batched_rate, speedup_vs_naive=speedup)
    bench_record("speed-tiny-cpu", speedup_vs_naive=speedup, naive_clips_per_s=naive_rate,
                 batched_clips_per_s=batched_rate)
    # batching changes nothing but speed: the same rows come out (up to float noise of batch size)
    by_id = ["technique", "original", "desired", "layer", "component", "prompt_id"]
    naive_rows, batched_rows = (pd.concat(f).sort_values(by_id).reset_index(drop=True) for f in (naive, batched))
    assert (naive_rows.effect - batched_rows.effect).abs().max() < 1e-3


@pytest.mark.parametrize("model, prompts, rounds", [("tiny", 16, 3), ("small-random", 4, 1)])
def test_speed_own_loop_vs_generate(model, prompts, rounds, bench_record):
    loaded = load_musicgen(model)
    settings = GenerationSettings(seconds=0.5)
    texts = load_concepts().prompts("guitar", prompts)
    engines = {"generate": MusicgenRunner(loaded, settings, engine="generate"),
               "own": MusicgenRunner(loaded, settings, engine="own", cache="dynamic"),
               "own_static": MusicgenRunner(loaded, settings, engine="own", cache="static")}
    clips, seconds = {}, {name: [] for name in engines}
    for name, runner in engines.items():  # warm-up, and the clips to compare
        clips[name] = runner.generate(texts)
    for _ in range(rounds):  # alternate, so that a busy neighbour slows every engine alike
        for name, runner in engines.items():
            start = time.perf_counter()
            runner.generate(texts)
            seconds[name].append(time.perf_counter() - start)
    rate = {name: prompts / min(times) for name, times in seconds.items()}
    values = dict(own_vs_generate=rate["own"] / rate["generate"],
                  own_static_vs_generate=rate["own_static"] / rate["generate"],
                  **{f"{name}_clips_per_s": r for name, r in rate.items()}, threads=torch.get_num_threads())
    bench_record(f"speed-engine-{model}-cpu", **values)
    assert torch.equal(clips["own"], clips["generate"])  # the dynamic cache repeats generate's arithmetic exactly


@pytest.mark.gpu
@pytest.mark.parametrize("size", ["small", "medium", "large"])
def test_speed_gpu(size, tmp_path, bench_record):
    """A batch of intervention rows on the GPU, timed by ``mgbench.perf.benchmark`` (warm-ups, 5 rounds, CUDA
    events): clips/s median and spread, a step's ms, peak memory and the fraction of the hardware limit."""
    # speed does not depend on the weights' values: without the checkpoint, its architecture with random weights
    model = size if is_available(size) else f"{size}-random"
    session = _sweep_session(model, "cuda", prompts=8, seconds=4.0, tmp_path=tmp_path)
    grid = intervention_grid(CONCEPTS, ["replace"], all_sites(session.musicgen.num_layers, ["mlp"]), 8)
    grid = grid.iloc[: session.batch_size]
    rows = InterventionRows(session)
    torch.cuda.reset_peak_memory_stats()
    times = interleaved({"sweep": lambda: rows(grid)}, torch.device("cuda"))
    stats = summary(times, len(grid), session.runner.max_new_tokens).loc["sweep"]
    gpu = gpu_kind(torch.cuda.get_device_name())
    limit = hardware_limit(SHAPES[size], 4.0, gpu, batch=len(grid)) if gpu else float("nan")
    bench_record(f"speed-{model}-gpu", clips_per_s=stats.clips_per_s_median, clips_per_s_min=stats.clips_per_s_min,
                 clips_per_s_max=stats.clips_per_s_max, step_ms=stats.step_ms_median, batch_size=len(grid),
                 peak_gib=torch.cuda.max_memory_allocated() / 2**30, hardware_limit_clips_per_s=limit,
                 fraction_of_limit=stats.clips_per_s_median / limit)


@pytest.mark.parametrize("model", ["tiny", "small-random"])
def test_speed_step_split(model, bench_record):
    """Where a step's time goes on this CPU (eager, 16 prompts of 1 s): decoder, edit hooks, sampling per step;
    EnCodec and the classifier per clip (``model/profile.py``); recorded, never asserted."""
    loaded = load_musicgen(model)
    runner = MusicgenRunner(loaded, GenerationSettings(seconds=1.0))
    split = step_split(runner, load_concepts().prompts("guitar", 16), load_classifier("tiny"))
    per_clip_steps = runner.max_new_tokens * (split["decoder_ms"] + split["sampling_ms"]) / 16
    bench_record(f"speed-split-{model}-cpu", **split, hooks_share=split["hooks_ms"] / split["decoder_ms"],
                 decoder_share=runner.max_new_tokens * split["decoder_ms"] / 16
                 / (per_clip_steps + split["codec_ms"] + split["classifier_ms"]), threads=torch.get_num_threads())
