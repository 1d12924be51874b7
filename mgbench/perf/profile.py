"""Where a generation's time goes: the per-step split of mgbench's own decode loop, measured part by part.

``step_split`` times, on one batch and with the device synchronised around each part, the decoder's
forward per step (KV cache, after the first step), the same forward with an edit on every prompt
(the hooks' share is the difference), guidance plus sampling per step, EnCodec per clip and,
optionally, the classifier per clip. The parts are timed apart, so their sum approximates a step
but is no substitute for timing the whole loop (``bench/test_speed.py``, ``bench/gpu_check.py``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

import torch

from ..engine.decode import decode_audio, encode_text, guide, new_cache, presized_positions
from ..engine.hooks import REPLACE, RowEdit, edit_hooks, installed
from ..engine.runner import MusicgenRunner
from ..engine.sites import PAPER_COMPONENTS, all_sites
from ..zoo.loading import LoadedMusicgen
from .benchmark import sync


def timed_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """The median milliseconds of ``repeats`` calls of ``fn`` (after one warm-up call), synchronised."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _decoder_steps_ms(runner: MusicgenRunner, states: torch.Tensor, mask: "torch.Tensor | None", steps: int,
                      hooks: list) -> float:
    """Median ms of one cached decoder forward over ``steps`` consecutive frames (after a first one)."""
    model, rows = runner.loaded.model, states.shape[0]
    start = model.generation_config.decoder_start_token_id
    frame = torch.full((rows * model.decoder.num_codebooks, 1), start, device=states.device)
    cache = new_cache(model, "static", runner.max_new_tokens + 1, states.shape[1])  # a real clip's attention length
    step = lambda: model.decoder(input_ids=frame, encoder_hidden_states=states,  # noqa: E731
                                 encoder_attention_mask=mask, cache=cache, use_cache=True)
    with installed(hooks), presized_positions(model, runner.max_new_tokens + 1):
        return timed_ms(step, states.device, steps)


def spread_edits(loaded: LoadedMusicgen, prompts: int, guided: bool = True, seed: int = 0) -> list[RowEdit]:
    """One random ``replace`` edit per prompt (both halves when ``guided``), the sites spread over the decoder's
    layers and components: a sweep batch's worth of hook work."""
    sites = all_sites(loaded.num_layers, PAPER_COMPONENTS)
    hidden, gen = loaded.model.decoder.config.hidden_size, torch.Generator().manual_seed(seed)
    vector = lambda: torch.randn(hidden, generator=gen)  # noqa: E731
    return [RowEdit(sites[i * len(sites) // prompts % len(sites)], REPLACE, vector(), vector() if guided else None)
            for i in range(prompts)]


@torch.no_grad()
def step_split(runner: MusicgenRunner, prompts: Sequence[str], classifier=None, steps: int = 8) -> dict[str, float]:
    """Milliseconds of each part of generating ``prompts`` with ``runner`` (eager): ``decoder_ms`` and
    ``hooks_ms`` (an edit on every prompt, sites spread over the decoder) per step, ``sampling_ms`` per step
    (guidance and the sampler), ``codec_ms`` and ``classifier_ms`` per clip."""
    loaded, s = runner.loaded, runner.settings
    device, steps = loaded.device, min(steps, runner.max_new_tokens - 1)  # steps + 1 forwards fill the cache
    inputs = loaded.processor(text=list(prompts), padding=True, return_tensors="pt").to(device)
    states, mask = encode_text(loaded.model, inputs["input_ids"], inputs["attention_mask"], runner.guided)
    states = states.to(next(loaded.model.decoder.parameters()).dtype)
    plain = _decoder_steps_ms(runner, states, mask, steps, [])
    edits = spread_edits(loaded, len(prompts), runner.guided)
    edited = _decoder_steps_ms(runner, states, mask, steps,
                               edit_hooks(loaded.decoder_layers, edits, guided=runner.guided))
    rows = len(prompts) * loaded.num_codebooks
    logits = torch.randn(rows * (2 if runner.guided else 1), loaded.model.decoder.config.vocab_size, device=device)
    sampler = runner.sampler(list(prompts))

    def sample():
        scores = guide(logits, s.guidance_scale) if runner.guided else logits
        return scores.argmax(-1) if sampler is None else sampler.sample(scores, 1)

    frames = round(s.seconds * loaded.frame_rate)
    codes = torch.randint(0, loaded.model.decoder.config.vocab_size, (len(prompts), loaded.num_codebooks, frames),
                          device=device)
    split = dict(decoder_ms=plain, hooks_ms=edited - plain, sampling_ms=timed_ms(sample, device, steps),
                 codec_ms=timed_ms(lambda: decode_audio(loaded.model, codes), device, 2) / len(prompts))
    if classifier is not None:
        audio = decode_audio(loaded.model, codes)[:, 0]
        classify = lambda: classifier.logits(audio, loaded.sample_rate)  # noqa: E731
        split["classifier_ms"] = timed_ms(classify, device, 2) / len(prompts)
    return split
