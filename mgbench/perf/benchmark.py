"""How to time generation so that the numbers can carry a claim: one method for every benchmark on a device.

``bench/test_speed.py --gpu`` and ``bench/gpu_check.py`` both time through ``interleaved``:

- every configuration is called ``warmups`` times (at least 2) before any timing: the first call compiles its graphs
  and records its CUDA graphs, the second shows they are reused;
- then ``rounds`` (at least 5) rounds, each calling every configuration once, in an order rotated from round to round
  (a configuration does not always follow the same one: no ordering effect);
- each call is timed whole and around its decode loops (``decode.LOOP_CLOCK``), with CUDA events on a GPU (the
  device's own time line) and ``perf_counter`` on the CPU, the device synchronised around the call;
- a tidy row per call; ``summary`` gives each configuration's median, minimum and maximum, and ``ratio`` compares two
  configurations round by round (the same moment of the machine), with the median and spread of those ratios.

``graph_counts`` reports how many graphs dynamo compiled and how many CUDA graphs were recorded or skipped, so a
benchmark can show that its timed calls compiled and recorded nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import pandas as pd
import torch
from torch._dynamo.utils import counters

from ..engine.decode import LOOP_CLOCK

MIN_WARMUPS, MIN_ROUNDS = 2, 5


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Spans:
    """Time spans on ``device``: CUDA event pairs on a GPU, ``perf_counter`` pairs on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list[tuple] = []

    @contextlib.contextmanager
    def span(self) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
        else:
            start = time.perf_counter()
            yield
            end = time.perf_counter()
        self.marks.append((start, end))

    def total_ms(self) -> float:
        """The spans' summed milliseconds (after the device finished them)."""
        if self.cuda:
            return sum(start.elapsed_time(end) for start, end in self.marks)
        return sum(1e3 * (end - start) for start, end in self.marks)


def timed_call(fn: Callable[[], object], device: torch.device) -> tuple[object, float, float]:
    """``fn()``'s result, the call's milliseconds and those of the decode loops inside it."""
    whole, loops = Spans(device), Spans(device)
    sync(device)
    token = LOOP_CLOCK.set(loops.span)
    try:
        with whole.span():
            result = fn()
    finally:
        LOOP_CLOCK.reset(token)
    sync(device)
    return result, whole.total_ms(), loops.total_ms()


def interleaved(calls: "dict[str, Callable[[], object]]", device: torch.device, warmups: int = MIN_WARMUPS,
                rounds: int = MIN_ROUNDS) -> pd.DataFrame:
    """Time each of ``calls`` (name -> a call) ``rounds`` times, interleaved, after ``warmups`` calls each: one row per
    timed call (``config``, ``round``, ``position`` in its round, ``call_ms``, ``loop_ms``)."""
    if warmups < MIN_WARMUPS or rounds < MIN_ROUNDS:
        raise ValueError(f"a sound timing needs at least {MIN_WARMUPS} warm-ups and {MIN_ROUNDS} rounds, "
                         f"not {warmups} and {rounds}")
    for fn in calls.values():
        for _ in range(warmups):
            fn()
    names, rows = list(calls), []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for position, name in enumerate(order):
            _, call_ms, loop_ms = timed_call(calls[name], device)
            rows.append(dict(config=name, round=r, position=position, call_ms=call_ms, loop_ms=loop_ms))
    return pd.DataFrame(rows)


def summary(times: pd.DataFrame, clips: int, steps: int) -> pd.DataFrame:
    """Per configuration: clips/s (median, min, max over the rounds, ``clips`` per call), the call's and the decode
    loop's median milliseconds, and a step's (``steps`` per loop) median milliseconds."""
    rate = times.assign(clips_per_s=1e3 * clips / times.call_ms, loop_ms=times.loop_ms.where(times.loop_ms > 0))
    grouped = rate.groupby("config", sort=False)  # a call without mgbench's loop (``generate``) has no loop time
    return pd.DataFrame({"clips_per_s_median": grouped.clips_per_s.median(),
                         "clips_per_s_min": grouped.clips_per_s.min(), "clips_per_s_max": grouped.clips_per_s.max(),
                         "call_ms_median": grouped.call_ms.median(), "loop_ms_median": grouped.loop_ms.median(),
                         "step_ms_median": grouped.loop_ms.median() / steps, "rounds": grouped.size()})


def ratio(times: pd.DataFrame, numerator: str, denominator: str, column: str = "call_ms") -> dict[str, float]:
    """``denominator``'s time over ``numerator``'s (how many times faster ``numerator`` is), per round: median, min
    and max of the per-round ratios."""
    wide = times.pivot(index="round", columns="config", values=column)
    per_round = wide[denominator] / wide[numerator]
    return {"median": float(per_round.median()), "min": float(per_round.min()), "max": float(per_round.max())}


def watch_recordings() -> None:
    """Count CUDA graph recordings from now on (``graph_counts``): each new node of torch's CUDA graph trees is one."""
    from torch._inductor import cudagraph_trees

    node = cudagraph_trees.CUDAGraphNode
    if getattr(node, "_mgbench_counted", False):
        return
    record = node.__init__

    def counted(self, *args, **kwargs):
        counters["mgbench"]["cudagraph_recordings"] += 1
        record(self, *args, **kwargs)

    node.__init__, node._mgbench_counted = counted, True


def graph_counts() -> dict[str, int]:
    """Graphs dynamo compiled, CUDA graphs recorded (after ``watch_recordings``) and skipped, so far."""
    return {"graphs": counters["stats"]["unique_graphs"],
            "cudagraph_recordings": counters["mgbench"]["cudagraph_recordings"],
            "cudagraph_skips": counters["inductor"]["cudagraph_skips"]}
