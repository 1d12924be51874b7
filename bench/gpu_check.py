"""The prepared GPU check's measurements (run by ``bench/gpu_check.sh``): one CSV row per measurement.

In order of priority (each part starts only while the time budget lasts, a part still running when the budget and
its grace are spent is stopped; rows are written as they finish):
1. ``tiny`` on the device against the CPU (float32, own loop, each KV cache): the largest audio difference, the syncs
   that ``torch.cuda.set_sync_debug_mode("warn")`` reports, with where they come from.
2. Throughput, eager modes first and compiled ones (minutes of compiling on first use) after 3 and 4: clips/s of
   transformers' ``generate`` and of the own loop eager (dynamic and static cache), compiled and with CUDA graphs
   (``reduce-overhead``), plain and with an edit on every prompt (``edits``: the hooks' overhead), peak memory, the
   fraction of the hardware limit (``docs/performance.md``), the ratio to ``generate`` at the same size, dtype and
   batch, and for compiled modes the clips equal to eager's.
3. The toy world's intervention effects per site on the device in float32, bfloat16 and CUDA graphs against
   the CPU's float32: correlation, largest difference and the planted site's effect.
4. The per-step split (``mgbench/model/profile.py``) of small-random on the device.
``--device cpu`` is a dry run of the same code with tiny models and a short plan.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import time
import warnings
from collections import Counter
from pathlib import Path

import torch

from mgbench.classify.loading import load_classifier
from mgbench.concepts.concept_set import load_concepts
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.experiments.pipeline import run_selection
from mgbench.experiments.selection import Selection
from mgbench.experiments.session import RunConfig, Session
from mgbench.perf.cost import gpu_kind, hardware_limit
from mgbench.perf.profile import spread_edits, step_split, sync
from mgbench.zoo.architectures import SHAPES
from mgbench.zoo.loading import LoadedMusicgen, load_musicgen

#: (engine, KV cache, compile mode) per measured mode
MODES = {"generate": ("generate", "dynamic", None), "eager": ("own", "dynamic", None),
         "eager_static": ("own", "static", None), "compiled": ("own", "static", "default"),
         "cudagraphs": ("own", "static", "reduce-overhead")}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
#: (model, dtype, batch, mode, edits) in priority order: the eager measurements (no compile time) first
EAGER_PLAN = [("small-random", "float32", 64, mode, edits) for mode, edits in
              [("generate", False), ("eager", False), ("eager", True), ("eager_static", False)]] + \
             [("small-random", "bfloat16", 256, mode, edits) for mode, edits in
              [("generate", False), ("eager", False), ("eager", True)]]
#: after the toy world: compiling a real-size step takes minutes on first use (one graph per batch size)
COMPILED_PLAN = [("small-random", "bfloat16", 256, "cudagraphs", edits) for edits in (False, True)] + \
                [("small-random", "float32", 64, mode, edits) for mode in ("cudagraphs", "compiled")
                 for edits in (False, True)] + \
                [("medium-random", "bfloat16", 64, mode, False) for mode in ("generate", "eager", "cudagraphs")]
DRY_PLAN = [("tiny", "float32", 4, mode, edits) for mode, edits in
            [("generate", False), ("eager", False), ("eager", True), ("compiled", True)]]
#: the toy world's configurations compared with the CPU's float32: (device, dtype, compile mode)
TOY_RUNS = [("cuda", "float32", None), ("cuda", "bfloat16", None), ("cuda", "float32", "reduce-overhead")]
PLANTED = ("cross_attn", 2)  # docs/toy-world.md: the toy decoder reads the concept at L2's cross-attention


class Deadline(Exception):
    """The budget and its grace are spent: the running part is stopped."""


def _deadline(signum, frame) -> None:
    raise Deadline()


class Bench:
    """Models loaded once per (name, dtype), rows written to ``out`` as they come, a time budget."""

    def __init__(self, device: str, out: Path, work: Path, budget_s: float, seconds: float):
        self.device, self.out, self.work, self.budget_s = device, out, work, budget_s
        self.settings = GenerationSettings(seconds=seconds)
        self.begin, self.rows, self.models, self.audio = time.perf_counter(), [], {}, {}

    def left(self) -> bool:
        return time.perf_counter() - self.begin < self.budget_s

    def write(self, **row) -> None:
        self.rows.append(dict(elapsed_s=round(time.perf_counter() - self.begin, 1), **row))
        print(self.rows[-1], flush=True)
        with open(self.out / "gpu_check.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, list(dict.fromkeys(k for r in self.rows for k in r)))
            writer.writeheader()
            writer.writerows(self.rows)

    def model(self, name: str, dtype: str) -> LoadedMusicgen:
        if (name, dtype) not in self.models:
            self.models[(name, dtype)] = load_musicgen(name, device=self.device, dtype=DTYPES[dtype])
        return self.models[(name, dtype)]


def bench_prompts(batch: int) -> list[str]:
    """``batch`` guitar prompts, repeated where the concept has fewer (throughput needs no distinct ones)."""
    prompts = load_concepts().prompts("guitar")
    return [prompts[i % len(prompts)] for i in range(batch)]


def device_vs_cpu(bench: Bench) -> None:
    """tiny, float32, own loop, each KV cache: the device's audio against the CPU's, and the syncs of one
    generation with where they come from (``file:line*count``; a source counted once per frame is in the step)."""
    prompts = load_concepts().prompts("jazz", 4)
    cpu = MusicgenRunner(load_musicgen("tiny", dtype=torch.float32), bench.settings).generate(prompts)
    cuda = bench.device.startswith("cuda")
    for mode, cache in (("eager", "dynamic"), ("eager_static", "static")):
        runner = MusicgenRunner(bench.model("tiny", "float32"), bench.settings, cache=cache)
        runner.generate(prompts)  # warm-up: first-call allocations are no per-step syncs
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn") if cuda else None
            try:
                audio = runner.generate(prompts)
            finally:
                torch.cuda.set_sync_debug_mode(0) if cuda else None
        syncs = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in caught
                        if "synchroniz" in str(w.message).lower())
        bench.write(part="device_vs_cpu", model="tiny", dtype="float32", batch=len(prompts), mode=mode,
                    audio_max_diff=float((audio - cpu).abs().max()), frames=runner.max_new_tokens,
                    sync_warnings=sum(syncs.values()),
                    sync_sources=" ".join(f"{source}*{n}" for source, n in sorted(syncs.items())))


def throughput(bench: Bench, model: str, dtype: str, batch: int, mode: str, edits: bool) -> None:
    """Clips/s of one configuration (after a warm-up call that compiles and captures), with its peak memory."""
    engine, cache, compile_mode = MODES[mode]
    loaded = bench.model(model, dtype)
    prompts = bench_prompts(batch)
    runner = MusicgenRunner(loaded, bench.settings, engine=engine, cache=cache, compile_mode=compile_mode)
    kwargs = dict(edits=spread_edits(loaded, batch)) if edits else {}
    if bench.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    runner.generate(prompts, **kwargs)
    warm_s = time.perf_counter() - start
    sync(torch.device(bench.device))
    start = time.perf_counter()
    audio = runner.generate(prompts, **kwargs)
    sync(torch.device(bench.device))
    rate = batch / (time.perf_counter() - start)
    row = dict(part="throughput", model=model, dtype=dtype, batch=batch, mode=mode, edits=edits, clips_per_s=rate,
               first_call_s=warm_s)
    same = lambda m, e: next((r for r in bench.rows if r.get("part") == "throughput" and r["model"] == model  # noqa: E731
                              and r["dtype"] == dtype and r["batch"] == batch and r["mode"] == m
                              and r["edits"] == e and "clips_per_s" in r), None)
    if same("generate", False):
        row["vs_generate"] = rate / same("generate", False)["clips_per_s"]
    if edits and same(mode, False):
        row["hook_overhead"] = same(mode, False)["clips_per_s"] / rate - 1
    reference = bench.audio.get((model, dtype, batch, edits))
    if compile_mode and reference is not None:
        row["clips_equal_vs_eager"] = float(((audio - reference).abs().amax(dim=1) < 1e-3).float().mean())
        row["audio_max_diff_vs_eager"] = float((audio - reference).abs().max())
    elif engine == "own" and cache == "static":
        bench.audio[(model, dtype, batch, edits)] = audio
    elif mode == "eager":
        bench.audio.setdefault((model, dtype, batch, edits), audio)
    if bench.device.startswith("cuda"):
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        gpu, size = gpu_kind(torch.cuda.get_device_name()), model.removesuffix("-random")
        if gpu and size in SHAPES:
            row["fraction_of_limit"] = rate / hardware_limit(SHAPES[size], bench.settings.seconds, gpu, batch)
    bench.write(**row)


def toy_effects(device: str, dtype: str, compile_mode: "str | None", cache: Path):
    """The toy world's mean intervention effect per (technique, component, layer) on three concepts."""
    session = Session(RunConfig(model="toy", device=device, dtype=dtype, prompts=2, compile_mode=compile_mode,
                                generation=GenerationSettings(seconds=1.0), cache=str(cache)))
    tables = run_selection(session, Selection(experiments=("interventions",), concepts=("guitar", "piano", "jazz")))
    return tables["interventions"].groupby(["technique", "component", "layer"]).effect.mean()


