"""The prepared GPU check (issue 28), run by ``bench/gpu_check.sh``: a CSV row per measurement, written as it finishes.

In order, each part only while the time budget lasts (a part still running when the budget and its grace are spent
is stopped and its row says so); every timing through ``mgbench.perf.benchmark`` (warm-ups first, rounds interleaved,
CUDA events, median and spread):
1. ``attention``: one query row per decoder row (rows 512 and 1024) against KV caches of 54 and 204 frames: SDPA with
   each backend over the filled part, SDPA over a 204-frame static cache with the rest masked (the loop before issue
   28), FlexAttention; microseconds and GB/s (``bench/gpu_micro.py``).
2. ``codec``: EnCodec in float32 and bfloat16 (eager; compiled it runs in the ``levers`` part): ms per second of
   audio, SNR of bfloat16 against float32.
3. ``levers``: small-random, bfloat16, batch 256, 4 s clips, CUDA graphs: today's loop, then each lever added
   (``mgbench.engine.levers``): clips/s (median, min, max), a step's ms (CUDA events around the decode loop), the
   fraction of ``mgbench.perf.cost``'s limit, the KV cache read against the limit's (``cost.kv_read_ratio``), graphs
   compiled and CUDA graphs recorded while warming up (all configurations) and while timed (must be 0), the fraction
   of clips whose codes equal today's (1 on the CPU in float64, tested; in bfloat16 other kernels may flip tokens).
4. ``correctness``: 32 prompts alone and inside a batch of 256 (fraction of clips with identical codes; eager at its
   own batch size, and with fixed shapes); a null edit (adding 0 on every prompt) compiled and eager (fraction of
   clips unchanged); compiled against eager codes (fraction identical, first frame that differs).
5. ``done_when``: batch 512, every lever, against ``generate`` in the same rounds: clips/s, fraction of the limit,
   own/generate, and the hook overhead of an edit on every prompt (same graph), with their spread.
``--parts profile`` profiles one generation with every lever instead (``profile.txt``).
``--device cpu`` is a dry run of the same code: the tiny model, short clips, dynamo's eager backend, small shapes.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from gpu_micro import attention_rows, codec_rows

from mgbench.concepts.concept_set import load_concepts
from mgbench.engine import runner as runner_module
from mgbench.engine.hooks import ADD, RowEdit
from mgbench.engine.levers import NO_LEVERS, Levers
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.engine.sites import Site
from mgbench.perf.benchmark import graph_counts, interleaved, ratio, summary, watch_recordings
from mgbench.perf.cost import gpu_kind, hardware_limit, kv_read_ratio
from mgbench.perf.profile import spread_edits
from mgbench.zoo.architectures import SHAPES
from mgbench.zoo.loading import load_musicgen


@dataclass(frozen=True)
class Plan:
    """The sizes of one check: the GPU's, or the CPU's dry run."""

    model: str
    dtype: torch.dtype
    batch: int
    big_batch: int
    alone: int
    seconds: float
    compile_mode: str
    compile_backend: "str | None"  # None: inductor; "eager": dynamo's tracing only (the CPU's dry run)
    attention_rows: tuple[int, ...]
    attention_lengths: tuple[int, ...]
    codec_clips: int
    fill: int  # frames per bucket of the filled-part attention (on the GPU 2 buckets at 4 s: 2 graphs, not 4)


GPU = Plan("small-random", torch.bfloat16, 256, 512, 32, 4.0, "reduce-overhead", None, (512, 1024), (54, 204), 64, 102)
DRY = Plan("tiny", torch.float32, 4, 8, 2, 0.3, "default", "eager", (8, 16), (6, 14), 2, 4)
#: today's loop, then each lever added to the ones before
LADDER = [("today", {}), ("+filled_attention", {"filled_attention": None}), ("+conditional_cross",
          {"conditional_cross": True}), ("+codec_bfloat16", {"codec_bfloat16": True}),
          ("+audio_on_device", {"audio_on_device": True}), ("+sampler_in_graph", {"sampler_in_graph": True})]


class Deadline(Exception):
    """The budget and its grace are spent: the running part is stopped."""


def _deadline(signum, frame) -> None:
    raise Deadline()


class Bench:
    """The plan, the device, the model (loaded once), the codes of the last generation, rows written as they come."""

    def __init__(self, plan: Plan, device: str, out: Path, budget_s: float):
        self.plan, self.device, self.out, self.budget_s = plan, torch.device(device), out, budget_s
        self.begin, self.rows, self.codes = time.perf_counter(), [], None
        self.settings = GenerationSettings(seconds=plan.seconds)
        self.loaded = load_musicgen(plan.model, device=device, dtype=plan.dtype)
        self.steps = MusicgenRunner(self.loaded, self.settings).max_new_tokens
        self.ladder = [(name, Levers(**{k: plan.fill if v is None else v for k, v in cumulative.items()}))
                       for name, cumulative in _cumulative(LADDER)]
        for name in ("fixed_codes", "decode_codes"):  # keep each generation's codes: the checks compare codes
            setattr(runner_module, name, self._recorded(getattr(runner_module, name)))

    def _recorded(self, produce):
        def recorded(*args, **kwargs):
            self.codes = produce(*args, **kwargs)
            return self.codes

        return recorded

    def left(self) -> bool:
        return time.perf_counter() - self.begin < self.budget_s

    def write(self, **row) -> None:
        self.rows.append(dict(elapsed_s=round(time.perf_counter() - self.begin, 1), **row))
        print(self.rows[-1], flush=True)
        with open(self.out / "gpu_check.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, list(dict.fromkeys(k for r in self.rows for k in r)))
            writer.writeheader()
            writer.writerows(self.rows)

    def runner(self, levers: Levers = NO_LEVERS, batch: "int | None" = 0, compiled: bool = True,
               **kwargs) -> MusicgenRunner:
        """A runner of the model (``batch``: the size batches are padded to; 0: the plan's, None: no padding)."""
        return MusicgenRunner(self.loaded, self.settings, compile_mode=self.plan.compile_mode if compiled else None,
                              cache="static" if compiled else "dynamic", levers=levers,
                              batch_size=self.plan.batch if batch == 0 else batch, **kwargs)

    def codes_of(self, runner: MusicgenRunner, prompts: list[str], **kwargs) -> torch.Tensor:
        runner.generate(prompts, **kwargs)
        return self.codes[:len(prompts)].cpu()

    def limit(self, batch: int) -> "float | None":
        gpu, size = (gpu_kind(torch.cuda.get_device_name()) if self.device.type == "cuda" else None,
                     self.plan.model.removesuffix("-random"))
        return hardware_limit(SHAPES[size], self.plan.seconds, gpu, batch) if gpu and size in SHAPES else None


def _cumulative(ladder):
    levers: dict = {}
    for name, added in ladder:
        levers = {**levers, **added}
        yield name, levers


def prompts(batch: int) -> list[str]:
    """``batch`` prompts of several concepts (throughput needs no distinct ones; repeated where they run out)."""
    texts = [p for c in ("guitar", "jazz", "piano", "edm") for p in load_concepts().prompts(c)]
    return [texts[i % len(texts)] for i in range(batch)]


def attention(bench: Bench) -> None:
    config, plan = bench.loaded.model.decoder.config, bench.plan
    heads = config.num_attention_heads
    for rows in plan.attention_rows:
        for length in plan.attention_lengths:
            for row in attention_rows(rows, heads, config.hidden_size // heads, length, max(plan.attention_lengths),
                                      plan.dtype, bench.device):
                bench.write(part="attention", dtype=str(plan.dtype), **row)


def codec(bench: Bench) -> None:
    loaded, plan = bench.loaded, bench.plan
    for row in codec_rows(loaded.model.audio_encoder, plan.codec_clips, loaded.num_codebooks,
                          round(plan.seconds * loaded.frame_rate), loaded.frame_rate, bench.device):
        bench.write(part="codec", **row)


def levers(bench: Bench) -> None:
    """Today's loop and each lever added, interleaved; graphs recorded while warming up and while timed."""
    plan, texts = bench.plan, prompts(bench.plan.batch)
    runners = {name: bench.runner(lv) for name, lv in bench.ladder}
    before, codes = graph_counts(), {}
    for name, runner in runners.items():  # the first warm-up, apart: it compiles and records
        codes[name] = bench.codes_of(runner, texts)
    warm = graph_counts()
    times = interleaved({name: (lambda r=r: r.generate(texts)) for name, r in runners.items()}, bench.device)
    timed = graph_counts()
    limit, shape, bucket = bench.limit(plan.batch), SHAPES[plan.model.removesuffix("-random")], dict(bench.ladder)
    for name, stats in summary(times, plan.batch, bench.steps).iterrows():
        bench.write(part="levers", config=name, batch=plan.batch, seconds=plan.seconds, **stats.to_dict(),
                    kv_read_ratio=kv_read_ratio(shape, plan.seconds, bucket[name].filled_attention),
                    fraction_of_limit=None if limit is None else stats.clips_per_s_median / limit,
                    identical_clips_vs_today=_identical(codes[name], codes["today"]),
                    graphs_warmup_all_configs=warm["graphs"] - before["graphs"],
                    recordings_warmup_all_configs=warm["cudagraph_recordings"] - before["cudagraph_recordings"],
                    recordings_timed=timed["cudagraph_recordings"] - warm["cudagraph_recordings"],
                    graphs_timed=timed["graphs"] - warm["graphs"], cudagraph_skips=timed["cudagraph_skips"],
                    vs_today=ratio(times, name, "today")["median"])


def _identical(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a == b).flatten(1).all(dim=1).float().mean())


