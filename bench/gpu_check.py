"""The prepared GPU check's measurements (run by ``bench/gpu_check.sh``): one CSV row per configuration.

1. ``tiny`` on the device against the CPU (float32, own loop): the fraction of equal codes, the largest audio
   difference, and how many synchronising calls ``torch.cuda.set_sync_debug_mode("warn")`` reports in the loop.
2. For each size, dtype and batch: clips/s of transformers' ``generate`` and of the own loop eager (dynamic and
   static cache), compiled and with CUDA graphs (``reduce-overhead``), peak memory, the fraction of the hardware
   limit (``docs/performance.md``) and, for half dtypes, the fraction of codes equal to float32's.
Configurations start only while the time budget lasts, so the script ends in time on any card; rows are
written as they finish. ``--device cpu`` is a dry run of the same code (tiny only, eager only).
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

import torch

from mgbench.concepts.concept_set import load_concepts
from mgbench.model.architectures import SHAPES
from mgbench.model.cost import gpu_kind, hardware_limit
from mgbench.model.loading import load_musicgen
from mgbench.model.runner import GenerationSettings, MusicgenRunner

#: (engine, KV cache, compile mode) per measured mode
MODES = {"generate": ("generate", "dynamic", None), "eager": ("own", "dynamic", None),
         "eager_static": ("own", "static", None), "compiled": ("own", "static", "default"),
         "cudagraphs": ("own", "static", "reduce-overhead")}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(runner: MusicgenRunner, prompts: list[str], device: str) -> tuple[torch.Tensor, float]:
    runner.generate(prompts)  # warm-up: compiles, captures graphs, allocates
    _sync(device)
    start = time.perf_counter()
    audio = runner.generate(prompts)
    _sync(device)
    return audio, time.perf_counter() - start


def device_vs_cpu(device: str, prompts: list[str], settings: GenerationSettings) -> dict:
    """tiny, float32, own loop: the device's codes and audio against the CPU's, and the syncs inside the loop."""
    cpu = MusicgenRunner(load_musicgen("tiny", dtype=torch.float32), settings).generate(prompts)
    runner = MusicgenRunner(load_musicgen("tiny", device=device, dtype=torch.float32), settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if device.startswith("cuda"):
            torch.cuda.set_sync_debug_mode("warn")
        try:
            audio = runner.generate(prompts)
        finally:
            if device.startswith("cuda"):
                torch.cuda.set_sync_debug_mode(0)
    syncs = sum("synchroniz" in str(w.message).lower() for w in caught)
    return dict(model="tiny", mode="device_vs_cpu", audio_max_diff=float((audio - cpu).abs().max()),
                sync_warnings=syncs)


def throughput(model: str, device: str, dtype: str, batch: int, mode: str, settings: GenerationSettings,
               reference: "dict[tuple, torch.Tensor]") -> dict:
    """Clips/s of one configuration, with its peak memory and (half dtypes) its agreement with float32."""
    engine, cache, compile_mode = MODES[mode]
    loaded = load_musicgen(model, device=device, dtype=DTYPES[dtype])
    prompts = load_concepts().prompts("guitar", batch)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    runner = MusicgenRunner(loaded, settings, engine=engine, cache=cache, compile_mode=compile_mode)
    audio, seconds = _timed(runner, prompts, device)
    row = dict(model=model, dtype=dtype, batch=batch, mode=mode, clips_per_s=batch / seconds)
    key = (model, batch, mode)
    if dtype == "float32":
        reference[key] = audio
    elif key in reference:
        row["audio_corr_vs_float32"] = float(torch.corrcoef(torch.stack([audio.flatten(), reference[key].flatten()]))[0, 1])
    if device.startswith("cuda"):
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        gpu = gpu_kind(torch.cuda.get_device_name())
        size = model.removesuffix("-random")
        if gpu and size in SHAPES:
            row["fraction_of_limit"] = row["clips_per_s"] / hardware_limit(SHAPES[size], settings.seconds, gpu, batch)
    return row


def _write(rows: list[dict], path: Path) -> None:
    print(rows[-1], flush=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="results/gpu-check")
    p.add_argument("--models", default="small-random,medium-random")
    p.add_argument("--batches", default="16,128")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--budget-s", type=float, default=360, help="start no configuration after this many seconds")
    args = p.parse_args()
    settings = GenerationSettings(seconds=args.seconds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    begin, reference = time.perf_counter(), {}
    rows = [dict(device=torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                 **device_vs_cpu(args.device, load_concepts().prompts("jazz", 4), settings))]
    _write(rows, out / "gpu_check.csv")
    configs = [(m, d, int(b), mode) for m in args.models.split(",") for d in args.dtypes.split(",")
               for b in args.batches.split(",") for mode in args.modes.split(",")]
    for model, dtype, batch, mode in configs:
        if time.perf_counter() - begin > args.budget_s:
            rows.append(dict(model=model, dtype=dtype, batch=batch, mode=mode, skipped="time budget"))
            continue
        try:
            rows.append(throughput(model, args.device, dtype, batch, mode, settings, reference))
        except Exception as e:  # noqa: BLE001 -- one failing configuration must not lose the others' numbers
            rows.append(dict(model=model, dtype=dtype, batch=batch, mode=mode, error=f"{type(e).__name__}: {e}"[:300]))
        _write(rows, out / "gpu_check.csv")


if __name__ == "__main__":
    main()