def toy_agreement(bench: Bench) -> None:
    """Each ``TOY_RUNS`` configuration's per-site effects against the CPU's float32."""
    reference = toy_effects("cpu", "float32", None, bench.work / "toy-cache")
    for device, dtype, compile_mode in TOY_RUNS if bench.device.startswith("cuda") else [("cpu", "float64", None)]:
        if not bench.left():
            break
        start = time.perf_counter()
        effects = toy_effects(device, dtype, compile_mode, bench.work / "toy-cache")
        planted = effects.xs(PLANTED, level=["component", "layer"])
        bench.write(part="toy_effects", model="toy", dtype=dtype, mode=compile_mode or "eager", device=device,
                    effect_corr_vs_cpu32=float(effects.corr(reference)),
                    effect_max_diff_vs_cpu32=float((effects - reference).abs().max()),
                    planted_effect=float(planted.mean()),
                    planted_effect_cpu32=float(reference.xs(PLANTED, level=["component", "layer"]).mean()),
                    seconds=time.perf_counter() - start)


def split(bench: Bench, model: str) -> None:
    """The per-step split (``mgbench/model/profile.py``) of ``model`` in float32 at batch 64."""
    bench.write(part="split", model=model, dtype="float32", batch=64, **step_split(
        MusicgenRunner(bench.model(model, "float32"), bench.settings), bench_prompts(64),
        load_classifier("tiny", device=bench.device)))