def correctness(bench: Bench) -> None:
    """A prompt's codes alone and in a batch; a null edit; compiled against eager codes."""
    plan, texts = bench.plan, prompts(bench.plan.batch)
    few = texts[:plan.alone]
    for name, make in (("eager", lambda: bench.runner(compiled=False, batch=None)),
                       ("eager_fixed_shapes", lambda: bench.runner(compiled=False, fixed_shapes=True)),
                       ("compiled", lambda: bench.runner())):
        runner = make()
        inside = bench.codes_of(runner, texts)[:plan.alone]
        bench.write(part="correctness", check="alone_vs_inside_batch", mode=name, alone=plan.alone, batch=plan.batch,
                    identical_clips=_identical(bench.codes_of(runner, few), inside))
    hidden = bench.loaded.model.decoder.config.hidden_size
    null = [RowEdit(Site(i % bench.loaded.num_layers, "mlp"), ADD, torch.zeros(hidden)) for i in range(len(texts))]
    codes = {}
    for name, runner in (("compiled", bench.runner()), ("eager_fixed_shapes", bench.runner(compiled=False,
                                                                                          fixed_shapes=True))):
        codes[name] = bench.codes_of(runner, texts)
        bench.write(part="correctness", check="null_edit", mode=name, batch=plan.batch,
                    identical_clips=_identical(bench.codes_of(runner, texts, edits=null), codes[name]))
    differ = (codes["compiled"] != codes["eager_fixed_shapes"]).any(dim=1)  # (clips, frames)
    first = torch.where(differ.any(dim=1), differ.float().argmax(dim=1), torch.full_like(differ[:, 0], -1,
                                                                                          dtype=torch.long))
    diverged = first[first >= 0].float()
    bench.write(part="correctness", check="compiled_vs_eager", batch=plan.batch,
                identical_clips=_identical(codes["compiled"], codes["eager_fixed_shapes"]),
                first_divergence_median=float(diverged.median()) if len(diverged) else None,
                first_divergence_min=float(diverged.min()) if len(diverged) else None, frames=differ.shape[1])


