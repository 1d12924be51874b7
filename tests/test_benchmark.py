"""The benchmark method (``mgbench/perf/benchmark.py``) that every device timing goes through.

Checked on the CPU, where the same code times with ``perf_counter``: every configuration is warmed up before any
timed call, the order rotates from round to round (each configuration takes every place in a round equally often),
the decode loop's time is a part of the call's, and the per-round ratios and the summary are what an independent
computation gives.
"""

import numpy as np
import pandas as pd
import pytest
import torch

from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.perf.benchmark import interleaved, ratio, summary, timed_call

CPU = torch.device("cpu")


def test_warm_ups_come_first_and_the_order_rotates():
    calls = []
    configs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved(configs, CPU, warmups=2, rounds=6)
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]  # warm-ups, before any timing
    timed = calls[6:]
    assert timed[:3] == ["a", "b", "c"] and timed[3:6] == ["b", "c", "a"] and timed[6:9] == ["c", "a", "b"]
    assert len(times) == 18 and set(times.columns) >= {"config", "round", "position", "call_ms", "loop_ms"}
    assert (times.groupby(["config", "position"]).size() == 2).all()  # every place, equally often
    assert (times.loop_ms == 0).all()  # no decode loop inside these calls


@pytest.mark.parametrize("warmups, rounds", [(1, 5), (2, 4)])
def test_too_few_warm_ups_or_rounds_are_refused(warmups, rounds):
    with pytest.raises(ValueError, match="at least 2 warm-ups and 5 rounds"):
        interleaved({"a": lambda: None}, CPU, warmups=warmups, rounds=rounds)


def test_the_decode_loop_is_timed_inside_the_call(tiny):
    runner = MusicgenRunner(tiny, GenerationSettings(seconds=0.2))
    audio, call_ms, loop_ms = timed_call(lambda: runner.generate(["jazz", "rock"]), CPU)
    assert audio.shape[0] == 2 and 0 < loop_ms < call_ms
    fixed = MusicgenRunner(tiny, GenerationSettings(seconds=0.2), fixed_shapes=True, batch_size=2)
    assert 0 < timed_call(lambda: fixed.generate(["jazz"]), CPU)[2]


def test_ratios_per_round_and_summary():
    gen = np.random.default_rng(0)
    fast, slow = gen.uniform(10, 20, 5), gen.uniform(30, 60, 5)
    times = pd.DataFrame({"config": ["fast"] * 5 + ["slow"] * 5, "round": list(range(5)) * 2,
                          "position": 0, "call_ms": np.r_[fast, slow], "loop_ms": np.r_[fast, slow] / 2})
    got = ratio(times, "fast", "slow")
    per_round = slow / fast
    assert got == pytest.approx({"median": np.median(per_round), "min": per_round.min(), "max": per_round.max()})
    stats = summary(times, clips=8, steps=4).loc["fast"]
    assert stats.clips_per_s_median == pytest.approx(np.median(8e3 / fast))
    assert stats.clips_per_s_min == pytest.approx((8e3 / fast).min())
    assert stats.step_ms_median == pytest.approx(np.median(fast / 2) / 4) and stats.rounds == 5