def profile_generation(bench: Bench, model: str, dtype: str, batch: int, mode: str) -> None:
    """One generation under ``torch.profiler`` after a warm-up: its wall time against the device's busy time
    (the sum of the kernels' own time), and the operations that take the host's and the device's time
    (``profile.txt``)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    engine, cache, compile_mode = MODES[mode]
    runner = MusicgenRunner(bench.model(model, dtype), bench.settings, engine=engine, cache=cache,
                            compile_mode=compile_mode)
    prompts, device = bench_prompts(batch), torch.device(bench.device)
    runner.generate(prompts)  # compiles and captures
    sync(device)
    cuda = device.type == "cuda"
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        runner.generate(prompts)
        sync(device)
    wall_ms = 1e3 * (time.perf_counter() - start)
    events = prof.key_averages()
    # kernels are counted once, under the host operation that launched them (a graph replay holds its kernels)
    busy_ms = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CPU) / 1e3
    sorts = ("self_device_time_total", "cpu_time_total") if cuda else ("self_cpu_time_total",)
    (bench.out / "profile.txt").write_text("\n\n".join(events.table(sort_by=key, row_limit=25) for key in sorts))
    bench.write(part="profile", model=model, dtype=dtype, batch=batch, mode=mode, frames=runner.max_new_tokens,
                wall_ms=wall_ms, device_busy_ms=busy_ms, device_busy_share=busy_ms / wall_ms)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="results/gpu-check", help="the CSV's folder")
    p.add_argument("--work", default="results/gpu-check/work", help="a folder for caches (not brought back)")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length of the throughput runs")
    p.add_argument("--budget-s", type=float, default=200, help="start nothing after this many seconds")
    p.add_argument("--grace-s", type=float, default=40, help="then stop the running part after this many more")
    p.add_argument("--profile", action="store_true", help="only profile one generation (CUDA graphs, bfloat16)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.device, out, Path(args.work), args.budget_s, args.seconds)
    cuda = args.device.startswith("cuda")
    bench.write(part="machine", device=torch.cuda.get_device_name() if cuda else "cpu", torch=torch.__version__,
                transformers=__import__("transformers").__version__)
    if args.profile:
        plan = ("small-random", "bfloat16", 256, "cudagraphs") if cuda else ("tiny", "float32", 4, "compiled")
        parts = [("profile", lambda: profile_generation(bench, *plan))]
    else:
        parts = [("device_vs_cpu", lambda: device_vs_cpu(bench))]
        parts += [(f"throughput {c}", lambda c=c: throughput(bench, *c)) for c in (EAGER_PLAN if cuda else DRY_PLAN)]
        parts += [("split", lambda: split(bench, "small-random" if cuda else "tiny"))]
        parts += [("toy_agreement", lambda: toy_agreement(bench))]
        parts += [(f"throughput {c}", lambda c=c: throughput(bench, *c)) for c in (COMPILED_PLAN if cuda else [])]
    signal.signal(signal.SIGALRM, _deadline)
    signal.alarm(int(args.budget_s + args.grace_s))  # a part still running then is stopped, its row says so
    for name, part in parts:
        if not bench.left():
            bench.write(part="skipped", note=f"time budget: {name} and after")
            break
        try:
            part()
        except Deadline:
            bench.write(part="skipped", note=f"deadline during {name}")
            break
        except Exception as e:  # noqa: BLE001 -- one failing part must not lose the others' numbers
            bench.write(part="error", note=name, error=f"{type(e).__name__}: {e}"[:400])
            torch.cuda.empty_cache() if cuda else None
    signal.alarm(0)
    os._exit(0)  # now: compile workers left behind must not hold the process (and the CSV is written)

if __name__ == "__main__":
    main()