def done_when(bench: Bench) -> None:
    """The big batch with every lever, against transformers' generate, plain and edited, interleaved."""
    plan, texts = bench.plan, prompts(bench.plan.big_batch)
    fast = bench.runner(bench.ladder[-1][1], batch=plan.big_batch)
    generate = bench.runner(compiled=False, batch=None, engine="generate")
    edits = spread_edits(bench.loaded, plan.big_batch)
    calls = {"generate": lambda: generate.generate(texts), "levers": lambda: fast.generate(texts),
             "levers_edited": lambda: fast.generate(texts, edits=edits)}
    fast.generate(texts)  # compiles and records apart from the timed warm-ups
    times = interleaved(calls, bench.device)
    limit = bench.limit(plan.big_batch)
    stats = summary(times, plan.big_batch, bench.steps)
    for name in calls:
        row = stats.loc[name].to_dict()
        bench.write(part="done_when", config=name, batch=plan.big_batch, seconds=plan.seconds, **row,
                    fraction_of_limit=None if limit is None else row["clips_per_s_median"] / limit)
    vs_generate, overhead = ratio(times, "levers", "generate"), ratio(times, "levers", "levers_edited")
    bench.write(part="done_when", config="ratios", batch=plan.big_batch,
                own_vs_generate=vs_generate["median"], own_vs_generate_min=vs_generate["min"],
                own_vs_generate_max=vs_generate["max"], hook_overhead=overhead["median"] - 1,
                hook_overhead_min=overhead["min"] - 1, hook_overhead_max=overhead["max"] - 1)


