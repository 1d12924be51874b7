"""The model runner: prompts (plus optional per-row edits, captures or a decoder cut) -> audio."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from .decode import decode_audio, decode_codes, greedy
from .hooks import Capture, RowEdit, cut_decoder, edit_hooks, installed
from .loading import LoadedMusicgen
from .sampling import CommonNoiseSampler, SamplerLastList, prompt_key

#: ``own``: mgbench's decode loop (``decode.py``, one decoder forward per frame); ``generate``: transformers'.
#: Both give the same codes (``tests/test_decode.py``), so the engine is no part of any cache key.
ENGINES = ("own", "generate")


@dataclass(frozen=True)
class GenerationSettings:
    """How clips are generated. Defaults: the paper's (4 s, MusicGen's top-k 250, temperature 1, guidance 3)."""

    seconds: float = 4.0
    seed: int = 0
    top_k: int = 250
    temperature: float = 1.0
    guidance_scale: float = 3.0
    greedy: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


class MusicgenRunner:
    """Generates batches of clips from a loaded MusicGen with common-random-number sampling."""

    def __init__(self, loaded: LoadedMusicgen, settings: GenerationSettings = GenerationSettings(),
                 engine: str = "own", cache: str = "dynamic", compile_mode: "str | None" = None):
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
        self.loaded = loaded
        self.settings = settings
        if compile_mode is not None and engine != "own":
            raise ValueError("only the own engine compiles its decoder step")
        self.engine, self.cache, self.compile_mode = engine, cache, compile_mode

    @property
    def guided(self) -> bool:
        return self.settings.guidance_scale > 1

    @property
    def max_new_tokens(self) -> int:
        """Frames for ``seconds`` of audio plus the delay pattern's extra steps (codebooks - 1)."""
        return round(self.settings.seconds * self.loaded.frame_rate) + self.loaded.num_codebooks - 1

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None" = None,
                 capture: "Capture | None" = None, cut: "int | None" = None,
                 noise_keys: "Sequence[str] | None" = None) -> torch.Tensor:
        """Generate one clip per prompt; return mono audio ``(len(prompts), samples)`` on the CPU.

        ``edits[b]`` intervenes on prompt ``b``'s rows; ``capture`` records site outputs;
        ``cut`` runs only the first ``cut`` decoder layers (DecoderLens); ``noise_keys[b]`` is the text
        whose ``prompt_key`` seeds row ``b``'s sampling noise (default: the prompt itself).
        """
        loaded, s = self.loaded, self.settings
        if edits is not None and len(edits) != len(prompts):
            raise ValueError(f"got {len(edits)} edits for {len(prompts)} prompts; pass one (or None) per prompt")
        if noise_keys is not None and len(noise_keys) != len(prompts):
            raise ValueError(f"got {len(noise_keys)} noise keys for {len(prompts)} prompts; pass one per prompt")
        if self.compile_mode is not None and (edits is not None or capture is not None or cut):
            raise ValueError("a compiled decoder would silently skip edits and captures; run them uncompiled")
        keys = prompts if noise_keys is None else noise_keys
        inputs = loaded.processor(text=list(prompts), padding=True, return_tensors="pt").to(loaded.device)
        decoder = loaded.model.decoder.model.decoder
        hooks, pre_hooks = [], []
        if edits is not None:
            hooks += edit_hooks(loaded.decoder_layers, edits, guided=self.guided)
        if capture is not None:
            hooks += capture.hooks(loaded.decoder_layers)
            if self.engine == "generate":  # it runs frame 0 twice: count it once
                pre_hooks.append(capture.restart_hook(decoder))
        sampler = None if s.greedy else CommonNoiseSampler([prompt_key(k) for k in keys], loaded.num_codebooks,
                                                           s.seed, s.top_k, s.temperature)
        with installed(hooks, pre_hooks), (cut_decoder(decoder, cut) if cut else contextlib.nullcontext()):
            if self.engine == "own":
                codes = decode_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"], self.max_new_tokens,
                                     s.guidance_scale, greedy if sampler is None else sampler.sample, self.cache,
                                     self.compile_mode)
                audio = decode_audio(loaded.model, codes)
            else:
                processors = SamplerLastList([] if sampler is None else [sampler])
                audio = loaded.model.generate(**inputs, do_sample=False, guidance_scale=s.guidance_scale,
                                              max_new_tokens=self.max_new_tokens, logits_processor=processors,
                                              top_k=None, temperature=None)
        return audio[:, 0].float().cpu()
