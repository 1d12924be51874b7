"""The model runner: prompts (plus optional per-row edits, captures or a decoder cut) -> audio."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from ..errors import unknown
from ..zoo.loading import LoadedMusicgen
from .decode import decode_audio, decode_codes, greedy
from .hooks import Capture, FrameClock, RowEdit, cut_decoder, edit_hooks, has_windows, installed
from .sampling import CommonNoiseSampler, SamplerLastList, prompt_key
from .sites import TRANSFORMERS_SITES
from .slots import EditSlots

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


#: how a batch's padded text positions enter cross-attention: ``masked`` (transformers: ignored) or
#: ``audiocraft`` (attended to as zero vectors, as audiocraft does; docs/backends.md)
TEXT_PADDINGS = ("masked", "audiocraft")


class Runner(Protocol):
    """What the experiments use of a runner, whichever library runs MusicGen (``backends.make_runner``)."""

    settings: GenerationSettings

    @property
    def guided(self) -> bool: ...

    def generate(self, prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None" = None,
                 capture: "Capture | None" = None, cut: "int | None" = None,
                 noise_keys: "Sequence[str] | None" = None) -> torch.Tensor: ...


class RunnerBase:
    """The library-independent part of a runner: settings, step count, argument checks, site hooks, the sampler."""

    def __init__(self, loaded: LoadedMusicgen, settings: GenerationSettings = GenerationSettings()):
        self.loaded = loaded
        self.settings = settings

    @property
    def guided(self) -> bool:
        """Whether the decoder batch is doubled for classifier-free guidance (unconditional rows ``B..2B-1``)."""
        return self.settings.guidance_scale > 1

    @property
    def max_new_tokens(self) -> int:
        """Frames for ``seconds`` of audio plus the delay pattern's extra steps (codebooks - 1)."""
        return round(self.settings.seconds * self.loaded.frame_rate) + self.loaded.num_codebooks - 1

    @staticmethod
    def noise_keys(prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None",
                   noise_keys: "Sequence[str] | None") -> Sequence[str]:
        """Check one edit and one noise key (or None) per prompt; return the texts that key each row's noise."""
        if edits is not None and len(edits) != len(prompts):
            raise ValueError(f"got {len(edits)} edits for {len(prompts)} prompts; pass one (or None) per prompt")
        if noise_keys is not None and len(noise_keys) != len(prompts):
            raise ValueError(f"got {len(noise_keys)} noise keys for {len(prompts)} prompts; pass one per prompt")
        return prompts if noise_keys is None else noise_keys

    def site_hooks(self, layers: torch.nn.ModuleList, edits: "Sequence[RowEdit | None] | None",
                   capture: "Capture | None", components: "dict[str, str]" = TRANSFORMERS_SITES,
                   clock: "FrameClock | None" = None) -> list:
        """Forward hooks for ``edits`` and ``capture`` on ``layers`` (sites located by ``components``); ``clock``
        counts frames for edits limited to frames."""
        hooks = [] if edits is None else edit_hooks(layers, edits, self.guided, components, clock)
        return hooks + ([] if capture is None else capture.hooks(layers, components))

    def sampler(self, keys: Sequence[str]) -> "CommonNoiseSampler | None":
        """The common-random-number sampler for rows keyed by ``keys`` (None for greedy decoding)."""
        s = self.settings
        if s.greedy:
            return None
        return CommonNoiseSampler([prompt_key(k) for k in keys], self.loaded.num_codebooks, s.seed, s.top_k,
                                  s.temperature)


def _unmasked_text(module, args, kwargs):
    """A decoder pre-hook: cross-attention without the text padding mask (``text_padding="audiocraft"``)."""
    kwargs["encoder_attention_mask"] = None
    return args, kwargs


class MusicgenRunner(RunnerBase):
    """Generates batches of clips from a loaded MusicGen through transformers, with common-random-number sampling."""

    def __init__(self, loaded: LoadedMusicgen, settings: GenerationSettings = GenerationSettings(),
                 text_padding: str = "masked", engine: str = "own", cache: str = "dynamic",
                 compile_mode: "str | None" = None):
        super().__init__(loaded, settings)
        if text_padding not in TEXT_PADDINGS:
            raise unknown("text padding", text_padding, TEXT_PADDINGS)
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
        if compile_mode is not None and engine != "own":
            raise ValueError("only the own engine compiles its decoder step")
        self.text_padding, self.engine, self.cache, self.compile_mode = text_padding, engine, cache, compile_mode
        # installed before anything compiles: hooks registered after compiling would be skipped silently
        self.slots = None if compile_mode is None else EditSlots.on(loaded.decoder_layers)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], edits: "Sequence[RowEdit | None] | None" = None,
                 capture: "Capture | None" = None, cut: "int | None" = None,
                 noise_keys: "Sequence[str] | None" = None) -> torch.Tensor:
        """Generate one clip per prompt; return mono audio ``(len(prompts), samples)`` on the CPU.

        ``edits[b]`` intervenes on prompt ``b``'s rows; ``capture`` records site outputs;
        ``cut`` runs only the first ``cut`` decoder layers (DecoderLens); ``noise_keys[b]`` is the text
        whose ``prompt_key`` seeds row ``b``'s sampling noise (default: the prompt itself).
        With ``compile_mode``, plain and edited batches run compiled (edits through ``EditSlots``); captures and
        cuts run the uncompiled decoder (same results, eager speed). Edits limited to frames (``RowEdit.frames``)
        run uncompiled only (slots edit every frame): refused with ``compile_mode``.
        """
        loaded, s = self.loaded, self.settings
        keys = self.noise_keys(prompts, edits, noise_keys)
        compiled = self.slots is not None and capture is None and not cut
        inputs = loaded.processor(text=list(prompts), padding=True, return_tensors="pt").to(loaded.device)
        decoder = loaded.model.decoder.model.decoder
        # compiled, plain and edited batches of one size share one graph: the slots are sized for every batch
        slotted = (self.slots.applied(edits or [None] * len(prompts), self.guided) if compiled
                   else contextlib.nullcontext())
        clock = FrameClock() if has_windows(edits) else None
        if clock is not None and compiled:
            raise ValueError("edits limited to frames run uncompiled only; drop compile_mode or the frames")
        hooks = self.site_hooks(loaded.decoder_layers, None if compiled else edits, capture, clock=clock)
        pre_hooks = [] if clock is None else [clock.pre_hook(decoder)]
        if capture is not None and self.engine == "generate":  # it runs frame 0 twice: count it once
            pre_hooks.append(capture.restart_hook(decoder))
        if self.text_padding == "audiocraft":
            pre_hooks.append((loaded.model.decoder, _unmasked_text))
        sampler = self.sampler(keys)
        with installed(hooks, pre_hooks), slotted, (cut_decoder(decoder, cut) if cut else contextlib.nullcontext()):
            if self.engine == "own":
                codes = decode_codes(loaded.model, inputs["input_ids"], inputs["attention_mask"], self.max_new_tokens,
                                     s.guidance_scale, greedy if sampler is None else sampler.sample, self.cache,
                                     self.compile_mode if compiled else None)
                audio = decode_audio(loaded.model, codes)
            else:
                processors = SamplerLastList([] if sampler is None else [sampler])
                audio = loaded.model.generate(**inputs, do_sample=False, guidance_scale=s.guidance_scale,
                                              max_new_tokens=self.max_new_tokens, logits_processor=processors,
                                              top_k=None, temperature=None)
        return audio[:, 0].float().cpu()