def profile(bench: Bench) -> None:
    """One generation with every lever under ``torch.profiler`` after warm-ups (not in the default parts: run it with
    ``--parts profile``): its wall time against the device's busy time, and the operations that take the host's and
    the device's time (``profile.txt``)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiled

    runner, texts = bench.runner(bench.ladder[-1][1]), prompts(bench.plan.batch)
    interleaved({"levers": lambda: runner.generate(texts)}, bench.device)  # compiles, records, warms up
    cuda = bench.device.type == "cuda"
    start = time.perf_counter()
    with profiled(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        runner.generate(texts)
        torch.cuda.synchronize() if cuda else None
    wall_ms = 1e3 * (time.perf_counter() - start)
    events = prof.key_averages()
    # kernels are counted once, under the host operation that launched them (a graph replay holds its kernels)
    busy_ms = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CPU) / 1e3
    sorts = ("self_device_time_total", "cpu_time_total") if cuda else ("self_cpu_time_total",)
    (bench.out / "profile.txt").write_text("\n\n".join(events.table(sort_by=key, row_limit=25) for key in sorts))
    bench.write(part="profile", batch=bench.plan.batch, seconds=bench.plan.seconds, wall_ms=wall_ms,
                device_busy_ms=busy_ms, device_busy_share=busy_ms / wall_ms)


PARTS = [("attention", attention), ("codec", codec), ("levers", levers), ("correctness", correctness),
         ("done_when", done_when), ("profile", profile)]  # in order of priority, while the budget lasts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="results/gpu-check", help="the CSV's folder")
    p.add_argument("--budget-s", type=float, default=400, help="start no part after this many seconds")
    p.add_argument("--grace-s", type=float, default=40, help="then stop the running part after this many more")
    p.add_argument("--parts", default=",".join(name for name, _ in PARTS[:-1]),
                   help="comma list of parts to run (default: all but profile)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cuda = args.device.startswith("cuda")
    plan = GPU if cuda else DRY
    if plan.compile_backend is not None:  # the dry run: dynamo's tracing and guards, without inductor's minutes
        real = torch.compile
        torch.compile = lambda fn=None, **kw: real(fn, **{**kw, "backend": plan.compile_backend, "mode": None})
    watch_recordings()
    signal.signal(signal.SIGALRM, _deadline)
    signal.alarm(int(args.budget_s + args.grace_s))  # a part still running then is stopped, its row says so
    bench = Bench(plan, args.device, out, args.budget_s)
    bench.write(part="machine", device=torch.cuda.get_device_name() if cuda else "cpu", torch=torch.__version__,
                transformers=__import__("transformers").__version__, model=plan.model, dtype=str(plan.dtype),
                limit_clips_per_s=bench.limit(plan.big_batch), threads=torch.get_num_threads())
    for name, part in PARTS:
        if name not in args.parts.split(","):
            continue
        if not bench.left():
            bench.write(part="skipped", note=f"time budget: {name} and after")
            break
        try:
            with torch.no_grad():
                part(bench)
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
