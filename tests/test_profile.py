"""``model/profile.py``: the timer's median and the step split's parts (what they time, not how fast)."""

import itertools

import pytest
import torch

from mgbench.classify.loading import load_classifier
from mgbench.engine.runner import GenerationSettings, MusicgenRunner
from mgbench.perf import profile


def test_timed_ms_is_the_median_of_the_calls_after_a_warm_up(monkeypatch):
    calls = []
    clock = itertools.chain.from_iterable([(0.0, 0.005), (1.0, 1.001), (2.0, 2.003)])  # 5, 1, 3 ms
    monkeypatch.setattr(profile.time, "perf_counter", lambda: next(clock))
    assert profile.timed_ms(lambda: calls.append(1), torch.device("cpu"), 3) == pytest.approx(3.0)
    assert len(calls) == 4


def test_step_split_times_each_part_and_the_hooks_by_difference(tiny, prompts, monkeypatch):
    runner = MusicgenRunner(tiny, GenerationSettings(seconds=0.5))
    seen = []
    real = profile._decoder_steps_ms
    monkeypatch.setattr(profile, "_decoder_steps_ms", lambda *a: seen.append(len(a[-1])) or real(*a))
    split = profile.step_split(runner, prompts, load_classifier("tiny"), steps=3)
    assert set(split) == {"decoder_ms", "hooks_ms", "sampling_ms", "codec_ms", "classifier_ms"}
    assert all(v > 0 for k, v in split.items() if k != "hooks_ms")
    assert seen[0] == 0 and seen[1] > 0  # plain, then with an edit hook per edited site
    assert "classifier_ms" not in profile.step_split(runner, prompts, steps=3)
